"""Rules for ops that take an index tensor: `F.embedding`, `index_select`, `gather`.

The index parameter becomes an int64 tensor whose values stay below the size it indexes
(`facts.index_into`), so a drafted input never reads out of range.
"""

from __future__ import annotations

from gradcheck_cli.init.facts import Facts
from gradcheck_cli.init.rules.registry import (
    Call,
    TensorCall,
    tensor_op,
    torch_function,
    unmodelled,
)
from gradcheck_cli.init.symbols import UNKNOWN, Dim, Shape, Tensor, Value, int_value


@torch_function("embedding")
def embedding(facts: Facts, call: Call) -> Value | None:
    """`F.embedding(indices, weight)`: weight (num, dim), indices below num, any shape."""
    if len(call.args) < 2:
        return None
    indices, weight = facts.ev(call.args[0]), facts.ev(call.args[1])
    if not isinstance(weight, Tensor):
        return UNKNOWN
    num, dim = facts.ensure_rank(weight.shape, 2) or (None, None)
    facts.because(call.node, call.args[1])
    if num is None or dim is None:
        return UNKNOWN
    facts.index_into(call.args[0], num)
    if isinstance(indices, Tensor):
        dims = facts.ensure_rank(indices.shape, 2)
        facts.because(call.node, call.args[0])
        return Tensor(Shape([*dims, dim]))
    return UNKNOWN


def _dim_of(facts: Facts, call: TensorCall) -> int | None:
    node = call.args[0] if call.args else call.keywords.get("dim")
    return int_value(facts.ev(node)) if node is not None else None


@tensor_op("index_select")
def index_select(facts: Facts, call: TensorCall) -> Value:
    """`x.index_select(dim, index)`: a 1-d index below x's size along dim."""
    dim = _dim_of(facts, call)
    index_node = call.args[1] if len(call.args) > 1 else call.keywords.get("index")
    if dim is None or index_node is None or call.base.shape.root().dims is None:
        return unmodelled(facts, call)
    dims = list(call.base.shape.root().dims or [])
    if not -len(dims) <= dim < len(dims):
        return unmodelled(facts, call)
    index = facts.ev(index_node)
    facts.index_into(index_node, dims[dim])
    if not isinstance(index, Tensor):
        return UNKNOWN
    (picked,) = facts.ensure_rank(index.shape, 1) or (Dim(),)
    facts.because(call.node, index_node)
    dims[dim] = picked
    return Tensor(Shape(dims))


@tensor_op("gather")
def gather(facts: Facts, call: TensorCall) -> Value:
    """`x.gather(dim, index)`: an index of x's rank below x's size along dim (drafted with
    x's shape, which is always valid)."""
    dim = _dim_of(facts, call)
    index_node = call.args[1] if len(call.args) > 1 else call.keywords.get("index")
    root = call.base.shape.root()
    if dim is None or index_node is None or root.dims is None:
        return unmodelled(facts, call)
    if not -len(root.dims) <= dim < len(root.dims):
        return unmodelled(facts, call)
    index = facts.ev(index_node)
    facts.index_into(index_node, root.dims[dim])
    if not isinstance(index, Tensor):
        return UNKNOWN
    facts.unify(index.shape, call.base.shape)
    facts.because(call.node, index_node)
    return Tensor(index.shape)
