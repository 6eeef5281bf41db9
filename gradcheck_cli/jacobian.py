"""Numerical and analytical Jacobians, compared block by block in bounded memory.

The numerical Jacobian uses torch's own recipe (central differences, one element at a
time, perturbing the input's storage in place) so that its values are bit-for-bit those
of `torch.autograd.gradcheck`. Unlike torch, every input is compared, not only up to the
first mismatch, and rows are processed in chunks so that no dense Jacobian larger than
the memory budget is ever held.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

Fn = Callable[..., Any]

# Blocks are kept for diagnosis when the whole Jacobian is at most this many elements.
KEEP_BLOCKS_LIMIT = 1 << 22


class WrongGradientShape(Exception):
    """backward returned a gradient whose shape is not its input's."""

    def __init__(self, position: int, got: tuple[int, ...], expected: tuple[int, ...]) -> None:
        super().__init__(f"gradient {position} has shape {got}, expected {expected}")
        self.position = position
        self.got = got
        self.expected = expected


class ShapeChanged(Exception):
    """An output changed shape or dtype when an input was perturbed by eps."""


def as_tuple(value: Any) -> tuple[Any, ...]:
    if isinstance(value, tuple):
        return value
    if isinstance(value, list):
        return tuple(value)
    return (value,)


def is_diff_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.requires_grad


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


@dataclass
class Comparison:
    """The outcome of comparing the Jacobians of `fn` at `args`."""

    inputs: list[InputStats]
    output_sizes: list[int]
    output_shapes: list[tuple[int, ...]]
    chunks: int = 1

    def locate_row(self, row: int) -> tuple[int, int]:
        """Global row -> (differentiable output index, flat element of that output)."""
        for index, size in enumerate(self.output_sizes):
            if row < size:
                return index, row
            row -= size
        raise IndexError(row)


