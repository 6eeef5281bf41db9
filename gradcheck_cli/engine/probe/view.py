"""What a diagnosis rule may measure after an input's probes failed (`ProbeView`)."""

from __future__ import annotations

from typing import Protocol

import torch

from gradcheck_cli.engine.probe.measure import Measurer
from gradcheck_cli.engine.probe.vectors import Failed, most_significant


class ProbeView:
    """One input's most significant failed probe, and directional derivatives along
    directions of a rule's choosing, with that probe's noise to judge them by.

    Input indices (`k`, `j`) count the differentiable inputs; `position(j)` is the place of
    input j in the argument list.
    """

    def __init__(self, measurer: Measurer, k: int, failed: Failed) -> None:
        self._m = measurer
        self.k = k
        self._probe, self._trial = most_significant(failed)

    @property
    def count(self) -> int:
        """How many differentiable inputs there are."""
        return len(self._m.inputs)

    @property
    def confidence(self) -> float:
        return self._m.settings.confidence

    @property
    def noise(self) -> float:
        """The failed probe's noise estimate (its test of the whole input)."""
        return self._trial.noise

    @property
    def analytical(self) -> float:
        """The failed probe's analytical directional derivative, vᵀJu."""
        return self._trial.analytical

    @property
    def complex_outputs(self) -> bool:
        return any(o.is_complex() for o in self._m.outputs)

    @property
    def output_numel(self) -> int:
        return sum(self._m.sizes)

    @property
    def v(self) -> torch.Tensor:
        """The failed probe's grad_output, flat over the outputs."""
        return self._probe.v

    def position(self, j: int) -> int:
        return self._m.positions[j]

    def shape(self, j: int) -> torch.Size:
        return self._m.diff_inputs[j].shape

    def numel(self, j: int) -> int:
        return self._m.inputs[j].numel

    def is_complex(self, j: int) -> bool:
        return self._m.inputs[j].is_complex

    def step(self, j: int) -> float:
        return self._m.inputs[j].step

    def grads(self, j: int) -> torch.Tensor:
        """vᵀJ of input j, flat."""
        return self._probe.grads[j]

    def direction(self, j: int) -> torch.Tensor:
        """The failed probe's direction u for input j, flat."""
        return self._probe.directions[j]

    def weight(self, j: int) -> float:
        """Σ|gⱼ||uⱼ| over input j."""
        return self._probe.weights[j]

    def rounding_of(self, v: torch.Tensor) -> float:
        """The rounding of vᵀf, for outputs weighed by `v`."""
        return self._m.rounding_of(v)

    def along(self, j: int, *, grads: torch.Tensor | None = None,
              direction: torch.Tensor | None = None, weight: float | None = None,
              v: torch.Tensor | None = None, rounding: float | None = None
              ) -> tuple[float, float, float] | None:
        """(analytical, numerical, analytical rounding) of the derivative of vᵀf when input
        j moves along `direction`, the analytical side taken from `grads` (each defaults
        to the failed probe's own); None when forward is not finite there."""
        borrowed = self._probe.borrow(v=v, rounding=rounding)
        if grads is not None:
            borrowed.grads[j] = grads
        if direction is not None:
            borrowed.directions[j] = direction
        if weight is not None:
            borrowed.weights[j] = weight
        inp = self._m.inputs[j]
        return self._m.difference(j, borrowed, 0, inp.numel, inp.step)


class EvidenceRule(Protocol):
    """A diagnosis rule's probe-mode measurement, stored as `InputStats.evidence[kind]`."""

    @property
    def kind(self) -> str: ...

    def gather(self, view: ProbeView) -> object | None:
        """What this rule needs to know about a failed input, or None when it does not fit."""
        ...
