"""Rules for matrix products: `@`, `matmul`/`mm`/`bmm`/`mv`/`dot`/`inner`, `outer`, `einsum`."""

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
from gradcheck_cli.init.symbols import UNKNOWN, Dim, Seq, Shape, Tensor, Value

MATMUL = ("matmul", "mm", "bmm", "mv", "dot", "inner")  # as functions and as methods


def matmul(facts: Facts, a: Value, b: Value, node: ast.AST, left: ast.AST,
           right: ast.AST) -> Value:
    """`a @ b`: the inner dims are one; free operands are matrices; batch dims broadcast."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        return UNKNOWN
    da = facts.ensure_rank(a.shape, 2)
    db = facts.ensure_rank(b.shape, 2)
    facts.because(node, left, right)
    if not da or not db:  # a 0-d operand: torch raises, the trial run will tell
        return UNKNOWN
    if len(da) == 1 and len(db) == 1:
        facts.unify_dim(da[0], db[0])
        return Tensor(Shape([]))
    if len(db) == 1:
        facts.unify_dim(da[-1], db[0])
        return Tensor(Shape(da[:-1]))
    if len(da) == 1:
        facts.unify_dim(da[0], db[-2])
        return Tensor(Shape(db[:-2] + db[-1:]))
    facts.unify_dim(da[-1], db[-2])
    batch_a, batch_b = da[:-2], db[:-2]
    for x, y in zip(reversed(batch_a), reversed(batch_b)):
        facts.unify_dim(x, y)
    batch = batch_a if len(batch_a) >= len(batch_b) else batch_b
    return Tensor(Shape([*batch, da[-2], db[-1]]))


@torch_function(*MATMUL)
def matmul_function(facts: Facts, call: Call) -> Value | None:
    """`torch.mm(a, b)`."""
    if len(call.args) < 2:
        return None
    a, b = call.args[0], call.args[1]
    return matmul(facts, facts.ev(a), facts.ev(b), call.node, a, b)


@tensor_op(*MATMUL)
def matmul_method(facts: Facts, call: TensorCall) -> Value:
    """`a.mm(b)`."""
    if not call.args:
        return unmodelled(facts, call)
    other = call.args[0]
    return matmul(facts, call.base, facts.ev(other), call.node, call.base_node, other)


@torch_function("outer", "ger")
def outer(facts: Facts, call: Call) -> Value | None:
    """`torch.outer(a, b)`: two vectors, a matrix."""
    if len(call.args) != 2:
        return None
    a, b = facts.ev(call.args[0]), facts.ev(call.args[1])
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        return UNKNOWN
    da, db = facts.ensure_rank(a.shape, 1), facts.ensure_rank(b.shape, 1)
    facts.because(call.node, call.args[0], call.args[1])
    return Tensor(Shape([da[0], db[0]]))


@torch_function("einsum")
def einsum(facts: Facts, call: Call) -> Value | None:
    """`torch.einsum("ij,jk->ik", a, b)`: one dim per letter (no `...`, an explicit `->`)."""
    if not call.args:
        return None
    equation = call.args[0]
    operands = [facts.ev(a) for a in call.args[1:]]
    if len(operands) == 1 and isinstance(operands[0], Seq):
        operands = operands[0].items
    if not isinstance(equation, ast.Constant) or not isinstance(equation.value, str) \
            or "..." in equation.value or equation.value.count("->") != 1:
        for operand in operands:
            facts.opaque(operand)
        return UNKNOWN
    inputs, output = equation.value.replace(" ", "").split("->")
    terms = inputs.split(",")
    if len(terms) != len(operands):
        return UNKNOWN
    letters: dict[str, Dim] = {}
    for term, operand in zip(terms, operands):
        if not isinstance(operand, Tensor):
            continue
        dims = facts.ensure_rank(operand.shape, len(term))
        if len(dims) != len(term):
            continue
        for letter, dim in zip(term, dims):
            if letter in letters:
                facts.unify_dim(letters[letter], dim)
            else:
                letters[letter] = dim
    facts.because(call.node, *call.args[1:])
    return Tensor(Shape([letters.get(letter, Dim()) for letter in output]))
