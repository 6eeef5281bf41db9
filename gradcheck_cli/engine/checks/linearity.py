"""vjp: backward is a vector-Jacobian product, linear in grad_output (signed, random ones).

Exact mode builds each Jacobian row from a one-hot grad_output, +1 at one element: a
backward that treats negative grad_output differently (a guided-backprop ReLU zeroes it,
`grad_output.clamp(min=0)`) returns every row right, and torch's gradcheck passes it too.
Any real gradient is linear in grad_output, so for seeded random signed g₁, g₂ and
scalars a, b, backward(a·g₁ + b·g₂) must be a·backward(g₁) + b·backward(g₂). Four
backwards on one graph (g₁ twice, for a nondeterministic backward's spread), no finite
differences: gradcheck runs this once its Jacobians
agree (see `sequence`), and `--check vjp` runs it on its own, for ops too large for a
Jacobian check. A failure's diagnosis (`not-a-vjp`) says which property breaks: the sign
(backward(-g) is not -backward(g)), the scale, or the sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gradcheck_cli.engine.checks.mutation import on_clones
from gradcheck_cli.engine.contract import explain
from gradcheck_cli.engine.diagnose.rules.not_a_vjp import RULE
from gradcheck_cli.engine.jacobian import as_tuple, diff_positions, is_diff_tensor
from gradcheck_cli.engine.outcome import CheckContext, Outcome, Tolerances
from gradcheck_cli.engine.vjp import vjp
from gradcheck_cli.results import InputError, Status

Grads = list[torch.Tensor | None]


@dataclass
class Nonlinear:
    """One input whose gradient is not linear in grad_output."""

    position: int
    error: float  # the largest |backward(a·g₁ + b·g₂) - (a·backward(g₁) + b·backward(g₂))|
    scale: float  # the largest of the terms compared
    wrong: int  # elements beyond rounding


def run(context: CheckContext) -> Outcome:
    """The check on its own: one forward, then `nonlinear`'s backwards."""
    context = on_clones(context)
    target, args, names = context.target, context.args, context.names
    positions = diff_positions(args)
    if not positions:
        return Outcome(Status.SKIPPED, "no input requires grad, so there is no backward to test")
    try:
        outs = [o for o in as_tuple(target.call(*args)) if is_diff_tensor(o)]
    except Exception as exc:
        why = explain(exc, target, names, "forward")
        return Outcome(Status.ERROR, why.message, location=why.location)
    if not outs:
        return Outcome(Status.SKIPPED, "no output of forward is differentiable, so there is "
                                       "no backward to test")
    try:
        found = nonlinear(outs, [args[p] for p in positions], context.seed, context.tolerances)
    except Exception as exc:
        why = explain(exc, target, names, "backward")
        return Outcome(Status.ERROR, why.message, location=why.location)
    by_position = {f.position: f for f in found}
    entries = []
    for k, position in enumerate(positions):
        bad = by_position.get(k)
        entries.append(InputError(
            index=position, name=names[position], numel=args[position].numel(),
            max_abs_error=bad.error if bad else 0.0,
            max_rel_error=bad.error / bad.scale if bad and bad.scale else 0.0,
            passed=bad is None, wrong_elements=bad.wrong if bad else 0))
    if not found:
        return Outcome(Status.PASSED, inputs=entries)
    mark(entries, found, positions, names, outs, args, context.seed)
    return Outcome(Status.FAILED, message(found, positions, names), inputs=entries,
                   location=target.backward_location)


def signed_like(outputs: list[torch.Tensor], generator: torch.Generator
                ) -> list[torch.Tensor]:
    """Random grad_outputs, uniform in [-1, 1] (real and imaginary parts), in each
    output's dtype: half their entries negative, which one-hot rows never are."""
    found = []
    for output in outputs:
        parts = 2 if output.is_complex() else 1
        values = [torch.rand(output.shape, generator=generator, dtype=torch.float64) * 2 - 1
                  for _ in range(parts)]
        value = torch.complex(*values) if parts == 2 else values[0]
        found.append(value.to(output.dtype).to(output.device))
    return found


