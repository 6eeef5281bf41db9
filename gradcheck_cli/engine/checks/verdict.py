"""The verdict of compared Jacobians, worded: per-input errors, the failure's message."""

from __future__ import annotations

import dataclasses

from gradcheck_cli.engine.checks.subject import Subject
from gradcheck_cli.engine.jacobian import unravel
from gradcheck_cli.engine.outcome import Outcome, Tolerances
from gradcheck_cli.engine.stats import Comparison, InputStats
from gradcheck_cli.results import Advice, InputError, Status, Worst, format_index


def judge(subject: Subject, tol: Tolerances, mode: str, comparisons: list[Comparison]
          ) -> Outcome:
    """Passed, failed (wrong or nondeterministic gradients) or error (the numerical
    gradient is not finite: a domain problem), with every input's errors."""
    main = comparisons[0]
    rows = sum(sum(c.output_sizes) for c in comparisons)
    stats = [_merge([c.inputs[k] for c in comparisons]) for k in range(len(main.inputs))]
    outcome = Outcome(Status.PASSED, comparison=main, names=subject.names)
    problems: list[str] = []
    domain: list[str] = []
    nondeterministic: list[str] = []
    for stat in stats:
        name = subject.names[stat.position]
        entry = _entry(subject, main, stat)
        if stat.first_nonfinite is not None:
            which, _, column, value = stat.first_nonfinite
            at = format_index(unravel(column, subject.args[stat.position].shape))
            count = (stat.nonfinite_numerical if which == "numerical"
                     else stat.nonfinite_analytical)
            entry.note = f"{which} gradient not finite ({count} elements, e.g. {value} at {at})"
            entry.passed = False
            if which == "numerical":
                domain.append(f"`{name}`: {entry.note}")
            else:
                problems.append(f"backward returned non-finite values for `{name}` "
                                f"({count} elements, first at {name}{at})")
        elif stat.wrong:
            problems.append(_mismatch_text(subject, main.layout if mode == "reference" else mode,
                                           rows, entry, stat))
        elif stat.unresolved:
            entry.note = stat.unresolved  # a doubt, not a verdict: see probe/localize.py
            if not outcome.advice:
                outcome.advice.append(Advice("exact_mode"))  # it would settle the doubt
        if stat.nondeterminism > tol.nondet_tol:
            nondeterministic.append(f"`{name}` (by up to {_fmt(stat.nondeterminism)})")
        outcome.inputs.append(entry)
    if domain:
        outcome.status = Status.ERROR
        outcome.message = (
            "the numerical gradient is not finite: forward is not finite within eps of the "
            "inputs (" + "; ".join(domain) + "). Narrow the inputs with `low`/`high`."
        )
        return outcome
    if nondeterministic:
        problems.insert(0, (
            "backward is nondeterministic: running it twice on the same input and "
            "grad_output gave different gradients for " + ", ".join(nondeterministic)
            + f". If this is expected, set `nondet_tol` (now {tol.nondet_tol:g})."))
    if problems:
        outcome.status = Status.FAILED
        outcome.message = "\n".join(problems)
        outcome.location = subject.backward_location
    return outcome


def _entry(subject: Subject, main: Comparison, stat: InputStats) -> InputError:
    finite = stat.first_nonfinite is None
    entry = InputError(
        # With NaN/Inf in a Jacobian the largest error is not a number: say so (null in
        # JSON, with a note) rather than report the finite part's maximum.
        index=stat.position, name=subject.names[stat.position],
        max_abs_error=stat.max_abs if finite else float("inf"),
        max_rel_error=stat.max_rel if finite else float("inf"),
        passed=stat.wrong == 0, numel=stat.numel, wrong_elements=stat.wrong,
    )
    if stat.worst is not None:
        row, column, a, n = stat.worst
        output, element = main.locate_row(row)
        entry.worst = Worst(
            output=output,
            output_index=list(unravel(element, main.output_shapes[output])),
            input_index=list(unravel(column, subject.args[stat.position].shape)),
            analytical=_plain(a), numerical=_plain(n),
        )
    return entry


def _mismatch_text(subject: Subject, mode: str, rows: int, entry: InputError,
                   stat: InputStats) -> str:
    name = entry.name
    what = "gradient" if subject.order == "first" else "second derivative (through backward)"
    if mode == "probe":
        failed = [(a, n) for a, n, t in stat.directional if abs(a - n) > t]
        text = (f"{what} of `{name}` is wrong: {len(failed)} of {len(stat.directional)} "
                "random-direction probes disagree beyond finite-difference noise "
                f"(max discrepancy {_fmt(stat.max_abs)}); localized "
                f"{stat.wrong} wrong Jacobian entr{'y' if stat.wrong == 1 else 'ies'}")
        return text + _worst_text(subject, entry, ", worst ")
    if mode in ("reference", "projected"):  # reference mode: layout "projected" or whole
        where = (f"{stat.wrong} of {stat.numel} elements" if mode == "projected" else
                 f"{stat.wrong} of {stat.numel * rows} Jacobian entries")
        text = f"{what} of `{name}` is wrong at {where}, max abs error {_fmt(stat.max_abs)}"
        return text + _worst_text(subject, entry, " at ", ("backward", "autograd"))
    text = (f"{what} of `{name}` is wrong at {stat.wrong} of "
            f"{stat.numel * rows} Jacobian entries, "
            f"max abs error {_fmt(stat.max_abs)}")
    return text + _worst_text(subject, entry, " at ")


def _worst_text(subject: Subject, entry: InputError, lead: str,
                words: tuple[str, str] = ("analytical", "numerical")) -> str:
    """`<lead>x[0, 1] -> output 0[0, 1] (analytical 1, numerical 2)`, or nothing."""
    if entry.worst is None:
        return ""
    w = entry.worst
    return (f"{lead}{entry.name}{format_index(w.input_index)} -> "
            f"{subject.output_name(w.output)}{format_index(w.output_index)} "
            f"({words[0]} {_fmt_value(w.analytical)}, {words[1]} {_fmt_value(w.numerical)})")


def _merge(parts: list[InputStats]) -> InputStats:
    """One input's statistics over the parts of complex outputs (a copy: each part's own
    stay as they were, for the diagnosis of each part)."""
    if len(parts) == 1:
        return parts[0]
    merged = dataclasses.replace(parts[0])
    for other in parts[1:]:
        merged.wrong += other.wrong
        if other.max_abs > merged.max_abs:
            merged.max_abs = other.max_abs
            merged.worst = other.worst
        merged.max_rel = max(merged.max_rel, other.max_rel)
        merged.nonfinite_analytical += other.nonfinite_analytical
        merged.nonfinite_numerical += other.nonfinite_numerical
        merged.first_nonfinite = merged.first_nonfinite or other.first_nonfinite
        merged.nondeterminism = max(merged.nondeterminism, other.nondeterminism)
        merged.directional = merged.directional + other.directional
        merged.unresolved = merged.unresolved or other.unresolved
        merged.explained = merged.explained and other.explained
    return merged


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _fmt_value(value: float | list[float]) -> str:
    if isinstance(value, list):
        return f"{value[0]:.4g}{value[1]:+.4g}j"
    return f"{value:.4g}"


def _plain(value: complex | float) -> float | list[float]:
    if isinstance(value, complex):
        return [value.real, value.imag]
    return float(value)
