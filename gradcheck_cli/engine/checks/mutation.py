"""mutation: forward and backward leave their inputs and grad_outputs as they found them.

A forward that changes an input in place without `ctx.mark_dirty` corrupts the caller's
tensor and whatever autograd saved of it; a backward that writes into grad_output corrupts
the gradient of every other branch that shares it. Neither shows in gradcheck, which hands
each call fresh tensors. Each tensor is compared bit for bit before and after.
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import replace
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
    undeclared = _undeclared(context, before, args, outs)
    if undeclared is not None:
        return undeclared
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


def _undeclared(context: CheckContext, before: list[torch.Tensor | None], args: list[Any],
                outs: tuple[Any, ...], differentiated: bool = False) -> Outcome | None:
    """The failure of a forward that changed an input in place undeclared (only one that
    requires grad, if `differentiated`), or None. An input marked dirty comes back as an
    output, the very tensor: any other input changed in place was not declared, whether or
    not forward calls ctx.mark_dirty."""
    changed = [i for i in _changed(before, args) if not any(o is args[i] for o in outs)
               and not (differentiated and not is_diff_tensor(context.args[i]))]
    if not changed:
        return None
    return _mutated(context, changed, "forward",
                    _line_changing(context.target, changed[0], context.names),
                    _declares_dirty(context.target),
                    "declare it with ctx.mark_dirty(...) and return it, or work on a copy "
                    "(x = x.clone())")


def forward_mutation(context: CheckContext) -> Outcome | None:
    """Before a Jacobian check: an error when forward changes an input that requires grad
    in place without declaring it (the numerical Jacobian would differentiate a moving
    input: a 'kink' of error 1e5 and more), else None; a buffer updated in place (running
    statistics) is the mutation check's to judge. One forward, on clones; any exception is
    left to the check itself."""
    args = [a.clone() if isinstance(a, torch.Tensor) else a for a in context.args]
    before = [_copy(a) for a in args]
    try:
        outs = as_tuple(context.target.call(*args))
    except Exception:
        return None
    found = _undeclared(context, before, args, outs, differentiated=True)
    if found is not None:
        found.status = Status.ERROR
        found.message += "; the Jacobians cannot be compared while forward changes its inputs"
    return found


def _copy(value: Any) -> torch.Tensor | None:
    return value.detach().clone() if isinstance(value, torch.Tensor) else None


def _changed(before: list[torch.Tensor | None], after: list[Any]) -> list[int]:
    return [i for i, (old, new) in enumerate(zip(before, after))
            if old is not None and isinstance(new, torch.Tensor)
            and (old.shape != new.shape or not torch.equal(old, new.detach()))]


def _declares_dirty(target: Target) -> bool:
    """Whether forward calls ctx.mark_dirty (a declared in-place op is allowed)."""
    forward = getattr(target.obj, "forward", None) if target.is_autograd_function else None
    return forward is not None and _marks_dirty(forward)


@functools.lru_cache(maxsize=256)
def _marks_dirty(forward: Any) -> bool:
    """Read once per forward: every Jacobian check of a Function asks (its source is the
    module's as imported; an edited file is another forward, imported afresh)."""
    try:
        return "mark_dirty" in inspect.getsource(forward)
    except (OSError, TypeError):
        return False


def _mutated(context: CheckContext, changed: list[int], phase: str, where: str,
             declared: bool, fix: str) -> Outcome:
    shown = ", ".join(f"`{context.names[i]}`" for i in changed)
    how = ("ctx.mark_dirty does not declare it (forward marks other tensors dirty, and "
           "returns only those)" if declared else "without ctx.mark_dirty")
    return Outcome(Status.FAILED,
                   f"{phase} modifies {shown} in place {how}: the caller's tensor changes "
                   f"under it; {fix}", location=where)


# An in-place change of a name in Python source: `x.add_(`, `x[...] = `, `x += `.
_IN_PLACE = r"\b{name}\s*(\.[a-z_]+_\(|\[[^\]]*\]\s*=[^=]|[-+*/%@&|^]=|\.copy_\()"


def _line_changing(target: Target, position: int, names: list[str]) -> str:
    """`file:line` of forward's first in-place change of the input at `position` (by its
    parameter's name), else of forward."""
    forward = getattr(target.obj, "forward", None) if target.is_autograd_function else None
    param = (target.params[position].name if position < len(target.params)
             else names[position])
    try:
        lines, start = inspect.getsourcelines(forward) if forward is not None else ([], 0)
    except (OSError, TypeError):
        return target.forward_location
    pattern = re.compile(_IN_PLACE.format(name=re.escape(param)))
    for offset, text in enumerate(lines):
        if pattern.search(text.split("#", 1)[0]):
            return f"{target.file}:{start + offset}"
    return target.forward_location


class _OnClones:
    """A Function class whose `apply` runs on clones of its tensor inputs."""

    def __init__(self, cls: Any) -> None:
        self._cls = cls

    def apply(self, *args: Any, **kwargs: Any) -> Any:
        return self._cls.apply(*(_cloned(a) for a in args),
                               **{k: _cloned(v) for k, v in kwargs.items()})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cls, name)


def _cloned(value: Any) -> Any:
    return value.clone() if isinstance(value, torch.Tensor) else value


def on_clones(context: CheckContext) -> CheckContext:
    """The context of a check, its Function called on clones of its inputs when it declares
    an in-place forward (ctx.mark_dirty): on a leaf that requires grad torch refuses the
    in-place change; on a clone the gradients reach the inputs through it, and the check
    compares the Function as a function of its inputs' values (the caller's tensors are
    changed, as declared; the checked ones are not)."""
    target = context.target
    if target.kind != "function" or not _declares_dirty(target):
        return context
    return replace(context, target=replace(target, obj=_OnClones(target.obj)))
