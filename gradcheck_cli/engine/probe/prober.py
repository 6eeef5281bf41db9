"""probe_compare: random-direction probes of every input, localization, then rules' evidence."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gradcheck_cli.engine.probe.localize import Localizer
from gradcheck_cli.engine.probe.measure import Measurer
from gradcheck_cli.engine.probe.settings import ProbeSettings
from gradcheck_cli.engine.probe.vectors import Failed
from gradcheck_cli.engine.probe.view import EvidenceRule, ProbeView
from gradcheck_cli.engine.stats import Comparison, InputStats

Fn = Callable[..., Any]
# A probe whose discrepancy is under this share of its threshold (counting rounding only)
# is settled without its repeat at twice the step (see `Measurer.measure`).
CLEAR_PASS = 0.1


def probe_compare(fn: Fn, args: list[Any], func_out: tuple[Any, ...], *, eps: float,
                  atol: float, rtol: float, seed: int,
                  settings: ProbeSettings | None = None,
                  evidence: Sequence[EvidenceRule] = ()) -> Comparison:
    """Probe-mode counterpart of `jacobian.compare`, with the same per-input statistics.

    `evidence`: the diagnosis rules that measure something of a wrong input while its
    failed probe is at hand, tried in order until one finds what it looks for.
    """
    m = Measurer(fn, args, func_out, eps=eps, atol=atol, rtol=rtol, seed=seed,
                 settings=settings or ProbeSettings())
    comparison = Comparison(inputs=m.stats, output_sizes=m.sizes,
                            output_shapes=[tuple(o.shape) for o in m.outputs], layout="probe")
    failed = _probes(m)
    for k, stat in enumerate(m.stats):
        if failed[k] and stat.first_nonfinite is None:
            Localizer(m, k).run(failed[k])
    for k, stat in enumerate(m.stats):
        if not stat.wrong:
            continue
        view = ProbeView(m, k, failed[k])
        for rule in evidence:
            found = rule.gather(view)
            if found is not None:
                stat.evidence[rule.kind] = found
                break
    return comparison


def probe_agreement(fn: Fn, args: list[Any], func_out: tuple[Any, ...], *, eps: float,
                    atol: float, rtol: float, seed: int, probes: int
                    ) -> list[tuple[InputStats, bool]]:
    """Random-direction probes only, no localization, of `func_out`'s graph against finite
    differences of `fn`: per differentiable input, its statistics (each probe on
    `directional`) and whether they disagree. Reference mode tests autograd's graph with
    them. A discrepancy that shrinks with the step (`_follows_step`) is the finite
    difference's own error, not a disagreement."""
    m = Measurer(fn, args, func_out, eps=eps, atol=atol, rtol=rtol, seed=seed,
                 settings=ProbeSettings(probes=probes))
    failed = _probes(m)
    return [(stat, bool(failed[k]) and not _follows_step(m, k, failed[k]))
            for k, stat in enumerate(m.stats)]


def _follows_step(m: Measurer, k: int, failed: Failed) -> bool:
    """Whether every failed probe's discrepancy falls under a quarter at a much smaller step.

    A wrong derivative's discrepancy does not depend on the step; that of a difference
    straddling a kink does (the elements within the step of theirs become fewer, in
    proportion), as does truncation. The smaller step is h/64, or as small as keeps the
    rounding noise (which grows as 1/step) under a tenth of the discrepancy; when that is
    no smaller than h/4 the test cannot tell, and the disagreement stands."""
    step = m.inputs[k].step
    for probe, test in failed:
        rounding = probe.rounding / step
        factor = max(1 / 64, 10 * rounding / abs(test.discrepancy))
        if factor > 1 / 4:
            return False
        smaller = m.difference(k, probe, 0, m.inputs[k].numel, step * factor)
        if smaller is None or abs(smaller[0] - smaller[1]) >= abs(test.discrepancy) / 4:
            return False
    return True


def _probes(m: Measurer) -> list[Failed]:
    """Every input tested along each probe's direction; the failed probes, per input."""
    failed: list[Failed] = [[] for _ in m.inputs]
    for index in range(m.settings.probes):
        probe = m.probe(check_nondeterminism=index == 0)
        for k, stat in enumerate(m.stats):
            if m.inputs[k].numel == 0 or stat.first_nonfinite is not None:
                continue
            # Within the rounding noise itself: a tenth of the threshold, far from a near miss.
            test = m.measure(k, probe, 0, m.inputs[k].numel, both_steps=True,
                             passes_at=m.settings.confidence * CLEAR_PASS)
            if test is None:
                continue
            threshold = m.settings.confidence * test.noise
            stat.directional.append((test.analytical, test.numerical, threshold))
            m.fold(stat, test.analytical, test.numerical)
            if test.significant(m.settings.confidence):
                failed[k].append((probe, test))
    return failed
