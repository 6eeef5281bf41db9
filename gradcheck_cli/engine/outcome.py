"""What a check is given (tolerances, a context) and what it returns (an Outcome): plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gradcheck_cli.results import Advice, InputError, Status

if TYPE_CHECKING:
    from gradcheck_cli.engine.stats import Comparison
    from gradcheck_cli.target.discovery import Target


@dataclass(frozen=True)
class Tolerances:
    eps: float = 1e-6
    atol: float = 1e-5
    rtol: float = 1e-3
    nondet_tol: float = 0.0


@dataclass
class Outcome:
    """What one check found; the runner adds where it came from."""

    status: Status
    message: str = ""
    inputs: list[InputError] = field(default_factory=list)
    location: str | None = None
    mode: str = "exact"  # "exact" | "probe" | "reference": how the Jacobians were compared
    comparison: Comparison | None = None
    names: list[str] = field(default_factory=list)
    # why auto mode chose probe, reference mode's evidence, or why it did not apply
    mode_reason: str = ""
    # The capabilities check: feature -> {"status": ok|fail|n/a, "reason": ...}
    capabilities: dict[str, dict[str, str]] | None = None
    advice: list[Advice] = field(default_factory=list)  # what the user could change


@dataclass
class CheckContext:
    """Everything a registered check's `run` receives: the callable checked and its inputs."""

    target: Target
    args: list[Any]
    names: list[str]
    tolerances: Tolerances
    budget: int  # bytes of Jacobian blocks the check may hold at once
    seed: int
    mode: str = "auto"  # "auto" | "exact" | "probe"
    first_order_ok: bool | None = None  # the first-order verdict, for double-backward checks
    explicit: bool = False  # the checks were chosen (flag or spec), not the defaults
