"""Probe mode's random vectors: a probe (v, vᵀJ, directions u), a perturbed input, a test."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from gradcheck_cli.engine.probe.settings import STEP_FACTOR


@dataclass
class Probe:
    """One random grad_output v, its vᵀJ for every input, and the directions u."""

    v: torch.Tensor  # float64, flat over the outputs, exactly as backward received it
    grads: list[torch.Tensor]  # vᵀJ per input, flat, widened, non-finite entries zeroed
    directions: list[torch.Tensor]  # per input, flat, widened, scaled by max(1, |x|)
    rounding: float  # ε_out·Σ|vᵣ||fᵣ|: the rounding of vᵀf, before dividing by the step
    # Per input, Σ|gⱼ||uⱼ|, and once localization starts its running sum (with a leading 0)
    # so that the analytical rounding of any block [lo, hi) costs O(1).
    weights: list[float] = field(default_factory=list)
    running: dict[int, torch.Tensor] = field(default_factory=dict)

    def borrow(self, v: torch.Tensor | None = None, rounding: float | None = None) -> Probe:
        """A copy whose per-input lists can be changed (a test along other directions),
        with its own running sums."""
        return Probe(self.v if v is None else v, [*self.grads], [*self.directions],
                     self.rounding if rounding is None else rounding, [*self.weights])

    def weight(self, k: int, lo: int, hi: int) -> float:
        """Σ|gⱼ||uⱼ| over [lo, hi) of input k."""
        if lo == 0 and hi == self.grads[k].numel():
            return self.weights[k]
        if k not in self.running:
            running = torch.zeros(self.grads[k].numel() + 1, dtype=torch.float64)
            torch.cumsum(self.grads[k].abs() * self.directions[k].abs(), 0, out=running[1:])
            self.running[k] = running
        return (self.running[k][hi] - self.running[k][lo]).item()


@dataclass
class Trial:
    """A directional comparison on elements [lo, hi) of one input, at step h."""

    lo: int
    hi: int
    discrepancy: float  # analytical - numerical
    analytical: float
    numerical: float
    noise: float

    def significant(self, confidence: float) -> bool:
        return abs(self.discrepancy) > confidence * self.noise


@dataclass
class Search:
    """Localization state for one input."""

    evaluations: int = 0
    findings: list[tuple[int, int, complex | float, complex | float]] = field(
        default_factory=list)
    checked_columns: set[int] = field(default_factory=set)
    clean: int = 0  # elements examined without a wrong entry
    exhausted: bool = False


Failed = list[tuple[Probe, Trial]]  # an input's failed probes, each with its full-input test


def most_significant(failed: Failed) -> tuple[Probe, Trial]:
    """The failed probe whose discrepancy stands out most above its noise."""
    return max(failed, key=lambda pair: abs(pair[1].discrepancy) / pair[1].noise)


class Perturbed:
    """One differentiable input, perturbed in place along a block of a direction."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.data = tensor.data
        self.original = self.data.clone(memory_format=torch.contiguous_format).view(-1)
        self.numel = self.original.numel()
        self.is_complex = tensor.is_complex()
        self.wide = torch.complex128 if self.is_complex else torch.float64
        real = self.original.real if self.is_complex else self.original
        self.eps = torch.finfo(real.dtype).eps
        self.step = STEP_FACTOR * self.eps ** (1 / 3)
        # Directions are scaled by max(1, |x|) so that x ± h·u moves every element by a
        # representable amount, whatever its magnitude.
        self.scale = torch.clamp(self.original.abs().to(torch.float64), min=1.0)

    def set(self, lo: int, hi: int, values: torch.Tensor) -> None:
        if self.data.is_contiguous():
            self.data.view(-1)[lo:hi] = values
        else:
            full = self.original.clone()
            full[lo:hi] = values
            self.data.copy_(full.view(self.data.shape))

    def restore(self, lo: int, hi: int) -> None:
        self.set(lo, hi, self.original[lo:hi])


def signed(count: int, generator: torch.Generator) -> torch.Tensor:
    """Random signs times magnitudes uniform in [0.5, 1.5]: no entry is near zero, so a
    single wrong Jacobian entry can never hide behind a tiny weight."""
    centered = torch.empty(count, dtype=torch.float64).uniform_(-1, 1, generator=generator)
    return centered.add_(torch.sign(centered), alpha=0.5)  # |centered| ~ U[0, 1]
