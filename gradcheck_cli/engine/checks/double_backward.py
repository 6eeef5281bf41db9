"""gradgradcheck as registered: skipped, with the reason, when backward cannot be differentiated.

A backward that calls a Triton or CUDA kernel, runs under `torch.no_grad()`, detaches or
goes through NumPy computes right first-order gradients that autograd cannot
differentiate: with create_graph=True its gradients still do not require grad, though
grad_output does (a vector-Jacobian product is linear in grad_output, so a nonzero one
always depends on it). Such a backward has no second derivative to check, as one decorated
@once_differentiable; gradgradcheck would fail on it with an explanation about the
formula. It is skipped with the reason found in backward's source instead, unless the
checks were chosen explicitly (then it fails, saying why, as for @once_differentiable).
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import torch

from gradcheck_cli.engine.checks import gradgradcheck, mutation
from gradcheck_cli.engine.inputs import make_grad_outputs
from gradcheck_cli.engine.jacobian import as_tuple, diff_positions, fresh_copies, is_diff_tensor
from gradcheck_cli.engine.outcome import CheckContext, Outcome
from gradcheck_cli.engine.vjp import vjp
from gradcheck_cli.results import Status
from gradcheck_cli.target.discovery import Target

# What in backward's source keeps autograd out, most specific first: (pattern, words).
CAUSES: tuple[tuple[str, str], ...] = (
    (r"\w+\[[^\]\n]+\]\(", "it launches a kernel (`{text}`, a Triton-style launch), which "
                          "autograd does not see"),
    (r"torch\.ops\.\w+\.\w+", "it calls a compiled op (`{text}`) with no autograd formula "
                             "of its own"),
    (r"\.numpy\(\)|np\.\w+\(", "it computes through NumPy (`{text}`)"),
    (r"no_grad\(\)|inference_mode\(", "it runs under `torch.{text}`"),
    (r"\.detach\(\)|\.data\b", "it detaches a tensor (`{text}`)"),
)


def run(context: CheckContext) -> Outcome:
    mutated = mutation.forward_mutation(context)
    if mutated is not None:
        return mutated
    context = mutation.on_clones(context)  # a declared in-place forward is checkable so
    found = undifferentiable(context.target, context.args, context.names, context.seed)
    if found is None:
        return gradgradcheck.run(context)
    reason, location = found
    if context.explicit:
        return Outcome(Status.FAILED, f"{reason}, but gradgradcheck was asked for explicitly: "
                       "decorate backward @once_differentiable, or leave gradgradcheck out of "
                       "the checks", location=location)
    return Outcome(Status.SKIPPED, f"{reason}; decorate backward @once_differentiable to say "
                                   "so", location=location)


def undifferentiable(target: Target, args: list[Any], names: list[str], seed: int
                     ) -> tuple[str, str] | None:
    """(why backward has no second derivative, where) when its gradients do not require
    grad under create_graph=True; None when they do, or when this cannot be told (then
    gradgradcheck itself runs and says what goes wrong)."""
    positions = diff_positions(args)
    fresh = fresh_copies(args)
    try:
        outs = [o for o in as_tuple(target.call(*fresh)) if is_diff_tensor(o)]
        if not outs or not positions:
            return None
        grad_outputs = make_grad_outputs(tuple(outs), seed)
        grads = vjp(outs, [fresh[p] for p in positions], grad_outputs, create_graph=True,
                    retain_graph=True)
        detached = [k for k, g in enumerate(grads)
                    if g is not None and not g.requires_grad and bool(g.detach().any())]
        if not detached:
            return None
        # Only a backward that is a vector-Jacobian product (twice grad_output, twice the
        # gradient) is told apart so: one that ignores grad_output returns constants, which
        # do not require grad either (and gradgradcheck compares them, rightly).
        doubled = vjp(outs, [fresh[p] for p in positions],
                      [2 * g.detach() for g in grad_outputs])
    except Exception:  # gradgradcheck reports the user's exception in its own words
        return None
    if not all(_twice(doubled[k], grads[k]) for k in detached):
        return None
    detached = [positions[k] for k in detached]
    which = ", ".join(f"`{names[p]}`" for p in detached)
    cause, line = _cause(target)
    who = (f"{target.name}.backward" if target.is_autograd_function
           else f"backward through `{target.name}`")
    reason = (f"{who} cannot be differentiated{': ' + cause if cause else ''}"
              f" (with create_graph=True its gradient of {which} does not require grad, though "
              "grad_output does), so there is no second derivative to check")
    return reason, f"{target.file}:{line or target.backward_line or target.line}"


def _twice(doubled: torch.Tensor | None, once: torch.Tensor | None) -> bool:
    return doubled is not None and once is not None and torch.allclose(
        doubled, 2 * once.detach(), rtol=1e-6, atol=0)


def _cause(target: Target) -> tuple[str, int | None]:
    """What in backward's source keeps autograd out, and its line; ("", None) if unseen."""
    backward = _backward_of(target)
    try:
        lines, start = inspect.getsourcelines(backward) if backward is not None else ([], 0)
    except (OSError, TypeError):
        return "", None
    body = [(start + k, text.split("#", 1)[0]) for k, text in enumerate(lines)]
    for pattern, words in CAUSES:
        for number, text in body:
            match = re.search(pattern, text)
            if match and not text.lstrip().startswith(("def ", "@")):
                return words.format(text=match.group(0).rstrip("(")), number
    return "", None


def _backward_of(target: Target) -> Any:
    """The user's backward function: the Function's, or a custom op's registered one."""
    if target.kind == "function":
        backward = getattr(target.obj, "backward", None)
        return getattr(backward, "__wrapped__", backward)
    if target.kind == "custom_op":
        return getattr(target.obj, "_backward_fn", None)
    return None
