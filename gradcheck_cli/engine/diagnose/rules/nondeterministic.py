"""nondeterministic: two backward runs on the same input and grad_output differ."""

from __future__ import annotations

from gradcheck_cli.engine.diagnose.case import Case
from gradcheck_cli.engine.diagnose.kinds import Kind
from gradcheck_cli.engine.diagnose.rule import Rule
from gradcheck_cli.results import Diagnosis


class Nondeterministic(Rule):
    """Before any pattern: the Jacobians compared are not even reproducible. Both modes
    run backward twice on the same grad_output (exact mode the whole Jacobian, probe mode
    the first probe), so the two forms are one."""

    kind = Kind.NONDETERMINISTIC
    exact_rank = 0
    probe_rank = 0
    any_input = True

    def exact(self, case: Case) -> Diagnosis | None:
        spread = case.stats.nondeterminism
        if spread <= case.tolerances.nondet_tol:
            return None
        return Diagnosis(
            self.kind,
            f"two backward runs on the same input and grad_output differ by up to "
            f"{spread:.3g} for `{case.name}`; if that is expected "
            f"(atomics, randomness), set `nondet_tol` to at least {spread:.2g}",
        )

    probe = exact


RULE = Nondeterministic()
