"""zero: backward returns no gradient (None or zeros) for an input the outputs depend on."""

from __future__ import annotations

from gradcheck_cli.engine.diagnose.case import Case
from gradcheck_cli.engine.diagnose.kinds import Kind
from gradcheck_cli.engine.diagnose.rule import Rule
from gradcheck_cli.results import Diagnosis

FIX = "return its gradient, and check that forward does not detach it"


class Zero(Rule):
    kind = Kind.ZERO
    exact_rank = 40
    probe_rank = 40

    def exact(self, case: Case) -> Diagnosis | None:
        if case.blocks_kept is None or not bool((case.a == 0).all()):
            return None
        return Diagnosis(
            self.kind,
            f"backward returns no gradient for `{case.name}` (None or all zeros), but the "
            f"outputs depend on it (numerical derivatives up to "
            f"{float(case.n.abs().max()):.3g}); {FIX}",
        )

    def probe(self, case: Case) -> Diagnosis | None:
        # Everywhere means in every direction, beyond each probe's noise.
        probes = case.stats.directional
        if not (everywhere(case) and all(abs(a) <= t for a, _, t in probes)):
            return None
        largest = max(abs(n) for _, n, _ in probes)
        return Diagnosis(
            self.kind,
            f"backward returns no gradient for `{case.name}` (zero along every probe "
            f"direction), but the outputs depend on it (numerical directional derivatives "
            f"up to {largest:.3g}); {FIX}",
        )


def everywhere(case: Case) -> bool:
    """Probe mode: at least two probes, every one of them beyond its noise threshold (a
    pattern that holds everywhere shows in every direction)."""
    probes = case.stats.directional
    return len(probes) >= 2 and all(abs(a - n) > t for a, n, t in probes)


RULE = Zero()
