"""Rules for reductions (`sum`, `mean`, `max`...): any input shape; the dim reduced goes."""

from __future__ import annotations

import ast

from gradcheck_cli.init.facts import Facts
from gradcheck_cli.init.rules.registry import TensorCall, tensor_op
from gradcheck_cli.init.symbols import UNKNOWN, Dim, Shape, Tensor, Value, int_value


@tensor_op(
    "sum", "mean", "prod", "amax", "amin", "logsumexp", "norm", "std", "var", "median",
    "nansum", "nanmean", "all", "any", "argmax", "argmin", "count_nonzero")
def reduction(facts: Facts, call: TensorCall) -> Value:
    """`x.sum()`: a scalar; `x.sum(dim, keepdim)`: `x`'s shape without (or with 1 at) dim."""
    args, keywords = call.args, call.keywords
    dim_node = args[0] if args else keywords.get("dim", keywords.get("axis"))
    keep_node = args[1] if len(args) > 1 else keywords.get("keepdim")
    call.base.shape.root().elementwise = True  # a reduction takes any shape
    if dim_node is None:
        return Tensor(Shape([]))
    facts.int_arg(dim_node)
    position = int_value(facts.ev(dim_node))
    keep = isinstance(keep_node, ast.Constant) and keep_node.value is True
    dims = call.base.shape.root().dims
    if dims is None or position is None or not -len(dims) <= position < len(dims):
        return UNKNOWN
    position %= len(dims)
    if keep:
        return Tensor(Shape([*dims[:position], Dim(1), *dims[position + 1:]]))
    return Tensor(Shape([*dims[:position], *dims[position + 1:]]))


@tensor_op("min", "max")
def min_max(facts: Facts, call: TensorCall) -> Value:
    """`x.max(y)` is elementwise, `x.max(dim)` and `x.max()` reduce."""
    if not call.args:
        return reduction(facts, call)
    other = facts.ev(call.args[0])
    if isinstance(other, Tensor):
        return facts.broadcast(call.base, other, call.node, call.base_node, call.args[0], False)
    facts.int_arg(call.args[0])
    return UNKNOWN
