"""conjugate: a complex input's gradient is the conjugate of the right one (a missing `.conj()`)."""

from __future__ import annotations

from gradcheck_cli.engine.diagnose.case import Case
from gradcheck_cli.engine.diagnose.kinds import Kind
from gradcheck_cli.engine.diagnose.rule import Rule
from gradcheck_cli.results import Diagnosis


class Conjugate(Rule):
    """torch's convention for complex inputs is the conjugate Wirtinger derivative: the
    gradient of `a * b` with respect to `a` is `grad * b.conj()`. A backward that returns
    `grad * b` gives exactly the conjugate of every entry. Exact mode only: the kept
    blocks show it entry by entry; probes see one direction at a time."""

    kind = Kind.CONJUGATE
    exact_rank = 55  # before `sign`: -n is conj(n) where n is purely imaginary

    def exact(self, case: Case) -> Diagnosis | None:
        if case.blocks_kept is None or not case.a.is_complex():
            return None
        # Of complex outputs each part is checked alone: the imaginary part's grad_output
        # is 1j, whose conjugate flips the sign.
        if not (case.close(case.a, case.n.conj()) or case.close(case.a, -case.n.conj())):
            return None
        return Diagnosis(self.kind, f"the gradient of `{case.name}` is the complex conjugate "
                                    "of the right one (analytical = conj(numerical), the "
                                    "sign flipped for the imaginary part of complex "
                                    "outputs) — a missing or extra `.conj()` in backward? "
                                    "torch's gradient of `a * b` for `a` is "
                                    "`grad * b.conj()`")


RULE = Conjugate()
