"""One probe and one directional comparison: vᵀJ by backward, vᵀf's difference along u."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from gradcheck_cli.engine.jacobian import (
    analytical_row,
    diff_positions,
    evaluate_flat,
    flat_outputs,
)
from gradcheck_cli.engine.probe.settings import ProbeSettings
from gradcheck_cli.engine.probe.vectors import Perturbed, Probe, Search, Trial, signed
from gradcheck_cli.engine.stats import InputStats, spread

Fn = Callable[..., Any]


class Measurer:
    """The function probed, its inputs and outputs, and the measurements probe mode makes
    of them; the per-input statistics they fold into."""

    def __init__(self, fn: Fn, args: list[Any], func_out: tuple[Any, ...], *, eps: float,
                 atol: float, rtol: float, seed: int, settings: ProbeSettings) -> None:
        self.fn = fn
        self.args = args
        self.func_out = func_out
        self.eps = eps
        self.atol = atol
        self.rtol = rtol
        self.settings = settings
        self.generator = torch.Generator().manual_seed(seed)
        self.positions = diff_positions(args)
        self.diff_inputs = [args[i] for i in self.positions]
        self.out_positions = diff_positions(func_out)
        self.outputs = [func_out[i] for i in self.out_positions]
        self.sizes = [o.numel() for o in self.outputs]
        reference = flat_outputs(func_out, self.out_positions)
        self.eps_out = torch.finfo(reference.dtype).eps
        self.reference = reference.to(torch.float64).abs()  # |f(x)|, for rounding bounds
        self.inputs = [Perturbed(x) for x in self.diff_inputs]
        self.stats = [InputStats(position=p, numel=args[p].numel()) for p in self.positions]
        self.search: Search | None = None  # the localization under way, if any

    def probe(self, check_nondeterminism: bool) -> Probe:
        parts = []
        for output in self.outputs:
            # Round v to each output's dtype first, so the numerical side uses exactly the
            # grad_output backward receives.
            parts.append(signed(output.numel(), self.generator).to(output.dtype)
                         .to(torch.float64))
        v = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
        raw = analytical_row(self.outputs, self.diff_inputs, self.sizes, 0, grad_output=v)
        if check_nondeterminism:
            again = analytical_row(self.outputs, self.diff_inputs, self.sizes, 0,
                                   grad_output=v)
            for stat, g1, g2 in zip(self.stats, raw, again):
                stat.nondeterminism = max(stat.nondeterminism, spread(g1, g2))
        grads = [self._finite(stat, grad) for stat, grad in zip(self.stats, raw)]
        directions, weights = [], []
        for inp, grad in zip(self.inputs, grads):
            direction = signed(inp.numel, self.generator).mul_(inp.scale)
            if inp.is_complex:
                direction = torch.complex(direction,
                                          signed(inp.numel, self.generator).mul_(inp.scale))
            directions.append(direction)
            weights.append(torch.dot(grad.abs().to(torch.float64),
                                     direction.abs().to(torch.float64)).item())
        return Probe(v, grads, directions, self.rounding_of(v), weights)

    def rounding_of(self, v: torch.Tensor) -> float:
        """ε_out·Σ|vᵣ||fᵣ|: the rounding of vᵀf for outputs weighed by v."""
        return self.eps_out * float(torch.dot(v.abs(), self.reference))

    @staticmethod
    def _finite(stat: InputStats, grad: torch.Tensor) -> torch.Tensor:
        """vᵀJ widened, its non-finite entries counted (analytical) and zeroed."""
        # A sum is finite when every term is (barring overflow, which only costs the full
        # scan below).
        if not math.isfinite(abs(grad.sum().item())) and not bool(torch.isfinite(grad).all()):
            finite = torch.isfinite(grad)
            bad = ~finite
            stat.nonfinite_analytical += int(bad.sum())
            if stat.first_nonfinite is None:
                column = int(torch.nonzero(bad)[0])
                stat.first_nonfinite = ("analytical", 0, column, complex(grad[column]).real)
            grad = torch.where(finite, grad, 0)
        return grad.to(torch.complex128 if grad.is_complex() else torch.float64)

    def difference(self, k: int, probe: Probe, lo: int, hi: int, step: float
                   ) -> tuple[float, float, float] | None:
        """(analytical, numerical, analytical rounding) of the derivative of vᵀf along the
        direction restricted to [lo, hi), by a central difference of step `step`; None
        when forward is not finite there."""
        inp = self.inputs[k]
        original = inp.original[lo:hi]
        offset = step * probe.directions[k][lo:hi]
        plus = (original.to(inp.wide) + offset).to(original.dtype)
        minus = (original.to(inp.wide) - offset).to(original.dtype)
        try:
            inp.set(lo, hi, plus)
            after = evaluate_flat(self.fn, self.args, self.func_out, self.out_positions,
                                  step)
            inp.set(lo, hi, minus)
            before = evaluate_flat(self.fn, self.args, self.func_out, self.out_positions,
                                   step)
        finally:
            inp.restore(lo, hi)
        change = after.to(torch.float64) - before.to(torch.float64)
        numerical = torch.dot(probe.v, change).item()
        # v has no zero entry, so a non-finite change makes the dot non-finite.
        if not math.isfinite(numerical) and not bool(torch.isfinite(change).all()):
            self._numerical_nonfinite(k, change)
            return None
        # The analytical side along the perturbation actually stored (x + h·u rounds):
        # the rounding of the input then cancels out of the comparison.
        realized = plus.to(inp.wide) - minus.to(inp.wide)
        grad = probe.grads[k][lo:hi]
        # Re(conj(g)·Δ) for a complex input: torch's gradient convention for a real loss.
        analytical = (torch.vdot(grad, realized).real.item() if inp.is_complex
                      else torch.dot(grad, realized).item())
        # Σ|gⱼ||Δⱼ| / 2h = Σ|gⱼ||uⱼ| over the block, up to rounding.
        weight = probe.weight(k, lo, hi)
        return analytical / (2 * step), numerical / (2 * step), 2 * inp.eps * weight

    def measure(self, k: int, probe: Probe, lo: int, hi: int, both_steps: bool,
                truncation: float = 0.0, passes_at: float | None = None) -> Trial | None:
        """A test of block [lo, hi). With `both_steps`, the truncation is estimated by
        repeating at 2h (a smooth function's error grows 4x, a wrong gradient's stays);
        else `truncation` is taken from the probe's full-input test.

        `passes_at`: a discrepancy within this many times the rounding noise alone is a
        clear pass whatever truncation adds to the noise (a test is judged at
        `confidence` times the noise, and the noise only grows with it), so the repeat
        at 2h is skipped and the noise counts no truncation: the same verdict for half
        the evaluations."""
        step = self.inputs[k].step
        first = self.difference(k, probe, lo, hi, step)
        self.spent(2)
        if first is None:
            return None
        analytical, numerical, analytical_rounding = first
        discrepancy = analytical - numerical
        rounding = probe.rounding / step + analytical_rounding
        if both_steps and passes_at is not None and abs(discrepancy) <= passes_at * rounding:
            return Trial(lo, hi, discrepancy, analytical, numerical, rounding)
        if both_steps:
            second = self.difference(k, probe, lo, hi, 2 * step)
            self.spent(2)
            if second is None:
                return None
            truncation = abs(discrepancy - (second[0] - second[1]))
        noise = truncation + probe.rounding / step + analytical_rounding
        return Trial(lo, hi, discrepancy, analytical, numerical, noise)

    def spent(self, count: int) -> None:
        if self.search is not None:
            self.search.evaluations += count

    def _numerical_nonfinite(self, k: int, change: torch.Tensor) -> None:
        stat = self.stats[k]
        bad = ~torch.isfinite(change)
        stat.nonfinite_numerical += int(bad.sum())
        if stat.first_nonfinite is None:
            row = int(torch.nonzero(bad)[0])
            stat.first_nonfinite = ("numerical", row, 0, float(change[row]))

    def fold(self, stat: InputStats, analytical: complex | float,
             numerical: complex | float) -> None:
        difference = abs(analytical - numerical)
        stat.max_abs = max(stat.max_abs, difference)
        scale = max(abs(analytical), abs(numerical))
        if scale > 0:
            stat.max_rel = max(stat.max_rel, difference / scale)
