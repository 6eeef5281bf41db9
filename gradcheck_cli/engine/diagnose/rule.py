"""A diagnosis rule: one kind's exact form and probe form side by side, and where each stands."""

from __future__ import annotations

from typing import ClassVar

from gradcheck_cli.engine.diagnose.case import Case, Review
from gradcheck_cli.engine.diagnose.kinds import Kind
from gradcheck_cli.engine.probe.view import ProbeView
from gradcheck_cli.results import Diagnosis


class Rule:
    """The most likely cause of one kind, told from a failing input's evidence.

    For each input the rules of its mode are tried by rank, lowest first, and the first
    diagnosis found is the input's; a rank of None means the rule has no form in that mode.
    Ranks differ between the modes because what is cheap and unambiguous differs: exact
    mode compares whole blocks, probe mode only what its measurements show.
    """

    kind: ClassVar[Kind]
    exact_rank: ClassVar[int | None] = None
    probe_rank: ClassVar[int | None] = None
    # Whether the rule also looks at inputs whose entries all agree (a nondeterministic
    # backward can pass the comparison); the others see only mismatched inputs.
    any_input: ClassVar[bool] = False
    # Advice kinds (`results.Advice`) a diagnosis of this kind carries: what the user can
    # change that the detail, which names no command-line flag, cannot say.
    advice: ClassVar[tuple[str, ...]] = ()
    # Whether `gather` measures something in probe mode.
    gathers: ClassVar[bool] = False

    def rank(self, mode: str) -> int | None:
        return self.exact_rank if mode == "exact" else self.probe_rank

    def exact(self, case: Case) -> Diagnosis | None:
        """The diagnosis from the kept Jacobian blocks (`case.a`, `case.n`), or None."""
        return None

    def probe(self, case: Case) -> Diagnosis | None:
        """The diagnosis from probe mode's measurements (`case.stats`), or None."""
        return None

    def gather(self, view: ProbeView) -> object | None:
        """Probe mode, while the input's failed probe is at hand: the evidence `probe`
        will read from `case.stats.evidence[kind]`, or None when there is none."""
        return None

    def review(self, review: Review) -> None:
        """A second look at the whole check after the patterns (may change diagnoses)."""
