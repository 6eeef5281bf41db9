"""float32 consistency: the Function's gradients in float32 against its float64 gradients.

Answers "is my kernel right in the precision I train in?": the same inputs, rounded to
float32, and the same random grad_outputs go through forward and backward in float32,
and the gradients are compared with the float64 ones under float32-sized tolerances.
"""

from __future__ import annotations

from typing import Any

import torch

from gradcheck_cli.engine.agreement import (
    Tolerance,
    compare_gradients,
    max_output_difference,
    run_once,
)
from gradcheck_cli.engine.contract import explain
from gradcheck_cli.engine.outcome import CheckContext, Outcome
from gradcheck_cli.results import Status
from gradcheck_cli.target.discovery import Target

# float32 carries ~7 significant digits; a few roundings through forward and backward
# leave errors of ~1e-6 relative. 1e-4 relative (with a 1e-5 floor) flags only real
# precision loss: a float32 accumulation over many terms, a missing upcast, a cancellation.
FLOAT32_RTOL = 1e-4
FLOAT32_ATOL = 1e-5


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
        ref = run_once(target.call, high, None, seed)
    except Exception as exc:
        why = explain(exc, target, names, "float64 backward")
        return Outcome(Status.ERROR, why.message, location=why.location)
    try:
        got = run_once(target.call, low, ref.grad_outputs, seed)
    except Exception as exc:
        why = explain(exc, target, names, "float32 run")
        return Outcome(Status.ERROR, f"the Function fails in float32: {why.message}",
                       location=why.location)
    agreement = compare_gradients(ref.grads, got.grads, high, names,
                                  lambda _: Tolerance(rtol, atol), "float32 gradient",
                                  "float64")
    inputs, problems = agreement.inputs, agreement.problems
    ref_outs, low_outs = ref.outputs, got.outputs
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
    worst = max_output_difference(ref, low)
    return f"forward's float32 outputs differ from float64 by up to {worst:.3g}."
