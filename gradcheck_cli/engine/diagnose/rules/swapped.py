"""swapped: the gradient returned for one input is another input's gradient."""

from __future__ import annotations

from gradcheck_cli.engine.diagnose.case import SEEN_BY_PROBES, Case
from gradcheck_cli.engine.diagnose.kinds import Kind
from gradcheck_cli.engine.diagnose.rule import Rule
from gradcheck_cli.engine.probe.view import ProbeView
from gradcheck_cli.results import Diagnosis


class Swapped(Rule):
    """Exact mode compares this input's analytical block with every other input's
    numerical block; probe mode moves each same-shaped other input along this input's
    probe direction and compares with this input's analytical derivative (`gather`)."""

    kind = Kind.SWAPPED
    exact_rank = 50
    probe_rank = 20
    gathers = True

    def exact(self, case: Case) -> Diagnosis | None:
        if case.blocks_kept is None:
            return None
        a, n = case.a, case.n
        for other in case.blocks:
            if other is case.block or other.stats.numerical is None:
                continue
            if case.close(a, other.stats.numerical.to(a.dtype)):
                back = other.stats.analytical
                mutual = back is not None and case.close(back.to(a.dtype), n)
                return _swapped(case.name, other.name, mutual)
        return None

    def probe(self, case: Case) -> Diagnosis | None:
        resembles = case.stats.evidence.get(self.kind)
        if resembles is None:
            return None
        other = next((b for b in case.blocks if b.stats.position == resembles), None)
        if other is None:
            return None
        mutual = other.stats.evidence.get(self.kind) == case.stats.position
        return _swapped(case.name, other.name, mutual, SEEN_BY_PROBES)

    def gather(self, view: ProbeView) -> int | None:
        """The position of the input whose numerical derivative along this input's
        direction matches this input's analytical one, if any."""
        k = view.k
        for j in range(view.count):
            if j == k or view.shape(j) != view.shape(k) or view.is_complex(j) != view.is_complex(k):
                continue
            # Input j moved along input k's direction, judged against k's analytical value.
            result = view.along(j, grads=view.grads(k), direction=view.direction(k),
                                weight=view.weight(k))
            if result is None:
                continue
            analytical, numerical, rounding = result
            if abs(analytical - numerical) <= view.confidence * (view.noise + rounding):
                return view.position(j)
        return None


def _swapped(name: str, other: str, mutual: bool, suffix: str = "") -> Diagnosis:
    detail = f"the gradient returned for `{name}` is the gradient of `{other}`"
    detail += (f", and the one returned for `{other}` is that of `{name}`: "
               "backward returns them in the wrong order" if mutual else
               f": backward returns `{other}`'s gradient in `{name}`'s place")
    return Diagnosis(Kind.SWAPPED, detail + suffix)


RULE = Swapped()
