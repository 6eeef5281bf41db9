"""transposed: a Jacobian block, or a square matrix gradient, is the transpose of the right one."""

from __future__ import annotations

import torch

from gradcheck_cli.engine.diagnose.case import SEEN_BY_PROBES, Case
from gradcheck_cli.engine.diagnose.kinds import Kind
from gradcheck_cli.engine.diagnose.rule import Rule
from gradcheck_cli.engine.probe.view import ProbeView
from gradcheck_cli.results import Diagnosis


class Transposed(Rule):
    """Two shapes of the bug: the Jacobian block (as many input as output elements) is
    transposed, J_a = J_trueᵀ; or a square matrix input's gradient is, G_a = G_trueᵀ."""

    kind = Kind.TRANSPOSED
    exact_rank = 70
    probe_rank = 30
    gathers = True

    def exact(self, case: Case) -> Diagnosis | None:
        if case.blocks_kept is None:
            return None
        a, n = case.a, case.n
        if a.shape[0] == a.shape[1] and case.close(a, n.T):
            return Diagnosis(self.kind, _block(case.name))
        shape = case.block.shape
        if len(shape) == 2 and shape[0] == shape[1] > 1:
            m, rows = shape[0], a.shape[0]
            if case.close(a.reshape(rows, m, m).transpose(1, 2).reshape(rows, -1), n):
                return Diagnosis(self.kind, _gradient(case.name))
        return None

    def probe(self, case: Case) -> Diagnosis | None:
        found = case.stats.evidence.get(self.kind)
        if found == "jacobian":
            return Diagnosis(self.kind, _block(case.name) + SEEN_BY_PROBES)
        if found == "gradient":
            return Diagnosis(self.kind, _gradient(case.name) + SEEN_BY_PROBES)
        return None

    def gather(self, view: ProbeView) -> str | None:
        """"gradient" or "jacobian" when that transposition explains the failed probe:
        one central difference per pattern, judged as `Swapped.gather` judges.

        As a square matrix gradient: ⟨G_a, U⟩ = ⟨G_true, Uᵀ⟩, so moving the input along Uᵀ
        must give the analytical value along U. As a Jacobian block: vᵀJ_a u = uᵀJ_true v,
        so moving the input along v and weighing the outputs by u must give it."""
        k = view.k
        if view.is_complex(k) or view.complex_outputs:
            return None
        limit = view.confidence
        shape = view.shape(k)
        if len(shape) == 2 and shape[0] == shape[1] > 1:
            m = shape[0]

            def flip(flat: torch.Tensor) -> torch.Tensor:
                return flat.view(m, m).t().reshape(-1)

            result = view.along(k, grads=flip(view.grads(k)), direction=flip(view.direction(k)))
            if result is not None:
                analytical, numerical, rounding = result
                if abs(analytical - numerical) <= limit * (view.noise + rounding):
                    return "gradient"
        numel = view.numel(k)
        if view.output_numel == numel and numel > 1:
            u = view.direction(k)
            rounding = view.rounding_of(u)
            result = view.along(k, direction=view.v, v=u, rounding=rounding)
            if result is not None:
                noise = view.noise + rounding / view.step(k)
                if abs(view.analytical - result[1]) <= limit * noise:
                    return "jacobian"
        return None


def _block(name: str) -> str:
    return (f"the Jacobian block of `{name}` is the transpose of the right one: a matrix in "
            "backward is used transposed (e.g. `g @ W` where `g @ W.T` was meant)")


def _gradient(name: str) -> str:
    return (f"the gradient of `{name}` is the transpose of the right one: return `grad.T` "
            "(e.g. `x.T @ g` where `g.T @ x` was meant)")


RULE = Transposed()
