"""gradcheck: the first-order check of every input that requires grad."""

from __future__ import annotations

from gradcheck_cli.engine.checks.checker import gradcheck
from gradcheck_cli.engine.outcome import CheckContext, Outcome


def run(context: CheckContext) -> Outcome:
    return gradcheck(context.target, context.args, context.names, context.tolerances,
                     context.budget // 16, seed=context.seed, mode=context.mode,
                     max_memory=context.budget)
