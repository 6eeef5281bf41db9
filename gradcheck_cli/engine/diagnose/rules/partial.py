"""partial: the gradient is wrong at some elements, right elsewhere (a mask, threshold, index)."""

from __future__ import annotations

from gradcheck_cli.engine.diagnose.case import Case
from gradcheck_cli.engine.diagnose.kinds import Kind
from gradcheck_cli.engine.diagnose.rule import Rule
from gradcheck_cli.results import Diagnosis

SHOWN = 5  # wrong elements named, at most
FIX = "a mask, threshold or index in backward is off there"


class Partial(Rule):
    kind = Kind.PARTIAL
    exact_rank = 80
    probe_rank = 80

    def exact(self, case: Case) -> Diagnosis | None:
        if case.blocks_kept is None:
            return None
        count = int(case.wrong_columns.sum())
        total = case.wrong_columns.numel()
        if not 0 < count < total:
            return None
        shown = ", ".join(case.element(c) for c in case.columns[:SHOWN])
        more = f" and {count - SHOWN} more" if count > SHOWN else ""
        return Diagnosis(
            self.kind,
            f"the gradient of `{case.name}` is wrong at {count} of {total} elements "
            f"({shown}{more}) and right elsewhere: {FIX}",
        )

    def probe(self, case: Case) -> Diagnosis | None:
        # Only when the wrong entries localized account for the whole discrepancy.
        stats = case.stats
        columns = sorted({column for _, column in stats.worst_wrong})
        if not (stats.explained and 0 < len(columns) < stats.numel):
            return None
        shown = ", ".join(case.element(c) for c in columns[:SHOWN])
        return Diagnosis(
            self.kind,
            f"the gradient of `{case.name}` is wrong at {shown} and right elsewhere as far as "
            "random-direction probes can tell (the wrong entries found account for the "
            f"whole discrepancy): {FIX}",
        )


RULE = Partial()
