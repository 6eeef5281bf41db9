"""mutation: forward and backward leave their inputs and grad_outputs as they found them.

A forward that changes an input in place without `ctx.mark_dirty` corrupts the caller's
tensor and whatever autograd saved of it; a backward that writes into grad_output corrupts
the gradient of every other branch that shares it. Neither shows in gradcheck, which hands
each call fresh tensors. Each tensor is compared bit for bit before and after.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from gradcheck_cli.engine.contract import explain
from gradcheck_cli.engine.inputs import make_grad_outputs
from gradcheck_cli.engine.jacobian import as_tuple, is_diff_tensor
from gradcheck_cli.engine.outcome import CheckContext, Outcome
from gradcheck_cli.results import Status
from gradcheck_cli.target.discovery import Target


def run(context: CheckContext) -> Outcome:
    target, names = context.target, context.names
    # Clones, so the check's own inputs stay intact; of a leaf that requires grad, a clone
    # is not a leaf, so a declared in-place forward (mark_dirty) can run on it.
    args = [a.clone() if isinstance(a, torch.Tensor) else a for a in context.args]
    before = [_copy(a) for a in args]
    try:
        outs = as_tuple(target.call(*args))
    except Exception as exc:
        why = explain(exc, target, names, "forward")
        return Outcome(Status.ERROR, why.message, location=why.location)
    changed = _changed(before, args)
    if changed and not _declares_dirty(target):
        return _mutated(context, changed, "forward", target.forward_location,
                        "declare it with ctx.mark_dirty(...) and return it, or work on a copy "
                        "(x = x.clone())")
    diff_outs = [o for o in outs if is_diff_tensor(o)]
    diff_ins = [a for a in args if is_diff_tensor(a)]
    if not diff_outs or not diff_ins:
        return Outcome(Status.PASSED, "no differentiable output: forward checked only")
    grad_outputs = make_grad_outputs(tuple(diff_outs), context.seed)
    kept = [g.clone() for g in grad_outputs]
    try:
        # torch's own call, not the engine's vjp: backward must receive these very tensors.
        torch.autograd.grad(diff_outs, diff_ins, grad_outputs, allow_unused=True)
    except Exception as exc:
        why = explain(exc, target, names, "backward")
        return Outcome(Status.ERROR, why.message, location=why.location)
    written = [i for i, (g, k) in enumerate(zip(grad_outputs, kept)) if not torch.equal(g, k)]
    if written:
        which = ", ".join("grad_output" if len(kept) == 1 else f"grad_output{i}"
                          for i in written)
        return Outcome(Status.FAILED,
                       f"backward modifies {which} in place: every other use of that gradient "
                       "then sees the changed values; compute into a new tensor (g = g * ...)",
                       location=target.backward_location)
    return Outcome(Status.PASSED)


def _copy(value: Any) -> torch.Tensor | None:
    return value.detach().clone() if isinstance(value, torch.Tensor) else None


def _changed(before: list[torch.Tensor | None], after: list[Any]) -> list[int]:
    return [i for i, (old, new) in enumerate(zip(before, after))
            if old is not None and isinstance(new, torch.Tensor)
            and (old.shape != new.shape or not torch.equal(old, new.detach()))]


def _declares_dirty(target: Target) -> bool:
    """Whether forward calls ctx.mark_dirty (a declared in-place op is allowed)."""
    forward = getattr(target.obj, "forward", None) if target.is_autograd_function else None
    try:
        return forward is not None and "mark_dirty" in inspect.getsource(forward)
    except (OSError, TypeError):
        return False


def _mutated(context: CheckContext, changed: list[int], phase: str, where: str,
             fix: str) -> Outcome:
    shown = ", ".join(f"`{context.names[i]}`" for i in changed)
    return Outcome(Status.FAILED,
                   f"{phase} modifies {shown} in place without ctx.mark_dirty: the caller's "
                   f"tensor changes under it; {fix}", location=where)

