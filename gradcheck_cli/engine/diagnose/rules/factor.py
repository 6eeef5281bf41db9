"""The constant k with analytical = k × numerical, when there is one (the sign and scale rules)."""

from __future__ import annotations

from gradcheck_cli.engine.diagnose.case import Case
from gradcheck_cli.engine.diagnose.rules.zero import everywhere


def exact_factor(case: Case) -> float | None:
    """k when the analytical block is k times the numerical one (real blocks), else None."""
    if "exact_factor" not in case.memo:
        case.memo["exact_factor"] = _exact(case)
    found: float | None = case.memo["exact_factor"]
    return found


def probe_factor(case: Case) -> float | None:
    """k when every probe's analytical derivative is k times its numerical one, within
    that probe's noise, every probe beyond it; else None."""
    if "probe_factor" not in case.memo:
        case.memo["probe_factor"] = _probe(case)
    found: float | None = case.memo["probe_factor"]
    return found


def _exact(case: Case) -> float | None:
    if case.blocks_kept is None or case.a.is_complex():
        return None
    a, n = case.a, case.n
    denominator = float((n * n).sum())
    if denominator <= 0:
        return None
    k = float((a * n).sum()) / denominator
    return k if case.close(a, k * n) else None


def _probe(case: Case) -> float | None:
    probes = case.stats.directional
    if not everywhere(case):
        return None
    denominator = sum(n * n for _, n, _ in probes)
    if denominator <= 0:
        return None
    k = sum(a * n for a, n, _ in probes) / denominator
    return k if all(abs(a - k * n) <= t for a, n, t in probes) else None


def is_minus_one(k: float) -> bool:
    return abs(k + 1) <= 1e-3
