"""What a Jacobian check is given: the function at its arguments, and how to compare them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch

from gradcheck_cli.engine import cost
from gradcheck_cli.engine.contract import explain
from gradcheck_cli.engine.outcome import Outcome, Tolerances
from gradcheck_cli.engine.reference import Reference
from gradcheck_cli.results import Status
from gradcheck_cli.target.discovery import Target

Fn = Callable[..., Any]


class Stop(Exception):
    """Ends a check early with a finished outcome."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


def _output_name(index: int) -> str:
    return f"output {index}"


@dataclass
class Subject:
    """The function whose Jacobians are compared, at which arguments, named how.

    First order checks the user's callable itself; second order (gradgradcheck) checks a
    function that runs backward, whose outputs are gradients (`output_name` names them).
    """

    target: Target  # the user's Function or callable, for locations and error messages
    fn: Fn
    args: list[Any]
    names: list[str]
    order: str = "first"  # "first" | "second"
    output_name: Callable[[int], str] = field(default=_output_name)
    first_order_ok: bool | None = None  # second order: the first-order verdict, if known
    # Autograd through forward (reference mode), or why there is none: see engine/reference.
    reference: Reference | None = None

    @property
    def evaluated(self) -> str:
        """What running `fn` runs of the user's code: forward, or (second order) backward."""
        return "forward" if self.order == "first" else "backward"

    @cached_property
    def numeric_fn(self) -> Fn:
        """`fn` for the numerical Jacobian, which needs only values.

        An autograd Function's forward computes the same values without grad, minus building
        a graph at each of the 2·N perturbed evaluations (torch builds one each time). A
        plain callable may use autograd itself, and second order differentiates inside
        `fn` (backward runs in grad mode there, as in torch's gradgradcheck, and may depend
        on it): those keep grad mode. A custom op's kernel runs below autograd, so it too
        gives the same values without grad."""
        if self.order == "first" and self.target.kind in ("function", "custom_op"):
            return without_grad(self.fn)
        return self.fn

    @property
    def backward_location(self) -> str | None:
        return self.target.backward_location

    def stop(self, exc: BaseException, phase: str) -> Stop:
        """The check's end on an exception raised by the user's code during `phase`."""
        why = explain(exc, self.target, self.names, phase)
        return Stop(Outcome(Status.ERROR, why.message, location=why.location))

    def shapes(self) -> list[tuple[int, ...]]:
        """Each argument's shape by position (() for non-tensors)."""
        return [tuple(a.shape) if isinstance(a, torch.Tensor) else () for a in self.args]


@dataclass(frozen=True)
class Request:
    """How the Jacobians are to be compared: tolerances, memory, mode and time limit."""

    tolerances: Tolerances
    budget_bytes: int  # of Jacobian blocks held at once (exact mode)
    mode: str = "auto"  # "auto" | "exact" | "probe" | "reference"
    seed: int = 0  # of probe mode's random directions and the timing's random vᵀJ
    max_seconds: float = cost.DEFAULT_EXACT_SECONDS  # auto: the longest exact run allowed


def without_grad(fn: Fn) -> Fn:
    def values(*args: Any) -> Any:
        with torch.no_grad():
            return fn(*args)

    return values
