"""scale: the gradient is off by a constant factor, analytical = k × numerical."""

from __future__ import annotations

from gradcheck_cli.engine.diagnose.case import Case
from gradcheck_cli.engine.diagnose.kinds import Kind
from gradcheck_cli.engine.diagnose.rule import Rule
from gradcheck_cli.engine.diagnose.rules.factor import exact_factor, is_minus_one, probe_factor
from gradcheck_cli.results import Diagnosis


class Scale(Rule):
    """Right after `sign`, which takes k = -1."""

    kind = Kind.SCALE
    exact_rank = 61
    probe_rank = 61

    def exact(self, case: Case) -> Diagnosis | None:
        return self._told(case, exact_factor(case), "everywhere")

    def probe(self, case: Case) -> Diagnosis | None:
        return self._told(case, probe_factor(case), "along every probe direction")

    def _told(self, case: Case, k: float | None, where: str) -> Diagnosis | None:
        if k is None or is_minus_one(k):
            return None
        return Diagnosis(
            self.kind,
            f"the gradient of `{case.name}` is off by a factor {k:.4g} {where} "
            f"(analytical = {k:.4g} × numerical) — {_factor_hint(k)}",
        )


def _factor_hint(k: float) -> str:
    for target, hint in ((0.5, "a missing factor 2?"), (2.0, "an extra factor 2?"),
                         (1 / 3, "a missing factor 3?"), (3.0, "an extra factor 3?")):
        if abs(k - target) <= 1e-3 * abs(target):
            return hint
    return "a missing or extra constant factor?"


RULE = Scale()
