"""Numerical and analytical Jacobians, compared entry by entry in bounded memory.

The numerical Jacobian uses torch's own recipe (central differences, one element at a
time, perturbing the input's storage in place) so that its values are bit-for-bit those
of `torch.autograd.gradcheck`. Unlike torch, every input is compared, not only up to the
first mismatch, and no dense Jacobian larger than the memory budget is ever held: when
the dense blocks do not fit, only the nonzero entries are kept (an elementwise op's
Jacobian is diagonal) and the two Jacobians are compared on the union of their nonzeros,
which gives the same per-input errors as the dense comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch

from gradcheck_cli.engine import cost
from gradcheck_cli.engine.stats import Comparison, InputStats, accumulate, locate, score, spread
from gradcheck_cli.engine.vjp import element_vjp, vjp

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


class ExactTooLarge(Exception):
    """The nonzero Jacobian entries outgrew the memory budget of the exact comparison."""

    def __init__(self, needed_bytes: int, budget_bytes: int, nonzeros: int) -> None:
        super().__init__(f"exact Jacobians need about {cost.human_bytes(needed_bytes)}, "
                         f"over the {cost.human_bytes(budget_bytes)} budget")
        self.needed_bytes = needed_bytes
        self.budget_bytes = budget_bytes
        self.nonzeros = nonzeros


def as_tuple(value: Any) -> tuple[Any, ...]:
    if isinstance(value, tuple):
        return value
    if isinstance(value, list):
        return tuple(value)
    return (value,)


def is_diff_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.requires_grad


def diff_positions(values: Sequence[Any]) -> list[int]:
    """Where the tensors that require grad stand among `values`."""
    return [i for i, a in enumerate(values) if is_diff_tensor(a)]


def fresh_copies(values: Sequence[Any]) -> list[Any]:
    """New leaf copies of the tensors among `values` (requiring grad as they do), the rest
    as is: a run on them shares no graph, and no in-place change, with another."""
    return [v.detach().clone().requires_grad_(v.requires_grad)
            if isinstance(v, torch.Tensor) else v for v in values]



def unravel(flat: int, shape: Sequence[int]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        index.append(flat % size if size else 0)
        flat = flat // size if size else 0
    return tuple(reversed(index))


def flat_outputs(outs: tuple[Any, ...], positions: list[int], copy: bool = True
                 ) -> torch.Tensor:
    parts = [outs[p].detach().reshape(-1) for p in positions]
    if not parts:
        return torch.zeros(0, dtype=torch.float64)
    if len(parts) == 1:  # a copy by default: an output may be an input (or a view of one)
        return parts[0].clone() if copy else parts[0]
    dtype = parts[0].dtype
    for part in parts[1:]:
        dtype = torch.promote_types(dtype, part.dtype)
    return torch.cat([p.to(dtype) for p in parts])


def sizes_of(args: Sequence[Any], func_out: tuple[Any, ...], parts: int = 1) -> cost.Sizes:
    """The sizes the cost model needs, from the arguments and forward's outputs."""
    inputs = [a for a in args if is_diff_tensor(a)]
    outputs = [o for o in func_out if is_diff_tensor(o)]
    itemsize = max([t.element_size() for t in (*inputs, *outputs)], default=8)
    if any(x.is_complex() for x in inputs):  # the numerical Jacobian is complex then
        itemsize = max(itemsize, 2 * max((o.element_size() for o in outputs), default=8))
    return cost.Sizes(
        input_numels=tuple(x.numel() for x in inputs),
        output_numel=sum(o.numel() for o in outputs),
        itemsize=itemsize,
        complex_inputs=tuple(x.is_complex() for x in inputs),
        parts=parts,
    )


