"""bfloat16 / float16: the op's gradients in that dtype against its float64 run on the same values.

A finite-difference check cannot run in 16 bits (a step of 1e-6 is below the resolution),
so this check never differentiates numerically: the inputs are rounded to the dtype, the
float64 run starts from those same rounded values and the same rounded grad_outputs, and
only the arithmetic differs. A correct op loses a few roundings: each gradient element
must lie within ROUNDINGS units of the dtype's roundoff (relative), or within half that
many units of the input's largest gradient (absolute, for elements that cancel to near
zero). An accumulation in 16 bits or a missing upcast loses far more and fails, named
per input.
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

# Unit roundoff: half the distance from 1 to the next number (bfloat16 keeps 8 significant
# bits, float16 11).
ROUNDOFF = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}
ROUNDINGS = 4  # the roundings a correct op may lose (documented in the README)


def run_bfloat16(context: CheckContext) -> Outcome:
    return precision_check(context, torch.bfloat16)


def run_float16(context: CheckContext) -> Outcome:
    return precision_check(context, torch.float16)


def _tolerance(reference: torch.Tensor, dtype: torch.dtype) -> Tolerance:
    unit = ROUNDOFF[dtype]
    largest = float(reference.abs().max()) if reference.numel() else 0.0
    return Tolerance(rtol=ROUNDINGS * unit, atol=ROUNDINGS / 2 * unit * largest)


def _split(args: list[Any], dtype: torch.dtype) -> tuple[list[Any], list[Any]]:
    """The inputs in `dtype` and the same rounded values in float64."""
    low: list[Any] = []
    high: list[Any] = []
    for arg in args:
        if isinstance(arg, torch.Tensor) and arg.is_floating_point():
            rounded = arg.detach().to(dtype)
            low.append(rounded.requires_grad_(arg.requires_grad))
            high.append(rounded.detach().double().requires_grad_(arg.requires_grad))
        else:
            low.append(arg)
            high.append(arg)
    return low, high


def precision_check(context: CheckContext, dtype: torch.dtype) -> Outcome:
    """Compare the op's `dtype` gradients (and outputs) with float64 ones, per input."""
    target, names, seed = context.target, context.names, context.seed
    name = str(dtype).removeprefix("torch.")
    low, high = _split(context.args, dtype)
    try:
        drawn = run_once(target.call, high, None, seed)
        # The grad_outputs too are values of the dtype, in both runs.
        rounded = [g.detach().to(dtype).double() for g in drawn.grad_outputs]
        ref = run_once(target.call, high, rounded, seed)
    except Exception as exc:
        why = explain(exc, target, names, "float64 backward")
        return Outcome(Status.ERROR, why.message, location=why.location)
    try:
        got = run_once(target.call, low, rounded, seed)
    except Exception as exc:
        why = explain(exc, target, names, f"{name} run")
        return Outcome(Status.ERROR, f"the op fails in {name}: {why.message}",
                       location=why.location)
    agreement = compare_gradients(ref.grads, got.grads, high, names,
                                  lambda r: _tolerance(r, dtype), f"{name} gradient",
                                  "float64")
    forward = (f"forward's {name} outputs differ from float64 by up to "
               f"{max_output_difference(ref.outputs, got.outputs):.3g}.")
    outcome = Outcome(Status.PASSED, forward, inputs=agreement.inputs, names=names)
    if agreement.problems:
        outcome.status = Status.FAILED
        outcome.message = (
            f"{name} gradients lose more than {ROUNDINGS} roundings (unit roundoff "
            f"{ROUNDOFF[dtype]:g}): " + "; ".join(agreement.problems)
            + f". Accumulate in float32 (`.float()` before a sum or matmul, back to {name} "
            "after), avoid cancellations in 16 bits. " + forward)
        outcome.location = target.backward_location
    return outcome
