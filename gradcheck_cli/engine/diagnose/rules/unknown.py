"""unknown: no pattern fits; the worst element and both derivatives there, as evidence."""

from __future__ import annotations

from gradcheck_cli.engine.diagnose.case import Case
from gradcheck_cli.engine.diagnose.kinds import Kind
from gradcheck_cli.engine.diagnose.rule import Rule
from gradcheck_cli.results import Diagnosis


class Unknown(Rule):
    """Last in both modes: it always fits a mismatched input."""

    kind = Kind.UNKNOWN
    exact_rank = 1000
    probe_rank = 1000

    def exact(self, case: Case) -> Diagnosis | None:
        why = "" if case.blocks_kept is not None else (
            "the Jacobian was too large to keep for a closer look")
        return self._told(case, why)

    def probe(self, case: Case) -> Diagnosis | None:
        return self._told(case, "")

    def _told(self, case: Case, why: str) -> Diagnosis:
        worst = case.stats.worst
        detail = "no simple pattern fits"
        if worst is not None:
            _, column, a, n = worst
            detail += (f"; the worst element is {case.element(column)}: "
                       f"analytical {complex(a).real:.6g}, numerical {complex(n).real:.6g}")
        if why:
            detail += f" ({why})"
        return Diagnosis(self.kind, detail)


RULE = Unknown()