def unravel(flat: int, shape: Sequence[int]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        index.append(flat % size if size else 0)
        flat = flat // size if size else 0
    return tuple(reversed(index))


def flat_outputs(outs: tuple[Any, ...], positions: list[int]) -> torch.Tensor:
    parts = [outs[p].detach().reshape(-1) for p in positions]
    if not parts:
        return torch.zeros(0, dtype=torch.float64)
    dtype = parts[0].dtype
    for part in parts[1:]:
        dtype = torch.promote_types(dtype, part.dtype)
    return torch.cat([p.to(dtype) for p in parts])


def numerical_rows(
    fn: Fn,
    args: list[Any],
    position: int,
    reference: tuple[Any, ...],
    out_positions: list[int],
    rows: tuple[int, int],
    eps: float,
) -> torch.Tensor:
    """Rows `rows` of the numerical Jacobian of the chosen outputs w.r.t. args[position]."""
    tensor = args[position]
    data = tensor.data  # `.data`: perturb in place without bumping the version counter
    numel = tensor.numel()
    r0, r1 = rows

    def evaluate() -> torch.Tensor:
        outs = as_tuple(fn(*args))
        for index, (new, old) in enumerate(zip(outs, reference)):
            if isinstance(old, torch.Tensor) and (
                not isinstance(new, torch.Tensor) or new.shape != old.shape
                or new.dtype != old.dtype
            ):
                raise ShapeChanged(
                    f"output {index} changed shape or dtype when an input was perturbed by {eps}"
                )
        return flat_outputs(outs, out_positions)[r0:r1]

    columns: torch.Tensor | None = None
    for k in range(numel):
        index = unravel(k, tensor.shape)
        original = data[index].clone()
        steps = [eps, eps * 1j] if tensor.is_complex() else [eps]
        column: torch.Tensor | None = None
        for step in steps:
            data[index] = original - step
            before = evaluate()
            data[index] = original + step
            after = evaluate()
            data[index] = original
            derivative = (after - before) / (2 * eps)
            # For a complex input, the conjugate Wirtinger derivative d/dx + i d/dy, as torch.
            column = derivative if column is None else column + derivative * 1j
        assert column is not None
        if columns is None:
            dtype = column.dtype if not tensor.is_complex() else torch.promote_types(
                column.dtype, tensor.dtype)
            columns = torch.zeros((r1 - r0, numel), dtype=dtype, device=column.device)
        columns[:, k] = column
    if columns is None:
        columns = torch.zeros((r1 - r0, 0), dtype=torch.float64)
    return columns


def analytical_rows(
    outputs: list[torch.Tensor],
    diff_inputs: list[torch.Tensor],
    rows: tuple[int, int],
    sizes: list[int],
) -> list[torch.Tensor]:
    """Rows of the analytical Jacobian: one backward per output element (vᵀJ with v = eᵣ)."""
    r0, r1 = rows
    blocks = [
        torch.zeros((r1 - r0, x.numel()), dtype=x.dtype, device=x.device) for x in diff_inputs
    ]
    for row in range(r0, r1):
        output_index, element = _locate(row, sizes)
        output = outputs[output_index]
        grad_output = torch.zeros_like(output, memory_format=torch.contiguous_format)
        grad_output.view(-1)[element] = 1.0
        grads = torch.autograd.grad(
            output, diff_inputs, grad_output, retain_graph=True, allow_unused=True
        )
        for position, (block, grad, inp) in enumerate(zip(blocks, grads, diff_inputs)):
            if grad is None:
                continue
            if grad.shape != inp.shape:
                raise WrongGradientShape(position, tuple(grad.shape), tuple(inp.shape))
            block[row - r0] = grad.detach().reshape(-1).to(block.dtype)
    return blocks


def _locate(row: int, sizes: list[int]) -> tuple[int, int]:
    for index, size in enumerate(sizes):
        if row < size:
            return index, row
        row -= size
    raise IndexError(row)


def compare(
    fn: Fn,
    args: list[Any],
    func_out: tuple[Any, ...],
    *,
    eps: float,
    atol: float,
    rtol: float,
    max_elements: int,
) -> Comparison:
    """Compare analytical and numerical Jacobians of `fn` for every differentiable input.

    `max_elements` bounds the Jacobian elements held at once (numerical block plus two
    analytical runs); rows are processed in chunks to honour it.
    """
    diff_positions = [i for i, a in enumerate(args) if is_diff_tensor(a)]
    diff_inputs = [args[i] for i in diff_positions]
    out_positions = [i for i, o in enumerate(func_out) if is_diff_tensor(o)]
    outputs = [func_out[i] for i in out_positions]
    sizes = [o.numel() for o in outputs]
    total_rows = sum(sizes)
    total_columns = max(1, sum(x.numel() for x in diff_inputs))
    rows_per_chunk = max(1, max_elements // (3 * total_columns))
    keep = total_rows * total_columns <= KEEP_BLOCKS_LIMIT and rows_per_chunk >= total_rows
    stats = [InputStats(position=p, numel=args[p].numel()) for p in diff_positions]
    comparison = Comparison(
        inputs=stats, output_sizes=sizes, output_shapes=[tuple(o.shape) for o in outputs]
    )
    chunks = 0
    for r0 in range(0, total_rows, rows_per_chunk):
        r1 = min(total_rows, r0 + rows_per_chunk)
        chunks += 1
        first = analytical_rows(outputs, diff_inputs, (r0, r1), sizes)
        second = analytical_rows(outputs, diff_inputs, (r0, r1), sizes)
        for stat, ana, ana2 in zip(stats, first, second):
            num = numerical_rows(fn, args, stat.position, func_out, out_positions, (r0, r1), eps)
            _accumulate(stat, ana, ana2, num.to(ana.device), r0, atol, rtol, sizes)
            if keep:
                stat.analytical = ana
                stat.numerical = num
    comparison.chunks = chunks
    return comparison


def _accumulate(stat: InputStats, ana: torch.Tensor, ana2: torch.Tensor, num: torch.Tensor,
                r0: int, atol: float, rtol: float, sizes: list[int]) -> None:
    if ana.numel() == 0:
        return
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
            row, column = (int(v) for v in torch.nonzero(mask)[0])
            stat.first_nonfinite = (which, r0 + row, column, complex(values[row, column]).real)
    both_finite = ~(nonfinite_a | nonfinite_n)
    difference = torch.where(both_finite, (a - n).abs(), torch.zeros((), dtype=a.real.dtype,
                                                                         device=a.device))
    scale = torch.maximum(a.abs(), n.abs())
    relative = torch.where(scale > 0, difference / torch.where(scale > 0, scale, 1), 0)
    close = torch.isclose(a, n, rtol=rtol, atol=atol)
    wrong = ~close
    stat.wrong += int(wrong.sum())
    if bool(wrong.any()):
        rows_wrong = torch.nonzero(wrong.any(dim=1)).flatten().tolist()
        for row in rows_wrong:
            output_index, _ = _locate(r0 + int(row), sizes)
            stat.rows_wrong_by_output[output_index] = (
                stat.rows_wrong_by_output.get(output_index, 0) + 1)
        if len(stat.worst_wrong) < 8:
            for row, column in torch.nonzero(wrong)[: 8 - len(stat.worst_wrong)].tolist():
                stat.worst_wrong.append((r0 + row, column))
    max_abs = float(difference.max())
    if max_abs > stat.max_abs or stat.worst is None:
        row, column = divmod(int(difference.argmax()), difference.shape[1])
        stat.worst = (r0 + row, column, _scalar(a[row, column]), _scalar(n[row, column]))
        stat.max_abs = max_abs
    stat.max_rel = max(stat.max_rel, float(relative.max()))
    nondet = torch.where(torch.isfinite(ana) & torch.isfinite(ana2), (ana - ana2).abs(),
                         torch.zeros((), dtype=ana.real.dtype, device=ana.device))
    stat.nondeterminism = max(stat.nondeterminism, float(nondet.max()))


def _scalar(value: torch.Tensor) -> complex | float:
    item = value.item()
    return item if isinstance(item, complex) else float(item)
