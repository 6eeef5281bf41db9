"""jvp: forward-mode derivatives (a Function's jvp) against finite differences, per input.

torch's gradcheck compares forward mode only when asked (`check_forward_ad=True`), one
dual-number evaluation per input element. Here the forward-mode Jacobian goes through
the very comparison gradcheck uses (exact or probe mode, per-input errors, localization,
diagnosis), by transposing it: u ↦ J·u is linear, so the gradient of vᵀ(J·u) with respect
to the tangent u is Jᵀv, the vector-Jacobian product those comparisons ask for. `Transposed`
is an autograd Function whose forward is the target's and whose backward computes that
gradient through the user's jvp (reverse over forward mode; the primal inputs are detached,
so the user's backward never runs). A jvp that autograd cannot differentiate with respect
to its tangents (a kernel call, a detach) is transposed column by column instead.

"No jvp" is `n/a` (skipped with the reason), never a failure: a Function without a jvp
staticmethod, a custom op (torch.library registers no forward-mode formula), an op inside
a composite that has none.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any

import torch
import torch.autograd.forward_ad as fwad

from gradcheck_cli.engine import cost
from gradcheck_cli.engine.checks.mutation import on_clones
from gradcheck_cli.engine.checks.sequence import check_jacobians
from gradcheck_cli.engine.checks.subject import Request, Subject
from gradcheck_cli.engine.contract import explain
from gradcheck_cli.engine.describe import safe_str
from gradcheck_cli.engine.jacobian import as_tuple, diff_positions, is_diff_tensor
from gradcheck_cli.engine.outcome import CheckContext, Outcome
from gradcheck_cli.engine.vjp import vjp
from gradcheck_cli.results import Status
from gradcheck_cli.target.discovery import Target

# Column by column (a jvp autograd cannot differentiate), one jvp per input element per
# backward: up to this many input elements in all; beyond, the check says it cannot.
COLUMNS_LIMIT = 4096

NO_OP_FORMULA = ("custom ops have no forward-mode AD formula (torch.library registers "
                 "backward only): forward-mode AD through the op gives no tangent")


class NotTransposable(Exception):
    """The jvp cannot be transposed: not differentiable in its tangents, and too large to
    transpose column by column."""


def run(context: CheckContext) -> Outcome:
    context = on_clones(context)
    target, args, names = context.target, context.args, context.names
    why_not = not_applicable(target)
    if why_not is not None:
        return Outcome(Status.SKIPPED, why_not)
    positions = diff_positions(args)
    if not positions:
        return Outcome(Status.ERROR, "no input requires grad, so there is no derivative to "
                       "check: give at least one floating tensor input with "
                       "`requires_grad: true`")
    if any(args[p].is_complex() for p in positions):
        return Outcome(Status.SKIPPED, "complex inputs: the forward-mode check compares real "
                       "inputs only (gradcheck checks complex ones in reverse mode)")
    try:
        outs = as_tuple(target.call(*args))
    except Exception as exc:
        why = explain(exc, target, names, "forward")
        return Outcome(Status.ERROR, why.message, location=why.location)
    differentiable = [is_diff_tensor(o) for o in outs]
    if any(d and o.is_complex() for d, o in zip(differentiable, outs)):
        return Outcome(Status.SKIPPED, "complex outputs: the forward-mode check compares real "
                       "outputs only (gradcheck checks complex ones in reverse mode)")
    trial = _trial(target, args, names, differentiable)
    if trial is not None:
        return trial
    fn = transposed(target, differentiable)
    # Composites are checked as one unit: the culprit search of a failed gradcheck finds
    # Functions by their backward, which is not what this check compares.
    subject = Subject(target if target.is_autograd_function else replace(target, kind="function"),
                      fn, args, names)
    request = Request(context.tolerances, cost.memory_budget(context.budget // 16,
                                                             context.budget),
                      context.mode, context.seed)
    outcome = check_jacobians(subject, request)
    _reword(outcome, target)
    return outcome


def not_applicable(target: Target) -> str | None:
    """Why forward mode cannot be checked for `target` (n/a), or None when it may be."""
    if target.kind == "custom_op":
        return NO_OP_FORMULA
    if target.kind == "function" and not _defines(target.obj, "jvp"):
        return (f"{target.name} has no jvp staticmethod: forward-mode AD is not implemented "
                "(n/a)")
    return None


def _defines(cls: Any, name: str) -> bool:
    """Whether the Function class defines `name` itself rather than inheriting torch's."""
    for klass in getattr(cls, "__mro__", ()):
        if name in vars(klass):
            return not klass.__module__.startswith("torch.")
    return False