def nonlinear(outputs: list[torch.Tensor], inputs: list[torch.Tensor], seed: int,
              tolerances: Tolerances) -> list[Nonlinear]:
    """The inputs (by index in `inputs`) whose backward is not linear in grad_output."""
    generator = torch.Generator().manual_seed(seed + 7_000_003)
    g1, g2 = signed_like(outputs, generator), signed_like(outputs, generator)
    # Scalars away from 0 and ±1, of both signs: each term of the sum matters.
    a = 0.5 + float(torch.rand((), generator=generator, dtype=torch.float64))
    b = -(0.5 + float(torch.rand((), generator=generator, dtype=torch.float64)))
    combined = [a * x + b * y for x, y in zip(g1, g2)]
    first, second, both, again = (_pull(outputs, inputs, g) for g in (g1, g2, combined, g1))
    found = []
    for k, (x, y, z, x2) in enumerate(zip(first, second, both, again)):
        if x is None and y is None and z is None:
            continue
        like = next(t for t in (x, y, z) if t is not None)
        x, y, z, x2 = (torch.zeros_like(like) if t is None else t for t in (x, y, z, x2))
        # A nondeterministic backward (within nondet_tol, or gradcheck says so) differs
        # from itself by its spread: three results combined, so up to about thrice that.
        spread = float((x - x2).abs().nan_to_num(0).max()) if x.numel() else 0.0
        noise = Tolerances(nondet_tol=tolerances.nondet_tol + 3 * (abs(a) + abs(b)) * spread)
        expected = a * x + b * y
        error, scale, wrong = _apart(z, expected, [(a * x).abs(), (b * y).abs()], noise)
        if wrong:
            found.append(Nonlinear(k, error, scale, wrong))
    return found


def _pull(outputs: list[torch.Tensor], inputs: list[torch.Tensor],
          grad_outputs: list[torch.Tensor]) -> Grads:
    grads = vjp(outputs, inputs, grad_outputs, retain_graph=True)
    return [None if g is None else g.detach() for g in grads]


def _apart(got: torch.Tensor, expected: torch.Tensor, terms: list[torch.Tensor],
           tolerances: Tolerances) -> tuple[float, float, int]:
    """(largest difference, largest term, elements beyond rounding) of two gradients that
    linearity makes equal (`terms`: the magnitudes of what was summed). Rounding: √ε of the
    largest term (about 1e-8 in float64, 3e-4 in float32), plus nondet_tol: far above a
    sum's rounding, far below what a sign or a clamp changes."""
    if got.shape != expected.shape:
        return float("inf"), 0.0, got.numel()
    values = [got.abs(), expected.abs(), *terms]
    scale = max((float(v.nan_to_num(0).max()) for v in values if v.numel()), default=0.0)
    real = got.real.dtype if got.is_complex() else got.dtype
    allowed = torch.finfo(real).eps ** 0.5 * scale + tolerances.nondet_tol
    difference = (got - expected).abs()
    beyond = ~(difference <= allowed)  # NaN counts as beyond
    beyond &= ~(got == expected)  # the same infinities agree
    error = float(difference.nan_to_num(float("inf")).max()) if difference.numel() else 0.0
    return error, scale, int(beyond.sum())


def message(found: list[Nonlinear], positions: list[int], names: list[str]) -> str:
    shown = ", ".join(f"`{names[positions[f.position]]}`" for f in found)
    worst = max(f.error for f in found)
    return (f"backward is not linear in grad_output (the gradient of {shown}): "
            "backward(a·g₁ + b·g₂) differs from a·backward(g₁) + b·backward(g₂) by up to "
            f"{worst:.3g} for random signed g₁, g₂, though a vector-Jacobian product is linear; "
            "one-hot grad_outputs (the Jacobian rows) do not show it")


def mark(entries: list[InputError], found: list[Nonlinear], positions: list[int],
         names: list[str], outputs: list[torch.Tensor], args: list[Any], seed: int) -> None:
    """Fail and diagnose each nonlinear input's entry (by argument position), asking
    backward which property of linearity it breaks."""
    inputs = [args[p] for p in positions]
    by_index = {e.index: e for e in entries}
    for bad in found:
        entry = by_index[positions[bad.position]]
        entry.passed = False
        entry.max_abs_error = max(entry.max_abs_error or 0.0, bad.error)
        if bad.scale:
            entry.max_rel_error = max(entry.max_rel_error or 0.0, bad.error / bad.scale)
        entry.wrong_elements = max(entry.wrong_elements, bad.wrong)
        entry.worst = None  # the Jacobian entries agree: no worst entry to show
        entry.diagnosis = RULE.told(names[positions[bad.position]],
                                    _breaks(outputs, inputs, bad.position, seed))


def _breaks(outputs: list[torch.Tensor], inputs: list[torch.Tensor], k: int, seed: int
            ) -> str:
    """Which property fails for input k: "sign" (backward(-g) ≠ -backward(g)), "scale"
    (backward(2g) ≠ 2·backward(g)) or "sum"."""
    generator = torch.Generator().manual_seed(seed + 7_000_003)
    g = signed_like(outputs, generator)
    try:
        once = _pull(outputs, inputs, g)[k]
        for name, factor in (("sign", -1.0), ("scale", 2.0)):
            other = _pull(outputs, inputs, [factor * x for x in g])[k]
            if once is None or other is None:
                continue
            _, _, wrong = _apart(other, factor * once, [once.abs()], Tolerances())
            if wrong:
                return name
    except Exception:  # backward ran three times already: no more evidence, still nonlinear
        return "sum"
    return "sum"

