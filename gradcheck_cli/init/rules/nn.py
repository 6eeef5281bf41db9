"""Rules for layers as functions: `F.linear`, `F.conv1d`/`conv2d`/`conv3d`."""

from __future__ import annotations

import ast

from gradcheck_cli.init.facts import Facts
from gradcheck_cli.init.rules.registry import (
    Call,
    TensorCall,
    tensor_op,
    torch_function,
    unmodelled,
)
from gradcheck_cli.init.symbols import UNKNOWN, Dim, Shape, Tensor, Value


def linear(facts: Facts, node: ast.Call, x_node: ast.expr, w_node: ast.expr,
           bias_node: ast.expr | None) -> Value:
    """`x @ w.T + bias`: w (out, in), x (..., in), bias (out,)."""
    x, w = facts.ev(x_node), facts.ev(w_node)
    if not isinstance(x, Tensor) or not isinstance(w, Tensor):
        return UNKNOWN
    dx = facts.ensure_rank(x.shape, 2)
    dw = facts.ensure_rank(w.shape, 2)
    facts.because(node, x_node, w_node)
    if len(dw) != 2 or not dx:
        return UNKNOWN
    facts.unify_dim(dx[-1], dw[1])
    if bias_node is not None:
        bias = facts.ev(bias_node)
        if isinstance(bias, Tensor):
            db = facts.ensure_rank(bias.shape, 1)
            facts.unify_dim(db[-1], dw[0])
            facts.because(node, bias_node)
    return Tensor(Shape([*dx[:-1], dw[0]]))


def _bias(call: Call, position: int) -> ast.expr | None:
    return call.args[position] if len(call.args) > position else call.keywords.get("bias")


@torch_function("linear")
def linear_function(facts: Facts, call: Call) -> Value | None:
    """`F.linear(x, w, bias)`."""
    if len(call.args) < 2:
        return None
    return linear(facts, call.node, call.args[0], call.args[1], _bias(call, 2))


@tensor_op("linear")
def linear_method(facts: Facts, call: TensorCall) -> Value:
    """`F.linear(x, weight=w)` once x is known a tensor (and `x.linear(w)`, as written)."""
    if not call.args:  # the weight is not positional: nothing to unify with
        return unmodelled(facts, call)
    return linear(facts, call.node, call.base_node, call.args[0], _bias(call, 1))


@torch_function("conv1d", "conv2d", "conv3d")
def conv(facts: Facts, call: Call) -> Value | None:
    """`F.conv2d(x, w, b)`: x (N, C, H, W), w (O, C, kH, kW), b (O,); kernels 3 on 6."""
    if len(call.args) < 2:
        return None
    spatial = int(call.name[4])
    x, w = facts.ev(call.args[0]), facts.ev(call.args[1])
    bias_node = _bias(call, 2)
    if not isinstance(x, Tensor) or not isinstance(w, Tensor):
        return UNKNOWN
    dx = facts.ensure_rank(x.shape, spatial + 2)
    dw = facts.ensure_rank(w.shape, spatial + 2)
    facts.because(call.node, call.args[0], call.args[1])
    if len(dx) != spatial + 2 or len(dw) != spatial + 2:
        return UNKNOWN
    facts.unify_dim(dx[1], dw[1])
    for size, dims in ((6, dx[2:]), (3, dw[2:])):
        for dim in dims:
            if dim.root().size is None:
                dim.root().size = size
    if bias_node is not None:
        bias = facts.ev(bias_node)
        if isinstance(bias, Tensor):
            facts.unify_dim(facts.ensure_rank(bias.shape, 1)[-1], dw[0])
            facts.because(call.node, bias_node)
    return Tensor(Shape([dx[0], dw[0], *(Dim() for _ in range(spatial))]))