def _trial(target: Target, args: list[Any], names: list[str], differentiable: list[bool]
           ) -> Outcome | None:
    """One forward-mode evaluation: a skip when forward mode is not implemented inside,
    an error when the user's jvp raises, else None."""
    try:
        with torch.enable_grad(), fwad.dual_level():
            duals = [fwad.make_dual(a.detach(), torch.ones_like(a).requires_grad_())
                     if is_diff_tensor(a) else a for a in args]
            tangents = [fwad.unpack_dual(o).tangent if isinstance(o, torch.Tensor) else None
                        for o in as_tuple(target.call(*duals))]
    except NotImplementedError as exc:
        text = safe_str(exc)
        if "must implement the jvp function" in text:
            return Outcome(Status.SKIPPED, "a custom Function inside has no jvp staticmethod: "
                           "forward-mode AD is not implemented (n/a)")
        if "forward AD" in text:
            return Outcome(Status.SKIPPED, "forward-mode AD is not implemented for an op "
                           f"inside (n/a): {text.splitlines()[0]}")
        raise
    except Exception as exc:
        why = explain(exc, target, names, "jvp")
        return Outcome(Status.ERROR, why.message + _saved_hint(target),
                       location=why.location)
    if not target.is_autograd_function and all(
            t is None for t, d in zip(tangents, differentiable) if d):
        return Outcome(Status.SKIPPED, "forward-mode AD gives no tangent for any output: an "
                       "op inside has no forward-mode formula (a custom op?), n/a")
    total = sum(a.numel() for a in args if is_diff_tensor(a))
    if total > COLUMNS_LIMIT and not all(t.requires_grad for t in tangents if t is not None):
        return Outcome(Status.SKIPPED, _too_many(total))
    return None


def _saved_hint(target: Target) -> str:
    """What a jvp that reads ctx.saved_tensors without save_for_forward gets wrong."""
    try:
        source = inspect.getsource(target.obj) if target.kind == "function" else ""
    except (OSError, TypeError):
        return ""
    if "saved_tensors" in source and "save_for_forward" not in source:
        return (". In forward mode, ctx.saved_tensors holds only what forward passed to "
                "ctx.save_for_forward: call it (as well as save_for_backward)")
    return ""


def _too_many(total: int) -> str:
    return (f"jvp is not differentiable with respect to its tangents (computed without "
            f"autograd), and its {total} input elements are too many to check it one column "
            f"at a time (at most {COLUMNS_LIMIT}): not checked")


def transposed(target: Target, differentiable: list[bool]) -> Any:
    """`fn(*args)`: the target's outputs, whose backward is the transpose of its jvp."""

    def fn(*args: Any) -> tuple[Any, ...]:
        return as_tuple(Transposed.apply(target, differentiable, *args))

    return fn


class Transposed(torch.autograd.Function):
    """Forward: the target's outputs. Backward: Jᵀv through the target's forward mode."""

    @staticmethod
    def forward(ctx: Any, target: Target, differentiable: list[bool], *args: Any) -> Any:
        ctx.target = target
        ctx.differentiable = differentiable
        ctx.args = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
        with torch.no_grad():
            outs = as_tuple(target.call(*ctx.args))
        # Copies: an output that is an input (or a view of one) must not alias it here.
        outs = tuple(o.clone() if isinstance(o, torch.Tensor) else o for o in outs)
        ctx.mark_non_differentiable(*[o for o, d in zip(outs, differentiable)
                                      if isinstance(o, torch.Tensor) and not d])
        return outs

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Any:
        wanted = [k for k, a in enumerate(ctx.args) if ctx.needs_input_grad[k + 2]]
        result = jvp_transposed(ctx.target, ctx.args, ctx.differentiable, wanted, grads)
        return (None, None, *result)


