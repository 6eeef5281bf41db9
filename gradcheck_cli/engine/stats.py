"""What a Jacobian comparison measured for each input, and how entries are scored into it.

`InputStats` is filled by the exact comparison (`jacobian.compare`, entry by entry through
`score`) and by probe mode (`engine.probe`, directional tests and localized entries); the
verdict and the diagnosis read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class InputStats:
    """Everything measured for one differentiable input, over all outputs."""

    position: int  # index in the argument list
    numel: int
    max_abs: float = 0.0
    max_rel: float = 0.0
    wrong: int = 0
    worst: tuple[int, int, complex | float, complex | float] | None = None  # row, column, a, n
    worst_wrong: list[tuple[int, int]] = field(default_factory=list)  # (row, column)
    nonfinite_analytical: int = 0
    nonfinite_numerical: int = 0
    first_nonfinite: tuple[str, int, int, float] | None = None
    nondeterminism: float = 0.0
    analytical: torch.Tensor | None = None  # kept blocks (rows x numel), small Jacobians only
    numerical: torch.Tensor | None = None
    rows_wrong_by_output: dict[int, int] = field(default_factory=dict)
    # Probe mode only (see engine/probe): each random-direction check as
    # (analytical vᵀJu, numerical vᵀJu, acceptance threshold), whether the localized wrong
    # entries explain the whole discrepancy, and a discrepancy that could not be localized.
    directional: list[tuple[float, float, float]] = field(default_factory=list)
    explained: bool = False
    unresolved: str | None = None
    # Probe mode only: what a diagnosis rule measured after a failed probe, by the rule's
    # kind (exact mode compares the kept blocks instead). See `ProbeView`.
    evidence: dict[str, object] = field(default_factory=dict)


@dataclass
class Comparison:
    """The outcome of comparing the Jacobians of `fn` at `args`."""

    inputs: list[InputStats]
    output_sizes: list[int]
    output_shapes: list[tuple[int, ...]]
    layout: str = "dense"  # "dense" | "sparse" (exact mode) | "probe"

    def locate_row(self, row: int) -> tuple[int, int]:
        """Global row -> (differentiable output index, flat element of that output)."""
        return locate(row, self.output_sizes)


def locate(row: int, sizes: list[int]) -> tuple[int, int]:
    """Global row -> (output index, flat element of that output), for outputs of `sizes`."""
    for index, size in enumerate(sizes):
        if row < size:
            return index, row
        row -= size
    raise IndexError(row)


def spread(first: torch.Tensor, second: torch.Tensor) -> float:
    """Largest difference between two backward results where both are finite."""
    if first.numel() == 0 or torch.equal(first, second):
        return 0.0
    both = torch.isfinite(first) & torch.isfinite(second)
    return float(torch.where(both, (first - second).abs(), 0).max())


def accumulate(stat: InputStats, ana: torch.Tensor, ana2: torch.Tensor, num: torch.Tensor,
               atol: float, rtol: float, sizes: list[int]) -> None:
    """Fold one dense block pair (rows x columns) into the input's stats."""
    if ana.numel() == 0:
        return
    score(stat, ana.reshape(-1), num.reshape(-1), None, ana.shape[1], atol, rtol, sizes)
    stat.nondeterminism = max(stat.nondeterminism, spread(ana, ana2))


def score(stat: InputStats, ana: torch.Tensor, num: torch.Tensor, keys: torch.Tensor | None,
          columns: int, atol: float, rtol: float, sizes: list[int]) -> None:
    """Errors of one input from its Jacobian entries.

    `ana`, `num`: entries in row-major order; `keys[i]` is entry i's row-major position
    (row * columns + column), or None when the entries are the whole dense block. Entries
    absent from a sparse set are zero in both Jacobians, hence close, with no error; so the
    counts, maxima and first positions equal those of the dense comparison.
    """
    def position(i: int) -> tuple[int, int]:
        flat = i if keys is None else int(keys[i])
        return divmod(flat, columns)

    dtype = torch.promote_types(ana.dtype, num.dtype)
    a = ana.to(dtype)
    n = num.to(dtype)
    # NaN and Inf are never "close": count them, and keep them out of the error maxima.
    nonfinite_a = ~torch.isfinite(a)
    nonfinite_n = ~torch.isfinite(n)
    if bool(nonfinite_a.any()) or bool(nonfinite_n.any()):
        stat.nonfinite_analytical += int(nonfinite_a.sum())
        stat.nonfinite_numerical += int(nonfinite_n.sum())
        if stat.first_nonfinite is None:
            which, mask, values = (
                ("numerical", nonfinite_n, n) if bool(nonfinite_n.any()) else
                ("analytical", nonfinite_a, a)
            )
            first = int(torch.nonzero(mask)[0])
            row, column = position(first)
            stat.first_nonfinite = (which, row, column, complex(values[first]).real)
    both_finite = ~(nonfinite_a | nonfinite_n)
    difference = torch.where(both_finite, (a - n).abs(), torch.zeros((), dtype=a.real.dtype,
                                                                         device=a.device))
    scale = torch.maximum(a.abs(), n.abs())
    relative = torch.where(scale > 0, difference / torch.where(scale > 0, scale, 1), 0)
    wrong = ~torch.isclose(a, n, rtol=rtol, atol=atol)
    stat.wrong += int(wrong.sum())
    if bool(wrong.any()):
        if keys is None:
            rows = torch.nonzero(wrong.view(-1, columns).any(dim=1)).flatten()
        else:
            rows = torch.unique(keys[wrong] // columns)
        count_rows(stat, rows, sizes)
        if len(stat.worst_wrong) < 8:
            for i in torch.nonzero(wrong)[: 8 - len(stat.worst_wrong)].flatten().tolist():
                stat.worst_wrong.append(position(i))
    if difference.numel():
        max_abs = float(difference.max())
        worst = int(difference.argmax())  # the first maximum in row-major order, as dense
    else:
        max_abs, worst = 0.0, -1
    if max_abs > stat.max_abs or stat.worst is None:
        if keys is not None and max_abs == 0:
            # Dense argmax of an all-zero error is entry (0, 0), present or not here.
            worst = 0 if keys.numel() and int(keys[0]) == 0 else -1
        if worst < 0:
            zero = scalar(torch.zeros((), dtype=dtype))
            stat.worst = (0, 0, zero, zero)
        else:
            row, column = position(worst)
            stat.worst = (row, column, scalar(a[worst]), scalar(n[worst]))
        stat.max_abs = max_abs
    if relative.numel():
        stat.max_rel = max(stat.max_rel, float(relative.max()))


def count_rows(stat: InputStats, rows: torch.Tensor, sizes: list[int]) -> None:
    """Add the rows with a wrong entry to the per-output counts (second-order diagnosis)."""
    ends = torch.tensor(sizes, dtype=torch.int64).cumsum(0)
    which = torch.bucketize(rows, ends, right=True)
    for output_index, count in zip(*torch.unique(which, return_counts=True)):
        index = int(output_index)
        stat.rows_wrong_by_output[index] = stat.rows_wrong_by_output.get(index, 0) + int(count)


def scalar(value: torch.Tensor) -> complex | float:
    item = value.item()
    return item if isinstance(item, complex) else float(item)
