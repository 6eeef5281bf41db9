"""precision: a small mismatch that changes with the finite-difference step is noise, not a bug."""

from __future__ import annotations

from gradcheck_cli.engine.diagnose.case import Review
from gradcheck_cli.engine.diagnose.kinds import Kind
from gradcheck_cli.engine.diagnose.rule import Rule
from gradcheck_cli.results import Diagnosis, InputError

# "Small": within this absolute or relative error; larger errors are never step noise.
SMALL_ABS = 1e-3
SMALL_REL = 1e-2


class Precision(Rule):
    """No per-input form: a second look at the whole check (exact mode, dense Jacobians;
    one more comparison per step costs too much otherwise), once every input has its
    diagnosis. A wrong formula gives the same error at every step; finite-difference noise
    (truncation ~ eps², rounding ~ 1/eps) moves with it."""

    kind = Kind.PRECISION

    def review(self, review: Review) -> None:
        failing = [e for e in review.entries if not e.passed and e.note is None
                   and e.max_abs_error is not None]
        if not failing or any((e.max_abs_error or 0) > SMALL_ABS
                              and (e.max_rel_error or 0) > SMALL_REL for e in failing):
            return
        if any(e.diagnosis and e.diagnosis.kind == Kind.NONDETERMINISTIC for e in failing):
            return
        eps = review.context.tolerances.eps
        steps = (eps * 10, eps / 10)
        errors: dict[int, list[tuple[float, float]]] = {e.index: [] for e in failing}
        for step, found in zip(steps, review.remeasure(steps)):
            for position, error in found.items():
                if position in errors:
                    errors[position].append((step, error))
        for entry in failing:
            self._judge(entry, eps, errors[entry.index])

    def _judge(self, entry: InputError, eps: float, others: list[tuple[float, float]]) -> None:
        original = entry.max_abs_error or 0.0
        tried = [(eps, original), *others]
        best_eps, best = min(tried, key=lambda t: t[1])
        steps = ", ".join(f"eps {e:g}: {v:.2g}" for e, v in tried[1:])
        if max(v for _, v in tried) > 3 * best:
            advice = (f"use `eps: {best_eps:g}` (error {best:.2g}) or a larger `atol`"
                      if best_eps != eps else "the current step is already the best: raise `atol`")
            entry.diagnosis = Diagnosis(
                self.kind,
                f"the error of `{entry.name}` ({original:.2g} at eps {eps:g}) changes with the "
                f"step ({steps}): it is finite-difference noise, not a wrong gradient; {advice}",
            )
        elif entry.diagnosis is not None:
            entry.diagnosis.detail += (f" (the error stays about {original:.2g} when the "
                                       f"step changes — {steps} — so it is real, not "
                                       "finite-difference noise)")


RULE = Precision()
