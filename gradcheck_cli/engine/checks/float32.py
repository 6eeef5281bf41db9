"""float32 consistency: the Function's gradients in float32 against its float64 gradients.

Answers "is my kernel right in the precision I train in?": the same inputs, rounded to
float32, and the same random grad_outputs go through forward and backward in float32,
and the gradients are compared with the float64 ones under float32-sized tolerances.
"""

from __future__ import annotations

from typing import Any

import torch

from gradcheck_cli.engine.contract import explain
from gradcheck_cli.engine.inputs import make_grad_outputs
from gradcheck_cli.engine.jacobian import as_tuple, diff_positions, is_diff_tensor, unravel
from gradcheck_cli.engine.outcome import CheckContext, Outcome
from gradcheck_cli.engine.vjp import vjp
from gradcheck_cli.results import InputError, Status, Worst
from gradcheck_cli.target.discovery import Target

# float32 carries ~7 significant digits; a few roundings through forward and backward
# leave errors of ~1e-6 relative. 1e-4 relative (with a 1e-5 floor) flags only real
# precision loss: a float32 accumulation over many terms, a missing upcast, a cancellation.
FLOAT32_RTOL = 1e-4
FLOAT32_ATOL = 1e-5


Gradients = tuple[torch.Tensor | None, ...]


def _gradients(target: Target, args: list[Any], grad_outputs: list[torch.Tensor] | None,
               seed: int) -> tuple[Gradients, list[torch.Tensor], tuple[Any, ...]]:
    outs = as_tuple(target.call(*args))
    diff_outs = [o for o in outs if is_diff_tensor(o)]
    if grad_outputs is None:
        grad_outputs = make_grad_outputs(tuple(diff_outs), seed)
    grads = vjp(diff_outs, [a for a in args if is_diff_tensor(a)],
                [g.detach().to(o.dtype) for g, o in zip(grad_outputs, diff_outs)])
    return grads, grad_outputs, outs


def run(context: CheckContext) -> Outcome:
    return float32_check(context.target, context.args, context.names, context.seed)


def float32_check(target: Target, args: list[Any], names: list[str], seed: int,
                  rtol: float = FLOAT32_RTOL, atol: float = FLOAT32_ATOL) -> Outcome:
    """Compare float32 gradients (and outputs) with float64 ones, per input."""
    low: list[Any] = []
    high: list[Any] = []
    for arg in args:
        if isinstance(arg, torch.Tensor) and arg.dtype == torch.float64:
            rounded = arg.detach().to(torch.float32)
            low.append(rounded.requires_grad_(arg.requires_grad))
            # The float64 reference starts from the same rounded values: only the
            # arithmetic differs between the two runs.
            high.append(rounded.detach().double().requires_grad_(arg.requires_grad))
        else:
            low.append(arg)
            high.append(arg)
    try:
        ref, grad_outputs, ref_outs = _gradients(target, high, None, seed)
    except Exception as exc:
        why = explain(exc, target, names, "float64 backward")
        return Outcome(Status.ERROR, why.message, location=why.location)
    try:
        got, _, low_outs = _gradients(target, low, grad_outputs, seed)
    except Exception as exc:
        why = explain(exc, target, names, "float32 run")
        return Outcome(Status.ERROR, f"the Function fails in float32: {why.message}",
                       location=why.location)
    positions = diff_positions(high)
    inputs: list[InputError] = []
    problems: list[str] = []
    for position, r, g in zip(positions, ref, got):
        name = names[position]
        r = torch.zeros_like(high[position]) if r is None else r.detach()
        g = torch.zeros_like(r) if g is None else g.detach().to(torch.float64)
        if g.dtype != torch.float64:
            g = g.double()
        diff = (g - r).abs()
        scale = torch.maximum(g.abs(), r.abs())
        rel = torch.where(scale > 0, diff / torch.where(scale > 0, scale, 1), 0)
        wrong = ~torch.isclose(g, r, rtol=rtol, atol=atol)
        entry = InputError(index=position, name=name,
                           max_abs_error=float(diff.max()) if diff.numel() else 0.0,
                           max_rel_error=float(rel.max()) if rel.numel() else 0.0,
                           passed=not bool(wrong.any()), numel=r.numel(),
                           wrong_elements=int(wrong.sum()))
        if diff.numel():
            flat = int(diff.reshape(-1).argmax())
            index = list(unravel(flat, r.shape))
            entry.worst = Worst(output=0, output_index=[], input_index=index,
                                analytical=float(g.reshape(-1)[flat]),
                                numerical=float(r.reshape(-1)[flat]))
        if not torch.isfinite(g).all():
            entry.passed = False
            entry.note = "float32 gradient not finite (overflow?)"
            problems.append(f"`{name}`: the float32 gradient has NaN/Inf (overflow)")
        elif not entry.passed:
            problems.append(
                f"`{name}`: float32 gradient differs from float64 by up to "
                f"{entry.max_abs_error:.3g} (relative {entry.max_rel_error:.2g}) at "
                f"{entry.wrong_elements} of {entry.numel} elements")
        inputs.append(entry)
    forward_note = _forward_error(ref_outs, low_outs)
    outcome = Outcome(Status.PASSED, forward_note, inputs=inputs, names=names)
    if problems:
        outcome.status = Status.FAILED
        outcome.message = (
            "float32 gradients are less accurate than float32 allows (tolerance "
            f"rtol {rtol:g}, atol {atol:g}): " + "; ".join(problems)
            + ". Accumulate in float64 (or float32 with care), avoid cancellations. "
            + forward_note
        ).strip()
        outcome.location = target.backward_location
    return outcome


def _forward_error(ref: tuple[Any, ...], low: tuple[Any, ...]) -> str:
    worst = 0.0
    for r, g in zip(ref, low):
        if isinstance(r, torch.Tensor) and isinstance(g, torch.Tensor) and r.is_floating_point():
            worst = max(worst, float((g.detach().double() - r.detach()).abs().max())
                        if r.numel() else 0.0)
    return f"forward's float32 outputs differ from float64 by up to {worst:.3g}."
