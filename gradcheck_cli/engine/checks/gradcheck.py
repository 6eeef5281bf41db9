"""gradcheck: the first-order check of every input that requires grad."""

from __future__ import annotations

from typing import Any

from gradcheck_cli.engine import cost
from gradcheck_cli.engine.checks.sequence import check_jacobians
from gradcheck_cli.engine.checks.subject import Request, Subject
from gradcheck_cli.engine.outcome import CheckContext, Outcome, Tolerances
from gradcheck_cli.engine.reference import forward_reference
from gradcheck_cli.target.discovery import Target


def run(context: CheckContext) -> Outcome:
    return gradcheck(context.target, context.args, context.names, context.tolerances,
                     context.budget // 16, seed=context.seed, mode=context.mode,
                     max_memory=context.budget)


def gradcheck(target: Target, args: list[Any], names: list[str], tolerances: Tolerances,
              max_elements: int, *, mode: str = "auto", max_memory: int | None = None,
              seed: int = 0, max_seconds: float = cost.DEFAULT_EXACT_SECONDS) -> Outcome:
    """First-order check of every input requiring grad.

    `max_elements`: Jacobian elements (of 16 bytes) the exact comparison may hold, unless
    `max_memory` (bytes) is given. `mode`: "exact" compares every Jacobian entry, "probe"
    random directions (see engine/probe), "reference" backward against autograd through
    forward (see checks/reference_mode), "auto" reference where it applies, else exact
    when it fits that memory and `max_seconds`, else probe. `seed` makes the probes reproducible.
    """
    budget = cost.memory_budget(max_elements, max_memory)
    return check_jacobians(Subject(target, target.call, args, names,
                                   reference=forward_reference(target)),
                           Request(tolerances, budget, mode, seed, max_seconds))
