"""Jacobian pictures: the blocks of failing inputs, shrunk so a single wrong element still shows."""

from __future__ import annotations

from typing import Any

import torch

from gradcheck_cli.engine.outcome import Outcome

PICTURE_LIMIT = 64  # rows and columns of a kept Jacobian picture


def downsample(matrix: torch.Tensor, limit: int = PICTURE_LIMIT) -> torch.Tensor:
    """At most limit x limit cells, each the entry of largest magnitude in its block, so a
    single wrong element still shows after shrinking."""
    rows = torch.tensor_split(torch.arange(matrix.shape[0]), min(limit, matrix.shape[0]))
    cols = torch.tensor_split(torch.arange(matrix.shape[1]), min(limit, matrix.shape[1]))
    out = torch.zeros((len(rows), len(cols)), dtype=matrix.dtype)
    for i, r in enumerate(rows):
        band = matrix[r]
        for j, c in enumerate(cols):
            block = band[:, c].reshape(-1)
            out[i, j] = block[int(block.abs().argmax())]
    return out


def failing_jacobians(outcome: Outcome) -> dict[str, dict[str, Any]]:
    """Analytical and numerical Jacobian blocks of the failing inputs, shrunk for pictures."""
    kept: dict[str, dict[str, Any]] = {}
    comparison = outcome.comparison
    if comparison is None:
        return kept
    failing = {e.index for e in outcome.inputs if not e.passed}
    for stat in comparison.inputs:
        analytical = getattr(stat, "analytical", None)
        numerical = getattr(stat, "numerical", None)
        if stat.position not in failing or analytical is None or numerical is None:
            continue
        if analytical.is_complex() or numerical.is_complex():
            continue
        a, n = analytical.detach().double().cpu(), numerical.detach().double().cpu()
        small_a, small_n = downsample(a), downsample(n)
        kept[outcome.names[stat.position]] = {
            "analytical": small_a.tolist(), "numerical": small_n.tolist(),
            "difference": downsample(a - n).tolist(),
            "shape": list(a.shape), "downsampled": tuple(small_a.shape) != tuple(a.shape),
        }
    return kept
