"""gradcheck as registered: the Jacobian comparison, then, once it passes, backward's linearity.

The Jacobian comparison builds every row from a one-hot grad_output, so a backward that is
not linear in grad_output (one that clamps its negative entries, as a guided-backprop ReLU
does) passes it, as it passes torch's gradcheck. The vjp check's test (`linearity`: four
backwards, no finite differences) runs after it on the same inputs, and a nonlinear input
fails the check with its diagnosis, `not-a-vjp`.
"""

from __future__ import annotations

from typing import Any

from gradcheck_cli.engine.checks import gradcheck, linearity, mutation
from gradcheck_cli.engine.contract import explain
from gradcheck_cli.engine.jacobian import as_tuple, diff_positions, is_diff_tensor
from gradcheck_cli.engine.outcome import CheckContext, Outcome, Tolerances
from gradcheck_cli.results import Status
from gradcheck_cli.target.discovery import Target


def run(context: CheckContext) -> Outcome:
    mutated = mutation.forward_mutation(context)
    if mutated is not None:
        return mutated
    context = mutation.on_clones(context)  # a declared in-place forward is checkable so
    outcome = gradcheck.run(context)
    return with_linearity(context.target, context.args, context.names, context.tolerances,
                          context.seed, outcome)


def with_linearity(target: Target, args: list[Any], names: list[str],
                   tolerances: Tolerances, seed: int, outcome: Outcome) -> Outcome:
    """`outcome` of a Jacobian comparison, failed if it passed and backward is not linear
    in grad_output (the inputs at fault marked and diagnosed)."""
    positions = diff_positions(args)
    if outcome.status is not Status.PASSED or not positions:
        return outcome
    try:
        outs = [o for o in as_tuple(target.call(*args)) if is_diff_tensor(o)]
    except Exception as exc:
        return _errored(outcome, target, names, exc, "forward")
    if not outs:
        return outcome
    try:
        found = linearity.nonlinear(outs, [args[p] for p in positions], seed, tolerances)
    except Exception as exc:
        return _errored(outcome, target, names, exc, "backward")
    if found:
        outcome.status = Status.FAILED
        outcome.message = linearity.message(found, positions, names)
        outcome.location = target.backward_location
        linearity.mark(outcome.inputs, found, positions, names, outs, args, seed)
    return outcome


def _errored(outcome: Outcome, target: Target, names: list[str], exc: Exception,
             phase: str) -> Outcome:
    why = explain(exc, target, names, phase)
    outcome.status = Status.ERROR
    outcome.message = why.message
    outcome.location = why.location
    return outcome
