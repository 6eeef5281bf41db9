"""diagnose: each failing input of a failed check gets the first rule's diagnosis, by rank."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gradcheck_cli.engine.diagnose.case import (
    Block,
    Case,
    Context,
    Mover,
    Pull,
    Remeasure,
    Review,
)
from gradcheck_cli.engine.diagnose.kinds import Kind
from gradcheck_cli.engine.diagnose.registry import chain, rule_for, rules
from gradcheck_cli.engine.stats import Comparison
from gradcheck_cli.results import Advice, Diagnosis, InputError


@dataclass(frozen=True)
class Part:
    """One comparison to diagnose: of the outputs, or of the real or the imaginary part of
    complex outputs (each a real function, compared on its own)."""

    comparison: Comparison
    move: Mover | None = None  # moves one input element, and evaluates this part
    label: str = ""  # "real" | "imaginary" for a part of complex outputs
    pull: Pull | None = None  # runs backward through this part on a scaled grad_output


def diagnose(entries: list[InputError], parts: Sequence[Part], context: Context,
             names: Sequence[str], shapes: Sequence[tuple[int, ...]],
             remeasure: Remeasure | None = None) -> list[Advice]:
    """Set the diagnosis of each failing entry; the advice those diagnoses carry.

    `names`, `shapes`: of every argument, by position. `remeasure`, when given (exact mode
    with dense Jacobians), lets the rules with a second look (`Rule.review`) compare again
    at other steps.
    """
    found = [_diagnose_part(part, context, names, shapes) for part in parts]
    by_position = {entry.index: entry for entry in entries}
    chosen = found[0] if len(found) == 1 else _combine(found, [p.label for p in parts])
    for position, diagnosis in chosen.items():
        by_position[position].diagnosis = diagnosis
    if remeasure is not None:
        review = Review(entries, context, remeasure)
        for rule in rules():
            rule.review(review)
    return _advice(entries)


def _diagnose_part(part: Part, context: Context, names: Sequence[str],
                   shapes: Sequence[tuple[int, ...]]) -> dict[int, Diagnosis]:
    blocks = [Block(stat, names[stat.position], shapes[stat.position])
              for stat in part.comparison.inputs]
    found: dict[int, Diagnosis] = {}
    for block in blocks:
        case = Case(block, blocks, context, part.move, pull=part.pull)
        # Probe mode leaves its directional tests; exact mode compares blocks.
        mode = "probe" if block.stats.directional else "exact"
        for rule in chain(mode):
            if not (rule.any_input or case.mismatched):
                continue
            diagnosis = rule.exact(case) if mode == "exact" else rule.probe(case)
            if diagnosis is not None:
                found[block.stats.position] = diagnosis
                break
    return found


def _combine(found: list[dict[int, Diagnosis]], labels: list[str]) -> dict[int, Diagnosis]:
    """One diagnosis per input from those of the parts of complex outputs, saying which
    part shows it (the real part's first)."""
    combined: dict[int, Diagnosis] = {}
    for position in sorted(set().union(*found)):
        told = sorted(((label, part[position]) for label, part in zip(labels, found)
                       if position in part), key=lambda t: t[0] != "real")
        if len(told) == 1:
            label, diagnosis = told[0]
            combined[position] = Diagnosis(
                diagnosis.kind, f"{diagnosis.detail} (in the {label} part of the outputs)")
            continue
        (first_label, first), (second_label, second) = told
        if (first.kind, first.detail) == (second.kind, second.detail):
            combined[position] = Diagnosis(
                first.kind, f"{first.detail} (in the {first_label} and the {second_label} "
                            "part of the outputs)")
            continue
        kind = second.kind if first.kind == Kind.UNKNOWN else first.kind
        combined[position] = Diagnosis(
            kind, f"in the {first_label} part of the outputs, {first.detail}; in the "
                  f"{second_label} part, {second.detail}")
    return combined


def _advice(entries: list[InputError]) -> list[Advice]:
    """The advice of the diagnoses given, each once, in the order of the inputs."""
    kinds: dict[str, None] = {}
    for entry in entries:
        if entry.diagnosis is not None:
            kinds.update(dict.fromkeys(rule_for(Kind(entry.diagnosis.kind)).advice))
    return [Advice(kind) for kind in kinds]
