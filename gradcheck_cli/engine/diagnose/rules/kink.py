"""kink: the mismatch sits at elements where the one-sided slopes differ (exact mode only)."""

from __future__ import annotations

import torch

from gradcheck_cli.engine.diagnose.case import Case, Mover
from gradcheck_cli.engine.diagnose.kinds import Kind
from gradcheck_cli.engine.diagnose.rule import Rule
from gradcheck_cli.results import Diagnosis

CHECKED = 5  # wrong elements looked at more closely, at most


class Kink(Rule):
    """First in exact mode: at a non-differentiable point any pattern (zero, partial, ...)
    may show, and none of them is a bug of backward. No probe form: a random direction
    moves every element, so no probe isolates one element's slopes."""

    kind = Kind.KINK
    exact_rank = 10
    advice = ("dodge_kinks",)

    def exact(self, case: Case) -> Diagnosis | None:
        if case.blocks_kept is None or case.move is None or not case.columns:
            return None
        kinks = []
        for column in case.columns[:CHECKED]:
            found = _at_kink(case, case.move, column)
            if found is None:
                return None
            kinks.append((column, *found))
        if not kinks:
            return None
        shown = ", ".join(case.element(c) for c, _, _ in kinks)
        if len(case.columns) > len(kinks):
            shown += f" ({len(kinks)} of the {len(case.columns)} wrong elements checked)"
        side = kinks[0][2]
        return Diagnosis(
            self.kind,
            f"the mismatch is at elements that sit at a non-differentiable point: {shown} "
            f"(the one-sided slopes differ by up to {max(j for _, j, _ in kinks):.3g}; "
            f"backward gives {side}). Finite differences straddle the kink there, so this is "
            "probably not a bug in backward: add `avoid: [0.0]` to the input",
        )


def _at_kink(case: Case, move: Mover, column: int) -> tuple[float, str] | None:
    """(the jump of the one-sided slopes, the slope backward gives) when input element
    `column` sits at a kink or within eps of one, else None."""
    position = case.stats.position
    eps, atol = case.tolerances.eps, case.tolerances.atol
    base = move(position, column, 0.0)
    analytic = case.a[:, column]
    right, left = _slopes(move, position, column, base, eps)
    wide_right, wide_left = _slopes(move, position, column, base, 10 * eps)
    # Smooth: the one-sided slopes differ by about h·f'', so 10x the step gives a 10x
    # larger jump. At a kink the jump is the change of slope, whatever the step.
    jump = float((right - left).abs().max())
    wide_jump = float((wide_right - wide_left).abs().max())
    at_kink = jump > 10 * atol and wide_jump <= 3 * jump
    # A kink within eps of the element but not at it: a 100x smaller central step no
    # longer straddles it and agrees with backward.
    tiny = eps / 100
    central = (move(position, column, tiny) - move(position, column, -tiny)) / (2 * tiny)
    near_kink = wide_jump > 10 * atol and bool(
        torch.isclose(central, analytic, rtol=1e-3, atol=1e-4).all())
    if not (at_kink or near_kink):
        return None
    side = ("the right-hand slope" if bool(torch.isclose(analytic, right, atol=1e-4).all())
            else "the left-hand slope" if bool(torch.isclose(analytic, left, atol=1e-4).all())
            else "neither one-sided slope")
    return jump, side


def _slopes(move: Mover, position: int, column: int, base: torch.Tensor, h: float
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """The right and left one-sided difference quotients with step h."""
    return (move(position, column, h) - base) / h, (base - move(position, column, -h)) / h


RULE = Kink()
