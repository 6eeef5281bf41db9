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
                    atol: float, rtol: float, seed: int, probes: int) -> list[InputStats]:
    """Random-direction probes only, no localization: per differentiable input, each
    probe's (analytical, numerical, threshold) on `directional`, the analytical side from
    `func_out`'s graph. Reference mode tests autograd's graph against forward with them."""
    m = Measurer(fn, args, func_out, eps=eps, atol=atol, rtol=rtol, seed=seed,
                 settings=ProbeSettings(probes=probes))
    _probes(m)
    return m.stats


def _probes(m: Measurer) -> list[Failed]:
    """Every input tested along each probe's direction; the failed probes, per input."""
    failed: list[Failed] = [[] for _ in m.inputs]
    for index in range(m.settings.probes):
        probe = m.probe(check_nondeterminism=index == 0)
        for k, stat in enumerate(m.stats):
            if m.inputs[k].numel == 0 or stat.first_nonfinite is not None:
                continue
            test = m.measure(k, probe, 0, m.inputs[k].numel, both_steps=True)
            if test is None:
                continue
            threshold = m.settings.confidence * test.noise
            stat.directional.append((test.analytical, test.numerical, threshold))
            m.fold(stat, test.analytical, test.numerical)
            if test.significant(m.settings.confidence):
                failed[k].append((probe, test))
    return failed
