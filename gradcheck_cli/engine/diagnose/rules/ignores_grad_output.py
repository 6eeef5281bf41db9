"""ignores-grad-output: backward returns a gradient that does not scale with grad_output."""

from __future__ import annotations

import torch

from gradcheck_cli.engine.diagnose.case import Case
from gradcheck_cli.engine.diagnose.kinds import Kind
from gradcheck_cli.engine.diagnose.rule import Rule
from gradcheck_cli.results import Diagnosis


class IgnoresGradOutput(Rule):
    """Backward must return a vector-Jacobian product, linear in grad_output; the
    commonest beginner's bug returns the derivative itself (`2 * x` for `x * x`). The
    Jacobians do not show it as a pattern (each row is then the same vector, whatever the
    derivative's structure), so both modes ask backward directly: given grad_output v and
    2v, a linear backward returns g and exactly 2g (doubling is exact in floating point);
    one that ignores grad_output returns g twice. Only first order: at second order the
    function checked runs backward itself, and `second-order` explains its failures.
    Early in both chains, right after what makes any comparison unreliable: the evidence
    is direct, and the rows of such a backward may happen to fit a later pattern."""

    kind = Kind.IGNORES_GRAD_OUTPUT
    exact_rank = 12
    probe_rank = 12

    def exact(self, case: Case) -> Diagnosis | None:
        return self._told(case)

    probe = exact

    def _told(self, case: Case) -> Diagnosis | None:
        if case.context.order != "first" or case.pull is None:
            return None
        once, twice = _gradient(case, 1.0), _gradient(case, 2.0)
        if once is None or twice is None or case.close(twice, 2 * once):
            return None  # linear in grad_output: some other bug
        name = case.name
        if case.close(twice, once):
            return Diagnosis(
                self.kind,
                f"backward ignores grad_output: multiply by it (the gradient of `{name}` is the "
                "same for grad_output v and 2v; for `x * x`, return `grad_output * 2 * x`, "
                "not `2 * x`)")
        none = _gradient(case, 0.0)
        if none is None or case.close(none, torch.zeros_like(none)) \
                or not case.close(twice - none, 2 * (once - none)):
            return None
        return Diagnosis(
            self.kind,
            f"backward ignores grad_output in part: multiply every term by it (the gradient "
            f"of `{name}` is not zero when grad_output is, up to "
            f"{float(none.abs().max()):.3g}: a term is not multiplied by grad_output)")


def _gradient(case: Case, scale: float) -> torch.Tensor | None:
    """This input's gradient from backward for grad_output = scale × v, if backward gave one."""
    assert case.pull is not None
    found = case.pull(scale)
    return None if found is None else found.get(case.stats.position)


RULE = IgnoresGradOutput()
