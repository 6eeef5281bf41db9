"""The Jacobian comparisons of a check in its mode: one, or one per part of complex outputs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from gradcheck_cli.engine.checks.subject import Fn, Request, Subject
from gradcheck_cli.engine.diagnose.case import Mover, Pull, Remeasure
from gradcheck_cli.engine.diagnose.registry import evidence_rules
from gradcheck_cli.engine.inputs import make_grad_outputs
from gradcheck_cli.engine.jacobian import (
    as_tuple,
    compare,
    diff_positions,
    is_diff_tensor,
    unravel,
)
from gradcheck_cli.engine.probe import probe_compare
from gradcheck_cli.engine.stats import Comparison
from gradcheck_cli.engine.vjp import vjp

Part = Callable[[torch.Tensor], torch.Tensor]
# As torch: complex outputs are checked as two real functions, the imaginary part first.
PARTS: tuple[tuple[str, Part], ...] = (("imaginary", torch.imag), ("real", torch.real))


def comparisons(subject: Subject, request: Request, mode: str, func_out: tuple[Any, ...],
                diff_outputs: list[torch.Tensor]) -> list[Comparison]:
    """One comparison, or two (imaginary, then real part) for complex outputs, as torch."""
    if not has_complex(diff_outputs):
        return [compare_at(subject, request, mode, subject.numeric_fn, func_out)]
    found = []
    for index, (_, part) in enumerate(PARTS):
        wrapped = apply_to_complex(subject.fn, part)
        found.append(compare_at(subject, request, mode,
                                apply_to_complex(subject.numeric_fn, part),
                                as_tuple(wrapped(*subject.args)), part=index))
    return found


def compare_at(subject: Subject, request: Request, mode: str, fn: Fn,
               func_out: tuple[Any, ...], eps: float | None = None, part: int = 0
               ) -> Comparison:
    """The comparison of `fn`'s Jacobians in `mode`, at the check's step or `eps`."""
    tol = request.tolerances
    if mode == "probe":
        return probe_compare(fn, subject.args, func_out, eps=eps or tol.eps, atol=tol.atol,
                             rtol=tol.rtol, seed=request.seed * 2 + part,
                             evidence=evidence_rules())
    return compare(fn, subject.args, func_out, eps=eps or tol.eps, atol=tol.atol,
                   rtol=tol.rtol, budget_bytes=request.budget_bytes)


def has_complex(outputs: Sequence[torch.Tensor]) -> bool:
    return any(o.is_complex() for o in outputs)


def part_functions(subject: Subject, complex_outputs: bool) -> list[tuple[str, Fn]]:
    """The functions compared: `fn`, or one per part of complex outputs (labelled)."""
    if not complex_outputs:
        return [("", subject.fn)]
    return [(label, apply_to_complex(subject.fn, part)) for label, part in PARTS]


def mover(subject: Subject, fn: Fn) -> Mover:
    """move(position, flat, step): `fn`'s differentiable outputs, flat, with one element of
    one input moved by `step` (restored afterwards)."""

    def move(position: int, flat: int, step: float) -> torch.Tensor:
        data = subject.args[position].data
        index = unravel(flat, data.shape)
        original = data[index].clone()
        try:
            data[index] = original + step
            outs = as_tuple(fn(*subject.args))
            return torch.cat([o.detach().reshape(-1) for o in outs if is_diff_tensor(o)])
        finally:
            data[index] = original

    return move


def puller(subject: Subject, fn: Fn, seed: int) -> Pull:
    """pull(scale): what backward returns through `fn` for grad_output = scale × v, one
    random v for every scale (each scale's answer computed once)."""
    found: dict[float, dict[int, torch.Tensor] | None] = {}
    positions = diff_positions(subject.args)

    def pull(scale: float) -> dict[int, torch.Tensor] | None:
        if scale not in found:
            try:
                found[scale] = _pulled(subject, fn, positions, scale, seed)
            except Exception:  # a backward that fails here failed no comparison: no evidence
                found[scale] = None
        return found[scale]

    return pull


def _pulled(subject: Subject, fn: Fn, positions: list[int], scale: float, seed: int
            ) -> dict[int, torch.Tensor]:
    outs = [o for o in as_tuple(fn(*subject.args)) if is_diff_tensor(o)]
    v = [scale * g.detach() for g in make_grad_outputs(tuple(outs), seed)]
    grads = vjp(outs, [subject.args[p] for p in positions], v)
    return {p: g.detach().reshape(-1) for p, g in zip(positions, grads) if g is not None}


def remeasurer(subject: Subject, request: Request, mode: str, complex_outputs: bool
               ) -> Remeasure:
    """remeasure(steps): each input's largest error when compared at each step instead
    (over both parts of complex outputs)."""

    def remeasure(steps: Sequence[float]) -> list[dict[int, float]]:
        if not complex_outputs:
            func_out = as_tuple(subject.fn(*subject.args))
            return [_errors([compare_at(subject, request, mode, subject.numeric_fn, func_out,
                                        eps)]) for eps in steps]
        found = []
        for eps in steps:
            parts = []
            for index, (_, part) in enumerate(PARTS):
                func_out = as_tuple(apply_to_complex(subject.fn, part)(*subject.args))
                parts.append(compare_at(subject, request, mode,
                                        apply_to_complex(subject.numeric_fn, part), func_out,
                                        eps, part=index))
            found.append(_errors(parts))
        return found

    return remeasure


def _errors(parts: list[Comparison]) -> dict[int, float]:
    """{input position: the largest abs error over `parts`}."""
    errors: dict[int, float] = {}
    for comparison in parts:
        for stat in comparison.inputs:
            errors[stat.position] = max(errors.get(stat.position, 0.0), stat.max_abs)
    return errors


def apply_to_complex(fn: Fn, part: Part) -> Fn:
    """`fn` with each complex output replaced by its part (real outputs pass through)."""

    def wrapped(*args: Any) -> tuple[Any, ...]:
        return tuple(part(o) if isinstance(o, torch.Tensor) and o.is_complex() else o
                     for o in as_tuple(fn(*args)))

    return wrapped
