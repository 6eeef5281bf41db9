"""second-order: a gradgradcheck failure, in terms of the user's inputs: d(grad of x)/d(y)."""

from __future__ import annotations

from gradcheck_cli.engine.diagnose.case import Case
from gradcheck_cli.engine.diagnose.kinds import Kind
from gradcheck_cli.engine.diagnose.rule import Rule
from gradcheck_cli.results import Diagnosis


class SecondOrder(Rule):
    """For second-order checks only, right after what the first-order patterns see in the
    second-order Jacobian that is not a formula bug (nondeterminism, a kink): the rest
    is backward not being differentiable as written. The forms are one: it reads which
    outputs (backward's gradients) have wrong rows, which both modes count."""

    kind = Kind.SECOND_ORDER
    exact_rank = 15
    probe_rank = 15

    def exact(self, case: Case) -> Diagnosis | None:
        context = case.context
        if context.order != "second":
            return None
        stats = case.stats
        derivs = ", ".join(f"∂({context.output_name(o)})/∂`{case.name}`"
                           for o in sorted(stats.rows_wrong_by_output))
        a = stats.analytical
        detail = f"the second derivative is wrong: {derivs}"
        if context.first_order_ok is False:
            # gradgradcheck differentiates backward as it is, right or wrong: its failure is
            # a bug of its own, but the first-order one is the one to fix first.
            detail = ("the first-order gradient is wrong too (gradcheck fails): fix it first. "
                      "Besides, " + detail)
        if a is not None and bool((a == 0).all()):
            detail += (f" is zero through autograd although it is not: backward uses a tensor "
                       f"that forward computed from `{case.name}` without autograd (a saved "
                       "intermediate); save the inputs (or the output) instead and recompute "
                       "in backward with differentiable torch ops, or mark backward "
                       "@once_differentiable")
        else:
            detail += f": {_formula(context.first_order_ok)} not differentiable as written " \
                      "(a saved intermediate, an in-place op, or a detach)"
        return Diagnosis(self.kind, detail)

    probe = exact


def _formula(first_order_ok: bool | None) -> str:
    """What is known of backward's formula at first order, in the words of the verdict."""
    if first_order_ok:
        return "backward's formula is right at first order but"
    if first_order_ok is None:
        return "backward is"  # not checked in this run: claim nothing about first order
    return "backward is also"


RULE = SecondOrder()
