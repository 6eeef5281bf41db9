"""Rules for ops that rearrange, view or describe a tensor: transposes, views, sizes, squeezes."""

from __future__ import annotations

from gradcheck_cli.init.facts import Facts
from gradcheck_cli.init.rules.registry import TensorCall, tensor_op, unmodelled
from gradcheck_cli.init.symbols import (
    UNKNOWN,
    Number,
    Seq,
    Shape,
    Sizes,
    Tensor,
    Value,
    int_value,
)


def _positions(facts: Facts, call: TensorCall) -> list[int] | None:
    """The dim indices a transpose names (`x.permute(1, 0)`, `x.permute((1, 0))`), all ints."""
    for arg in call.args:
        facts.int_arg(arg)
    positions = [facts.ev(a) for a in call.args]
    if len(positions) == 1 and isinstance(positions[0], Seq):
        positions = positions[0].items
    ints = [int_value(p) for p in positions]
    found = [i for i in ints if i is not None]
    return found if len(found) == len(ints) else None


@tensor_op("t", "transpose", "swapaxes", "swapdims")
def transpose(facts: Facts, call: TensorCall) -> Value:
    """`x.t()`, `x.transpose(a, b)`: two dims swapped (a matrix's, without both indices)."""
    ints = _positions(facts, call)
    if ints is None:
        facts.opaque(call.base)
        return UNKNOWN
    facts.because(call.node, call.base_node, weak=True)
    if call.name == "t" or len(ints) != 2:
        dims = facts.ensure_rank(call.base.shape, 2)
        return Tensor(Shape(list(reversed(dims))))
    need = max(2, *(i + 1 if i >= 0 else -i for i in ints))
    dims = facts.ensure_rank(call.base.shape, need)
    try:
        a, b = (i % len(dims) for i in ints)
    except ZeroDivisionError:
        return UNKNOWN
    swapped = list(dims)
    swapped[a], swapped[b] = swapped[b], swapped[a]
    return Tensor(Shape(swapped))


@tensor_op("permute")
def permute(facts: Facts, call: TensorCall) -> Value:
    """`x.permute(2, 0, 1)`: `x` has as many dims as are named, reordered."""
    ints = _positions(facts, call)
    if ints is None:
        facts.opaque(call.base)
        return UNKNOWN
    facts.because(call.node, call.base_node, weak=True)
    dims = facts.ensure_rank(call.base.shape, len(ints))
    if any(not -len(dims) <= i < len(dims) for i in ints):
        return UNKNOWN  # a dim it does not have: torch raises, the trial run will tell
    if sorted(i % len(dims) for i in ints) != list(range(len(dims))):
        return UNKNOWN
    return Tensor(Shape([dims[i] for i in ints]))


@tensor_op("view", "reshape")
def view(facts: Facts, call: TensorCall) -> Value:
    """`x.view(2, -1)`, `x.reshape(y.shape)`: a free `x` takes the shape it is viewed as."""
    base = call.base
    values = [facts.ev(a) for a in call.args]
    if len(values) == 1 and isinstance(values[0], Sizes):
        if facts.is_free_param(base.shape):
            facts.unify(base.shape, values[0].shape)
        return Tensor(values[0].shape)
    dims = facts.sizes(call.args)
    if dims is None:
        return UNKNOWN
    if facts.is_free_param(base.shape):
        fixed = [d.root().size for d in dims]
        root = base.shape.root()
        if len(dims) > 1 and all(s in (1, None) for s in fixed) and fixed.count(None) == 1:
            root.dims = [d for d in dims if d.root().size is None]  # b.view(1, -1): 1-D
        else:
            root.dims = list(dims)  # the target shape itself is a shape that views so
        facts.because(call.node, call.base_node)
    return Tensor(Shape(dims))


@tensor_op("view_as", "reshape_as", "expand_as")
def like(facts: Facts, call: TensorCall) -> Value:
    """`x.view_as(y)`: `y`'s shape, which a free `x` takes too (not when expanding)."""
    if not call.args:
        return unmodelled(facts, call)
    other = facts.ev(call.args[0])
    if not isinstance(other, Tensor):
        return UNKNOWN
    if facts.is_free_param(call.base.shape) and call.name != "expand_as":
        facts.unify(call.base.shape, other.shape)
        facts.because(call.node, call.base_node)
    return Tensor(other.shape)


@tensor_op("size")
def size(facts: Facts, call: TensorCall) -> Value:
    """`x.size()` is `x.shape`; `x.size(i)` one of its dims."""
    if not call.args:
        return Sizes(call.base.shape)
    position = int_value(facts.ev(call.args[0]))
    facts.int_arg(call.args[0])
    if position is None:
        return UNKNOWN
    return facts.size_at(call.base.shape, position, call.node, call.base_node)


@tensor_op("dim", "numel", "item", "is_contiguous", "stride")
def number(facts: Facts, call: TensorCall) -> Value:
    """`x.numel()`, `x.item()`: a number, which says nothing of `x`'s shape."""
    return Number()


@tensor_op("tolist")
def as_list(facts: Facts, call: TensorCall) -> Value:
    """`x.tolist()`: a Python list, which says nothing of `x`'s shape."""
    return UNKNOWN


@tensor_op("unsqueeze", "squeeze")
def squeeze(facts: Facts, call: TensorCall) -> Value:
    """`x.unsqueeze(0)`: `x` may have any shape; the result's rank is not tracked."""
    for arg in call.args:
        facts.int_arg(arg)
    call.base.shape.root().elementwise = True
    return UNKNOWN