def jvp_transposed(target: Target, args: list[Any], differentiable: list[bool],
                   wanted: list[int], grads: tuple[Any, ...]) -> list[torch.Tensor | None]:
    """Jᵀv by argument position (None where not wanted), v = `grads`, through forward mode."""
    tangents = {k: torch.zeros_like(args[k], requires_grad=True) for k in wanted}
    with torch.enable_grad(), fwad.dual_level():
        duals = [fwad.make_dual(a, tangents[k]) if k in tangents else a
                 for k, a in enumerate(args)]
        pairs = [(fwad.unpack_dual(o).tangent, g) for o, g, d in
                 zip(as_tuple(target.call(*duals)), grads, differentiable)
                 if d and g is not None]
    pairs = [(t, g) for t, g in pairs if t is not None]
    result: list[torch.Tensor | None] = [None] * len(args)
    if not pairs:
        return result
    if not all(t.requires_grad for t, _ in pairs):
        return _by_columns(target, args, differentiable, wanted, grads)
    # Outside the dual level: inside, the primals the jvp saved are dual tensors, and
    # differentiating through them would carry (and compute) tangents of the gradients.
    with torch.enable_grad():
        found = vjp([t for t, _ in pairs], [tangents[k] for k in wanted],
                    [g.to(t.dtype) for t, g in pairs])
    for k, grad in zip(wanted, found):
        result[k] = grad
    return result


def _by_columns(target: Target, args: list[Any], differentiable: list[bool],
                wanted: list[int], grads: tuple[Any, ...]) -> list[torch.Tensor | None]:
    """Jᵀv one input element at a time, (Jᵀv)ⱼ = vᵀ(J·eⱼ), for a jvp autograd cannot
    differentiate with respect to its tangents."""
    total = sum(args[k].numel() for k in wanted)
    if total > COLUMNS_LIMIT:  # `_trial` skips the check before it comes to this
        raise NotTransposable(_too_many(total))
    result: list[torch.Tensor | None] = [None] * len(args)
    for k in wanted:
        column = torch.zeros(args[k].numel(), dtype=args[k].dtype, device=args[k].device)
        for j in range(args[k].numel()):
            unit = torch.zeros_like(args[k])
            unit.view(-1)[j] = 1
            with torch.no_grad(), fwad.dual_level():
                duals = [fwad.make_dual(a, unit) if i == k else a for i, a in enumerate(args)]
                outs = as_tuple(target.call(*duals))
                for o, g, d in zip(outs, grads, differentiable):
                    tangent = fwad.unpack_dual(o).tangent if d and g is not None else None
                    if tangent is not None:
                        column[j] += (tangent.reshape(-1).to(torch.float64)
                                      * g.reshape(-1).to(torch.float64)).sum().to(column.dtype)
        result[k] = column.reshape(args[k].shape)
    return result


# What the Jacobian comparison says of backward, in forward mode's words.
WORDS = (("backward returned non-finite values for", "jvp returned non-finite values for"),
         ("returns no gradient for", "gives no term for"),
         ("return its gradient", "add its tangent's term"),
         ("gradient of `", "forward-mode derivative (jvp) along `"),
         ("the gradient returned for", "the jvp for"),
         ("in backward", "in jvp"), ("backward", "jvp"), ("grad_output", "tangent"))


def _reword(outcome: Outcome, target: Target) -> None:
    """The outcome in forward mode's terms, located at the jvp."""
    outcome.message = _words(outcome.message)
    for entry in outcome.inputs:
        if entry.diagnosis is not None:
            entry.diagnosis.detail = _words(entry.diagnosis.detail)
    if outcome.location == target.backward_location:
        outcome.location = jvp_location(target)


def _words(text: str) -> str:
    for before, after in WORDS:
        text = text.replace(before, after)
    return text


def jvp_location(target: Target) -> str:
    """`file:line` of the Function's jvp, else of the target."""
    jvp = getattr(target.obj, "jvp", None) if target.kind == "function" else None
    try:
        lines, start = inspect.getsourcelines(jvp) if jvp is not None else ([], 0)
    except (OSError, TypeError):
        lines, start = [], 0
    # The `def` line, below any decorator (@staticmethod).
    offset = next((k for k, text in enumerate(lines) if text.lstrip().startswith("def ")), 0)
    return f"{target.file}:{start + offset if start else target.line}"
