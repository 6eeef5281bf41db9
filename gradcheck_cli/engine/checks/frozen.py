"""frozen: with inputs frozen (requires_grad=False) in turn, the others' gradients are unchanged.

gradcheck runs with every input requiring grad, so a backward that reads
`ctx.needs_input_grad` to skip work never takes its skipping branches there. Training with
frozen weights (adapters, LoRA, frozen embeddings) does: a backward that tests
`needs_input_grad[1]` for the gradient of input 0 drops that gradient exactly when input 1
is frozen. The sweep runs forward and backward once with every input requiring grad, then
with each input frozen in turn, with all inputs but one frozen (when there are at most
four: the N runs that tell which flag governs which gradient), and with all frozen (forward
must still run), on the same values and grad_outputs; each run's gradients must be those of
the all-inputs run. No finite differences: 2N + 2 forwards and backwards at most.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from gradcheck_cli.engine.contract import explain
from gradcheck_cli.engine.diagnose.rules.needs_input_grad import RULE, Sweep
from gradcheck_cli.engine.inputs import make_grad_outputs
from gradcheck_cli.engine.jacobian import as_tuple, diff_positions, is_diff_tensor
from gradcheck_cli.engine.outcome import CheckContext, Outcome
from gradcheck_cli.engine.vjp import vjp
from gradcheck_cli.results import InputError, Status
from gradcheck_cli.target.discovery import Target

Grads = dict[int, torch.Tensor | None]  # input position -> its gradient in one run

# The all-but-one runs are added up to this many inputs requiring grad (N more runs).
ALL_BUT_ONE_LIMIT = 4
# Gradients of the same values and grad_outputs agree to rounding; a backward that computes
# one differently with another input frozen (a shared product, a fused kernel) may round
# differently: this many ulps of the gradient's largest entry are allowed.
ROUNDING_ULPS = 1000


class _Failed(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


def run(context: CheckContext) -> Outcome:
    positions = diff_positions(context.args)
    if not positions:
        return Outcome(Status.SKIPPED, "no input requires grad, so there is none to freeze")
    try:
        return _sweep(context, positions)
    except _Failed as failed:
        return failed.outcome


def _sweep(context: CheckContext, positions: list[int]) -> Outcome:
    names = context.names
    leaves, given = _fresh(context.args, frozenset())
    outs = _forward(context, given, frozenset())
    diff = [k for k, o in enumerate(outs) if is_diff_tensor(o)]
    if not diff:
        return Outcome(Status.SKIPPED, "no output of forward is differentiable, so there is "
                                       "no gradient to compare with inputs frozen")
    grad_outputs = dict(zip(diff, make_grad_outputs(tuple(outs[k] for k in diff),
                                                    context.seed)))
    reference = _backward(context, frozenset(), positions, grad_outputs, (leaves, outs))
    runs: dict[frozenset[int], Grads] = {}
    for frozen in _frozen_sets(positions):
        runs[frozen] = _backward(context, frozen, positions, grad_outputs)
    entries = [_entry(context, p, reference, runs) for p in positions]
    if len(positions) == 1:
        return Outcome(Status.PASSED, f"`{names[positions[0]]}` is the only input that "
                       "requires grad: with it frozen, forward runs; there is no other "
                       "gradient to compare", inputs=entries)
    wrong = [e for e in entries if not e.passed]
    if not wrong:
        return Outcome(Status.PASSED, inputs=entries)
    message = "\n".join(_wrong_text(e) for e in wrong)
    location = _location(context.target, wrong[0].diagnosis)
    return Outcome(Status.FAILED, message, inputs=entries, location=location)


def _wrong_text(entry: InputError) -> str:
    """`the gradient of `x` is missing with `w` frozen`: what differs, in the message."""
    assert entry.diagnosis is not None
    detail = entry.diagnosis.detail
    frozen = detail.removeprefix("with ").split(" frozen, ", 1)[0]
    how = ("is missing" if " is missing" in detail
           else f"differs by up to {entry.max_abs_error:.3g}")
    return (f"the gradient of `{entry.name}` {how} with {frozen} frozen (compared with "
            "every input requiring grad)")


def _frozen_sets(positions: list[int]) -> list[frozenset[int]]:
    """Each input frozen alone, all but one frozen (few inputs), then all frozen."""
    found = [frozenset({p}) for p in positions]
    if len(positions) <= ALL_BUT_ONE_LIMIT:
        found += [frozenset(positions) - {p} for p in positions]
    found.append(frozenset(positions))
    return list(dict.fromkeys(s for s in found if s))


def _fresh(args: list[Any], frozen: frozenset[int]) -> tuple[list[Any], list[Any]]:
    """Copies of the inputs (a forward that writes into one must not change the next run's),
    those in `frozen` not requiring grad: the leaves differentiated, and what forward is
    given, a clone of each leaf that requires grad (not a leaf, so that a declared
    in-place forward, ctx.mark_dirty, can run on it)."""
    leaves, given = [], []
    for position, arg in enumerate(args):
        if isinstance(arg, torch.Tensor):
            wants = arg.requires_grad and position not in frozen
            leaf = arg.detach().clone().requires_grad_(wants)
            leaves.append(leaf)
            given.append(leaf.clone() if wants else leaf)
        else:
            leaves.append(arg)
            given.append(arg)
    return leaves, given


def _phase(names: list[str], frozen: frozenset[int], phase: str) -> str:
    return phase if not frozen else f"{phase} with {_listed(names, frozen)} frozen"


def _forward(context: CheckContext, args: list[Any], frozen: frozenset[int]
             ) -> tuple[Any, ...]:
    try:
        return as_tuple(context.target.call(*args))
    except Exception as exc:
        raise _error(exc, context.target, context.names,
                     _phase(context.names, frozen, "forward")) from None


def _backward(context: CheckContext, frozen: frozenset[int], positions: list[int],
              grad_outputs: dict[int, torch.Tensor],
              ran: tuple[list[Any], tuple[Any, ...]] | None = None) -> Grads:
    """Each unfrozen input's gradient with `frozen` frozen (None: backward gave none);
    `ran`: the leaves and outputs of this run's forward, when it ran already."""
    target, names = context.target, context.names
    if ran is None:
        args, given = _fresh(context.args, frozen)
        outs = _forward(context, given, frozen)
    else:
        args, outs = ran
    wanted = [p for p in positions if p not in frozen]
    diff = [(k, o) for k, o in enumerate(outs) if is_diff_tensor(o) and k in grad_outputs]
    if not wanted or not diff:
        return {p: None for p in wanted}
    try:
        grads = vjp([o for _, o in diff], [args[p] for p in wanted],
                    [grad_outputs[k].detach() for k, _ in diff])
    except Exception as exc:
        raise _error(exc, target, names, _phase(names, frozen, "backward")) from None
    return {p: None if g is None else g.detach() for p, g in zip(wanted, grads)}


def _error(exc: Exception, target: Target, names: list[str], phase: str) -> _Failed:
    why = explain(exc, target, names, phase)
    return _Failed(Outcome(Status.ERROR, why.message, location=why.location))


def _listed(names: list[str], positions: frozenset[int] | tuple[int, ...]) -> str:
    return " and ".join(f"`{names[p]}`" for p in sorted(positions))


def _difference(reference: torch.Tensor | None, got: torch.Tensor | None
                ) -> tuple[float, int, float]:
    """(largest difference, elements beyond rounding, the allowed difference) of one
    input's gradient in a run from the all-inputs run's (None counts as zeros)."""
    base = reference if reference is not None else got
    assert base is not None
    ref = reference if reference is not None else torch.zeros_like(base)
    new = got if got is not None else torch.zeros_like(base)
    if ref.shape != new.shape:
        return float("inf"), base.numel(), 0.0
    ref, new = ref.to(torch.promote_types(ref.dtype, new.dtype)), new.to(ref.dtype)
    finite = ref.abs()[torch.isfinite(ref)]
    scale = float(finite.max()) if finite.numel() else 0.0
    resolution = torch.finfo(ref.real.dtype if ref.is_complex() else ref.dtype).eps
    allowed = ROUNDING_ULPS * resolution * scale
    same = (ref == new) | ((ref - new).abs() <= allowed)
    error = float(torch.where(same, 0, (ref - new).abs()).nan_to_num(float("inf")).max()) \
        if ref.numel() else 0.0
    return error, int((~same).sum()), allowed


def _entry(context: CheckContext, position: int, reference: Grads,
           runs: dict[frozenset[int], Grads]) -> InputError:
    """One input's verdict over every run in which it was not frozen, diagnosed if wrong."""
    names = context.names
    ref = reference[position]
    entry = InputError(index=position, name=names[position], max_abs_error=0.0,
                       max_rel_error=0.0, passed=True,
                       numel=context.args[position].numel())
    first: tuple[frozenset[int], bool, float] | None = None
    present: list[tuple[frozenset[int], bool]] = [(frozenset(), True)]
    for frozen, grads in runs.items():
        if position in frozen:
            continue
        got = grads[position]
        if got is None and ref is None:
            present.append((frozen, True))
            continue
        error, wrong, allowed = _difference(ref, got)
        ok = error <= allowed
        present.append((frozen, got is not None or ref is None))
        if ok:
            continue
        entry.passed = False
        entry.max_abs_error = max(entry.max_abs_error or 0.0, error)
        entry.wrong_elements = max(entry.wrong_elements, wrong)
        if first is None:
            first = (frozen, got is None or not bool(got.any()), error)
    scale = 0.0 if ref is None else float(ref.abs().max()) if ref.numel() else 0.0
    if entry.max_abs_error and scale > 0:
        entry.max_rel_error = entry.max_abs_error / scale
    if first is not None:
        frozen, missing, error = first
        governed = (_governing(position, present, diff_positions(context.args)) if missing
                    else None)
        entry.diagnosis = RULE.sweep(Sweep(
            names[position], tuple(names[p] for p in sorted(frozen)), missing, error,
            None if governed is None else (governed, names[governed]),
            indexed=context.target.kind == "function"))
    return entry


def _governing(position: int, present: list[tuple[frozenset[int], bool]],
               positions: list[int]) -> int | None:
    """The other input whose being unfrozen matches, run by run, whether this input's
    gradient was there: the needs_input_grad index backward reads for it, if one does."""
    for other in positions:
        if other != position and all(there == (other not in frozen)
                                     for frozen, there in present):
            return other
    return None


def _location(target: Target, diagnosis: Any) -> str:
    """The line of backward that reads the needs_input_grad index at fault, else backward."""
    text = diagnosis.detail if diagnosis is not None else ""
    backward = getattr(target.obj, "backward", None) if target.kind == "function" else None
    backward = getattr(backward, "__wrapped__", backward)
    marker = text.split("ctx.needs_input_grad[", 1)
    if backward is None or len(marker) < 2:
        return target.backward_location
    index = marker[1].split("]", 1)[0]
    try:
        lines, start = inspect.getsourcelines(backward)
    except (OSError, TypeError):
        return target.backward_location
    for offset, line in enumerate(lines):
        if f"needs_input_grad[{index}]" in line:
            return f"{target.file}:{start + offset}"
    return target.backward_location
