"""Two runs of one op compared per input: gradients and outputs of a reference and a variant.

The float32, low-precision and compile checks each run the op twice on the same values and
the same random grad_outputs (float64 and float32; float64 and bfloat16; eager and
compiled) and ask, per differentiable input, whether the variant's gradient is the
reference's within tolerances. No finite differences: one forward and one backward each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from gradcheck_cli.engine.inputs import make_grad_outputs
from gradcheck_cli.engine.jacobian import as_tuple, diff_positions, is_diff_tensor, unravel
from gradcheck_cli.engine.vjp import vjp
from gradcheck_cli.results import InputError, Worst

Gradients = tuple[torch.Tensor | None, ...]
Call = Callable[..., Any]


@dataclass
class Run:
    """What one run gave: each differentiable input's gradient, the grad_outputs used and
    the outputs."""

    grads: Gradients
    grad_outputs: list[torch.Tensor]
    outputs: tuple[Any, ...]


def run_once(call: Call, args: list[Any], grad_outputs: list[torch.Tensor] | None,
             seed: int) -> Run:
    """Forward and one backward; grad_outputs drawn from `seed` when not given (else cast
    to each output's dtype)."""
    outs = as_tuple(call(*args))
    diff_outs = [o for o in outs if is_diff_tensor(o)]
    if grad_outputs is None:
        grad_outputs = make_grad_outputs(tuple(diff_outs), seed)
    # A copy each: a backward that writes into grad_output must not change the other run's.
    grads = vjp(diff_outs, [a for a in args if is_diff_tensor(a)],
                [g.detach().to(o.dtype, copy=True) for g, o in zip(grad_outputs, diff_outs)])
    return Run(grads, grad_outputs, outs)


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


@dataclass
class Agreement:
    """Per input: how far the variant's gradient is from the reference's; the problems in
    words (`x`: differs by up to ...), empty when every input agrees."""

    inputs: list[InputError] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def compare_gradients(reference: Gradients, variant: Gradients, args: list[Any],
                      names: list[str], tolerance: Callable[[torch.Tensor], Tolerance],
                      what: str, against: str) -> Agreement:
    """Compare in float64; `tolerance(reference_gradient)` sets each input's bounds; `what`
    and `against` name the two runs in the problems ("bfloat16 gradient", "float64")."""
    found = Agreement()
    for position, r, g in zip(diff_positions(args), reference, variant):
        name = names[position]
        r = torch.zeros_like(args[position], dtype=torch.float64) if r is None \
            else r.detach().to(torch.complex128 if r.is_complex() else torch.float64)
        g = torch.zeros_like(r) if g is None else g.detach().to(r.dtype)
        bounds = tolerance(r)
        diff = (g - r).abs()
        scale = torch.maximum(g.abs(), r.abs())
        rel = torch.where(scale > 0, diff / torch.where(scale > 0, scale, 1), 0)
        wrong = ~torch.isclose(g, r, rtol=bounds.rtol, atol=bounds.atol)
        entry = InputError(index=position, name=name,
                           max_abs_error=float(diff.max()) if diff.numel() else 0.0,
                           max_rel_error=float(rel.max()) if rel.numel() else 0.0,
                           passed=not bool(wrong.any()), numel=r.numel(),
                           wrong_elements=int(wrong.sum()))
        if diff.numel():
            flat = int(diff.reshape(-1).argmax())
            entry.worst = Worst(output=0, output_index=[],
                                input_index=list(unravel(flat, r.shape)),
                                analytical=_scalar(g.reshape(-1)[flat]),
                                numerical=_scalar(r.reshape(-1)[flat]))
        if not torch.isfinite(g).all():
            entry.passed = False
            entry.note = f"{what} not finite (overflow?)"
            found.problems.append(f"`{name}`: the {what} has NaN/Inf (overflow)")
        elif not entry.passed:
            found.problems.append(
                f"`{name}`: {what} differs from {against} by up to {entry.max_abs_error:.3g} "
                f"(relative {entry.max_rel_error:.2g}) at {entry.wrong_elements} of "
                f"{entry.numel} elements")
        found.inputs.append(entry)
    return found


def _scalar(value: torch.Tensor) -> float:
    item = value.item()
    return float(item.real) if isinstance(item, complex) else float(item)


def max_output_difference(reference: tuple[Any, ...], variant: tuple[Any, ...]) -> float:
    """The largest difference between floating outputs of two runs (0 when none)."""
    worst = 0.0
    for r, g in zip(reference, variant):
        if isinstance(r, torch.Tensor) and isinstance(g, torch.Tensor) \
                and (r.is_floating_point() or r.is_complex()) and r.numel():
            wide = torch.complex128 if r.is_complex() else torch.float64
            worst = max(worst, float((g.detach().to(wide) - r.detach().to(wide)).abs().max()))
    return worst