def evaluate_flat(fn: Fn, args: list[Any], reference: tuple[Any, ...],
                  out_positions: list[int], eps: float, copy: bool = True) -> torch.Tensor:
    """Run forward at the (perturbed) arguments; its chosen outputs, flattened and joined.

    A copy, unless `copy` is False and there is one output: then possibly a view of an
    input (forward may return one), valid only until the arguments change again."""
    outs = as_tuple(fn(*args))
    for index, (new, old) in enumerate(zip(outs, reference)):
        if isinstance(old, torch.Tensor) and (
            not isinstance(new, torch.Tensor) or new.shape != old.shape
            or new.dtype != old.dtype
        ):
            raise ShapeChanged(
                f"output {index} changed shape or dtype when an input was perturbed by {eps}"
            )
    return flat_outputs(outs, out_positions, copy)


def element(data: torch.Tensor, flat: int) -> torch.Tensor:
    """A 0-d view of element `flat` (row-major) of `data`, to perturb in place."""
    if data.is_contiguous():
        return data.view(-1)[flat]
    return data[unravel(flat, data.shape)]


def numerical_columns(fn: Fn, args: list[Any], position: int, reference: tuple[Any, ...],
                      out_positions: list[int], eps: float,
                      columns: Iterable[int] | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """Columns of the numerical Jacobian w.r.t. args[position] (all outputs), one at a time.

    torch's recipe exactly: x[k] -= eps, evaluate, x[k] += eps, evaluate, restore, and
    (after - before) / (2 eps); for a complex input the conjugate Wirtinger derivative
    d/dx + i d/dy. `.data` perturbs in place without bumping the version counter.
    """
    tensor = args[position]
    data = tensor.data
    steps = [eps, eps * 1j] if tensor.is_complex() else [eps]
    for k in range(tensor.numel()) if columns is None else columns:
        entry = element(data, k)
        original = entry.clone()
        column: torch.Tensor | None = None
        try:
            for step in steps:
                entry.copy_(original - step)
                before = evaluate_flat(fn, args, reference, out_positions, eps)
                entry.copy_(original + step)
                # Used before the input moves again: no copy needed.
                after = evaluate_flat(fn, args, reference, out_positions, eps, copy=False)
                derivative = (after - before) / (2 * eps)
                column = derivative if column is None else column + derivative * 1j
        finally:
            entry.copy_(original)
        assert column is not None
        if tensor.is_complex():  # as torch stores it: in the wider of the two complex types
            column = column.to(torch.promote_types(column.dtype, tensor.dtype))
        yield k, column


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
    r0, r1 = rows
    numel = args[position].numel()
    columns: torch.Tensor | None = None
    for k, column in numerical_columns(fn, args, position, reference, out_positions, eps):
        if columns is None:
            columns = torch.zeros((r1 - r0, numel), dtype=column.dtype, device=column.device)
        columns[:, k] = column[r0:r1]
    if columns is None:
        columns = torch.zeros((r1 - r0, 0), dtype=torch.float64)
    return columns


def analytical_row(outputs: list[torch.Tensor], diff_inputs: list[torch.Tensor],
                   sizes: list[int], row: int,
                   grad_output: torch.Tensor | None = None,
                   flat_views: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Row `row` of the analytical Jacobian, one flat tensor per input (vᵀJ with v = eᵣ).

    With `grad_output` (flat over all outputs) instead: vᵀJ for that v, the row-vector
    that probe mode dots with its directions. As torch, one backward per output, the
    others' gradients undefined (None); outputs whose part of v is zero are skipped.
    `flat_views` (each output's `reshape(-1)`) saves making them again for every row.
    """
    if grad_output is None:
        output_index, element_index = locate(row, sizes)
        flat = (flat_views[output_index] if flat_views is not None
                else outputs[output_index].reshape(-1))
        rows = [element_vjp(outputs[output_index], flat, element_index, diff_inputs)]
    else:
        rows, start = [], 0
        for output in outputs:
            part = grad_output[start:start + output.numel()]
            start += output.numel()
            if len(outputs) == 1 or bool(part.any()):
                vector = part.to(output.dtype).reshape(output.shape).contiguous()
                rows.append(vjp([output], diff_inputs, [vector], retain_graph=True))
    result: list[torch.Tensor | None] = [None] * len(diff_inputs)
    for grads in rows:
        for position, (grad, inp) in enumerate(zip(grads, diff_inputs)):
            if grad is None:
                continue
            if grad.shape != inp.shape:
                raise WrongGradientShape(position, tuple(grad.shape), tuple(inp.shape))
            flat_grad = grad.detach().reshape(-1)
            if flat_grad.dtype != inp.dtype:
                flat_grad = flat_grad.to(inp.dtype)
            previous = result[position]
            result[position] = flat_grad if previous is None else previous + flat_grad
    # An input backward returned no gradient for (None) has a zero row.
    return [torch.zeros(x.numel(), dtype=x.dtype, device=x.device) if r is None else r
            for r, x in zip(result, diff_inputs)]


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
    views = [o.reshape(-1) for o in outputs]
    for row in range(r0, r1):
        grads = analytical_row(outputs, diff_inputs, sizes, row, flat_views=views)
        for block, grad in zip(blocks, grads):
            block[row - r0] = grad
    return blocks




def compare(
    fn: Fn,
    args: list[Any],
    func_out: tuple[Any, ...],
    *,
    eps: float,
    atol: float,
    rtol: float,
    budget_bytes: int,
    layout: str | None = None,
) -> Comparison:
    """Compare analytical and numerical Jacobians of `fn` for every differentiable input.

    `budget_bytes` bounds the Jacobian memory: the dense blocks are used when they fit
    (`cost.plan_exact`), else the nonzero entries only; `ExactTooLarge` is raised when even
    those outgrow it. `layout` forces "dense" or "sparse" (tests compare the two).
    """
    positions = diff_positions(args)
    diff_inputs = [args[i] for i in positions]
    out_positions = diff_positions(func_out)
    outputs = [func_out[i] for i in out_positions]
    sizes = [o.numel() for o in outputs]
    stats = [InputStats(position=p, numel=args[p].numel()) for p in positions]
    comparison = Comparison(
        inputs=stats, output_sizes=sizes, output_shapes=[tuple(o.shape) for o in outputs]
    )
    if layout is None:
        layout = cost.plan_exact(sizes_of(args, func_out), budget_bytes).layout
    comparison.layout = layout
    total_rows = sum(sizes)
    if layout == "sparse":
        _compare_sparse(fn, args, func_out, stats, outputs, out_positions, sizes, eps=eps,
                        atol=atol, rtol=rtol, budget_bytes=budget_bytes)
        return comparison
    total_columns = sum(x.numel() for x in diff_inputs)
    keep = total_rows * total_columns <= KEEP_BLOCKS_LIMIT
    first = analytical_rows(outputs, diff_inputs, (0, total_rows), sizes)
    second = analytical_rows(outputs, diff_inputs, (0, total_rows), sizes)
    for stat, ana, ana2 in zip(stats, first, second):
        num = numerical_rows(fn, args, stat.position, func_out, out_positions,
                             (0, total_rows), eps)
        accumulate(stat, ana, ana2, num.to(ana.device), atol, rtol, sizes)
        if keep:
            stat.analytical = ana
            stat.numerical = num
    return comparison


class _Entries:
    """Nonzero Jacobian entries as (row-major key, value), gathered a row or column at a time
    into buffers that double when full. (Keeping each row's few entries as tiny tensors of
    their own would scatter them between the large temporaries of each evaluation and
    fragment the heap: resident memory then grows by tens of KB per row.)"""

    def __init__(self) -> None:
        self.count = 0
        self._keys = torch.empty(0, dtype=torch.int64)
        self._values: torch.Tensor | None = None

    def _clear(self) -> None:
        self.count = 0
        self._keys = torch.empty(0, dtype=torch.int64)
        self._values = None

    def add(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        size = keys.numel()
        if size == 0:
            return
        if self._values is None:
            self._values = torch.empty(0, dtype=values.dtype)
        if self.count + size > self._keys.numel():
            capacity = max(2 * self._keys.numel(), self.count + size, 1024)
            grown_keys = torch.empty(capacity, dtype=torch.int64)
            grown_values = torch.empty(capacity, dtype=self._values.dtype)
            grown_keys[:self.count] = self._keys[:self.count]
            grown_values[:self.count] = self._values[:self.count]
            self._keys, self._values = grown_keys, grown_values
        self._keys[self.count:self.count + size] = keys
        self._values[self.count:self.count + size] = values
        self.count += size

    def take(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """All entries (keys int64, values as `dtype`); the buffer is emptied."""
        keys = self._keys[:self.count].clone()
        values = (self._values[:self.count].to(dtype, copy=True) if self._values is not None
                  else torch.zeros(0, dtype=dtype))
        self._clear()
        return keys, values


def _compare_sparse(fn: Fn, args: list[Any], func_out: tuple[Any, ...],
                    stats: list[InputStats], outputs: list[torch.Tensor],
                    out_positions: list[int], sizes: list[int], *, eps: float, atol: float,
                    rtol: float, budget_bytes: int) -> None:
    """The exact comparison holding nonzero entries only (see `compare`)."""
    diff_inputs = [args[s.position] for s in stats]
    numels = [x.numel() for x in diff_inputs]
    total_rows = sum(sizes)
    per_entry = cost.sparse_entry_bytes(sizes_of(args, func_out).itemsize)
    analytical = [_Entries() for _ in diff_inputs]
    # Both analytical runs row by row (torch runs the whole Jacobian twice): the second is
    # only compared with the first, for nondeterminism, and never stored.
    views = [o.reshape(-1) for o in outputs]
    for row in range(total_rows):
        first = analytical_row(outputs, diff_inputs, sizes, row, flat_views=views)
        second = analytical_row(outputs, diff_inputs, sizes, row, flat_views=views)
        for k, (entries, g1, g2) in enumerate(zip(analytical, first, second)):
            nonzero = torch.nonzero(g1).flatten()  # NaN is nonzero: non-finite entries kept
            entries.add(row * numels[k] + nonzero, g1[nonzero])
            stats[k].nondeterminism = max(stats[k].nondeterminism, spread(g1, g2))
        held = sum(e.count for e in analytical)
        # The numerical Jacobian of a right backward has as many nonzeros again.
        if 2 * held * per_entry > budget_bytes:
            expected = held * total_rows // (row + 1)
            raise ExactTooLarge(2 * expected * per_entry, budget_bytes, expected)
    analytical_held = sum(e.count for e in analytical)
    for k, stat in enumerate(stats):
        numerical = _Entries()
        dtype: torch.dtype | None = None
        for column, values in numerical_columns(fn, args, stat.position, func_out,
                                                out_positions, eps):
            dtype = values.dtype
            nonzero = torch.nonzero(values).flatten()
            numerical.add(nonzero * numels[k] + column, values[nonzero])
            if (analytical_held + numerical.count) * per_entry > budget_bytes:
                expected = analytical_held + numerical.count * numels[k] // (column + 1)
                raise ExactTooLarge(expected * per_entry, budget_bytes, expected)
        a_keys, a_values = analytical[k].take(diff_inputs[k].dtype)
        analytical_held -= a_keys.numel()
        n_keys, n_values = numerical.take(dtype or a_values.dtype)
        keys, inverse = torch.unique(torch.cat([a_keys, n_keys]), sorted=True,
                                     return_inverse=True)
        a = torch.zeros(keys.numel(), dtype=a_values.dtype)
        a[inverse[:a_keys.numel()]] = a_values
        n = torch.zeros(keys.numel(), dtype=n_values.dtype)
        n[inverse[a_keys.numel():]] = n_values
        del inverse, a_keys, n_keys, a_values, n_values
        if total_rows and numels[k]:
            score(stat, a, n, keys, numels[k], atol, rtol, sizes)


