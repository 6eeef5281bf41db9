"""torch's checks before any Jacobian: inputs that require grad, finite outputs, no-output cases."""

from __future__ import annotations

from typing import Any

import torch

from gradcheck_cli.engine.checks.subject import Stop, Subject
from gradcheck_cli.engine.describe import type_name
from gradcheck_cli.engine.jacobian import (
    as_tuple,
    diff_positions,
    flat_outputs,
    is_diff_tensor,
    numerical_columns,
    unravel,
)
from gradcheck_cli.engine.outcome import Outcome
from gradcheck_cli.results import Status, format_index

# Inputs larger than this are checked for "no differentiable output, yet it moves" by one
# random-direction difference rather than one central difference per element.
SMALL_INPUT = 4096


def check_inputs(subject: Subject) -> Outcome | None:
    """An error when no input requires grad or one is an expanded tensor, else None."""
    positions = diff_positions(subject.args)
    if not positions:
        return Outcome(Status.ERROR, "no input requires grad, so there is no gradient to "
                       "check: give at least one floating tensor input with "
                       "`requires_grad: true`")
    for i in positions:
        tensor = subject.args[i]
        if any(st == 0 and sz > 1 for st, sz in zip(tensor.stride(), tensor.size())):
            return Outcome(Status.ERROR, f"input `{subject.names[i]}` has a dimension with "
                           "stride 0 (an expanded tensor); pass a contiguous tensor")
    return None


def _floating(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex())


def check_finite_outputs(subject: Subject, func_out: tuple[Any, ...]) -> None:
    """Stop the check at the first output with NaN or Inf: outside the domain (first
    order), or a bug of backward (second order, whose outputs are its gradients)."""
    for index, out in enumerate(func_out):
        if not _floating(out):
            continue
        bad = ~torch.isfinite(out.detach())
        if not bool(bad.any()):
            continue
        first = unravel(int(torch.nonzero(bad.reshape(-1))[0]), out.shape)
        value = out.detach()[first].item()
        where = (f"{subject.output_name(index)}: {int(bad.sum())} of {out.numel()} (first "
                 f"{value} at {format_index(first)})")
        if subject.order == "second":
            raise Stop(Outcome(
                Status.FAILED, f"backward returned non-finite values in {where} where "
                               "forward is finite",
                location=subject.backward_location))
        raise Stop(Outcome(
            Status.ERROR,
            f"forward returned non-finite values in {where}. The inputs are probably outside "
            "the function's domain: narrow them with `low`/`high` in the spec.",
            location=subject.target.forward_location))


def _described(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, (bool, int, float, complex)):
        return f"a Python {type_name(value)} ({value!r})"
    return f"a {type_name(value)}"


def no_tensor_outputs(subject: Subject, func_out: tuple[Any, ...]) -> Outcome | None:
    """Not a pass when there is no tensor to differentiate: torch's gradcheck returns True
    for a forward that returns None or a number, though nothing was compared."""
    if any(isinstance(out, torch.Tensor) for out in func_out):
        return None
    if subject.order == "second":
        return Outcome(Status.SKIPPED, "backward returned no gradient for any input, so "
                       "there is nothing to differentiate twice")
    what = "nothing (an empty tuple)" if not func_out else (
        _described(func_out[0]) if len(func_out) == 1
        else "no tensor (" + ", ".join(_described(o) for o in func_out) + ")")
    return Outcome(
        Status.ERROR,
        f"forward returned {what}, not a tensor, so there is no gradient to check: autograd "
        "differentiates tensor outputs only. Return the result as a tensor "
        "(e.g. torch.as_tensor(value)) computed from the inputs.",
        location=subject.target.forward_location)


def no_differentiable_outputs(subject: Subject, mode: str, eps: float, seed: int,
                              func_out: tuple[Any, ...]) -> Outcome:
    """As torch: with no differentiable output, the numerical gradient must be zero.

    When it is, torch passes; at first order nothing was differentiated, so it is skipped
    with the reason instead. At second order the zero second derivative was compared.
    """
    positions = [i for i, o in enumerate(func_out) if _floating(o)]
    for i, arg in enumerate(subject.args):
        if not is_diff_tensor(arg):
            continue
        if mode == "probe" or arg.numel() > SMALL_INPUT:
            changes = _moves_outputs(subject, i, func_out, positions, eps, seed)
        else:
            changes = any(bool((column != 0).any()) for _, column in numerical_columns(
                subject.fn, subject.args, i, func_out, positions, eps))
        if changes:
            return Outcome(
                Status.FAILED,
                f"no output of forward requires grad, yet the outputs change with "
                f"`{subject.names[i]}`: forward detached its result or marked it "
                "non-differentiable (ctx.mark_non_differentiable)",
                location=subject.target.forward_location)
    if subject.order == "first":
        return Outcome(
            Status.SKIPPED,
            "no output of forward is differentiable (each was marked non-differentiable, "
            "detached, or is not floating point) and none changes with the inputs, so there "
            "is no gradient to check")
    return Outcome(Status.PASSED, "no differentiable outputs; the numerical gradient is zero")


def _moves_outputs(subject: Subject, position: int, func_out: tuple[Any, ...],
                   positions: list[int], eps: float, seed: int) -> bool:
    """Whether the outputs change when the whole input moves by ±eps along a random
    direction: one central difference instead of one per element."""
    data = subject.args[position].data
    original = data.clone()
    generator = torch.Generator().manual_seed(seed)
    direction = (torch.rand(data.shape, generator=generator, dtype=torch.float64) + 0.5
                 ).to(data.dtype)
    try:
        data.copy_(original + eps * direction)
        after = flat_outputs(as_tuple(subject.fn(*subject.args)), positions)
        data.copy_(original - eps * direction)
        before = flat_outputs(as_tuple(subject.fn(*subject.args)), positions)
    finally:
        data.copy_(original)
    return bool((after != before).any())
