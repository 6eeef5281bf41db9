"""sign: the gradient has the wrong sign, analytical = -numerical."""

from __future__ import annotations

from gradcheck_cli.engine.diagnose.case import Case
from gradcheck_cli.engine.diagnose.kinds import Kind
from gradcheck_cli.engine.diagnose.rule import Rule
from gradcheck_cli.engine.diagnose.rules.factor import exact_factor, is_minus_one, probe_factor
from gradcheck_cli.results import Diagnosis


class Sign(Rule):
    kind = Kind.SIGN
    exact_rank = 60
    probe_rank = 60

    def exact(self, case: Case) -> Diagnosis | None:
        return self._told(case, exact_factor(case), "everywhere")

    def probe(self, case: Case) -> Diagnosis | None:
        return self._told(case, probe_factor(case), "along every probe direction")

    def _told(self, case: Case, k: float | None, where: str) -> Diagnosis | None:
        if k is None or not is_minus_one(k):
            return None
        return Diagnosis(self.kind, f"the gradient of `{case.name}` has the wrong sign: "
                                    f"analytical = -numerical {where}")


RULE = Sign()
