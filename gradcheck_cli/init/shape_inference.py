"""Symbolic shapes of forward's parameters, inferred by walking its AST, for `gradcheck-cli init`.

`Inference` walks forward's body once and evaluates each expression to a symbolic value
(gradcheck_cli/init/symbols.py). Python's own syntax is handled here (`x @ w`, `+ bias`,
`x.T`, `x.shape[0]`, assignments, loops); a call of a torch op goes to the op's rule
(gradcheck_cli/init/rules/), which unifies shapes as the op demands and notes the domain
an input needs and which parameters are ints. Reads code only: no torch, no I/O.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Sequence
from typing import Any

from gradcheck_cli.init.facts import Facts, Settings
from gradcheck_cli.init.rules import (
    creation,
    elementwise,
    indexing,
    layout,
    linalg,
    nn,
    reductions,
)
from gradcheck_cli.init.rules.registry import Call, TensorCall, call_tensor_op, call_torch_function
from gradcheck_cli.init.symbols import (
    POSITIVE,
    UNKNOWN,
    Number,
    Seq,
    Shape,
    Size,
    Sizes,
    Tensor,
    Value,
    int_value,
)

__all__ = ["Inference", "Settings"]
# Importing a rule module registers its rules; naming them here keeps the imports used.
RULE_MODULES = (creation, elementwise, indexing, layout, linalg, nn, reductions)

MAX_INLINE_DEPTH = 3  # Functions applied inside Functions, walked through this deep
DIM_ARGS = frozenset({"dim", "dim0", "dim1", "axis", "keepdim"})
MODULES = frozenset({"torch", "F", "functional", "nn", "special", "linalg", "_C", "_nn", "fft"})


class _Renamer(ast.NodeTransformer):
    """Renames the names in an inlined forward that are its parameters."""

    def __init__(self, renames: dict[str, str]) -> None:
        self.renames = renames

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.copy_location(ast.Name(self.renames.get(node.id, node.id), node.ctx), node)


class Inference(Facts):
    """Walks forward's body once, unifying shapes as the operations demand.

    `callees` maps the names of other Functions of the file to their forward's AST, so
    that `Fn.apply(...)` in a composition is walked through rather than guessed.
    """

    callees: dict[str, ast.FunctionDef]
    depth: int
    returns: list[list[Value]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.callees = {}
        self.depth = 0
        self.returns = []

    def walk(self, body: Sequence[ast.stmt]) -> None:
        for stmt in body:
            self.statement(stmt)

    def statement(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.Assign):
            value = self.ev(stmt.value)
            for target in stmt.targets:
                self.bind(target, value)
        elif isinstance(stmt, ast.AugAssign):
            current = self.ev(stmt.target) if isinstance(stmt.target, ast.Name) else UNKNOWN
            node = ast.BinOp(left=stmt.target, op=stmt.op, right=stmt.value)
            value = self.binop(node, current, self.ev(stmt.value))
            self.bind(stmt.target, value)
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            self.bind(stmt.target, self.ev(stmt.value))
        elif isinstance(stmt, (ast.Expr, ast.Return)) and stmt.value is not None:
            value = self.ev(stmt.value)
            if isinstance(stmt, ast.Return) and self.returns:
                self.returns[-1].append(value)
        elif isinstance(stmt, (ast.If, ast.While)):
            self.ev(stmt.test)
            self.walk(stmt.body)
            self.walk(stmt.orelse)
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):
            self.ev(stmt.iter)
            self.bind(stmt.target, UNKNOWN)
            self.walk(stmt.body)
            self.walk(stmt.orelse)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                self.ev(item.context_expr)
            self.walk(stmt.body)
        elif isinstance(stmt, ast.Try):
            self.walk(stmt.body)
            for handler in stmt.handlers:
                self.walk(handler.body)
            self.walk(stmt.orelse)
            self.walk(stmt.finalbody)

    def bind(self, target: ast.AST, value: Value) -> None:
        if isinstance(target, ast.Name):
            self.env[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            names = target.elts
            if any(isinstance(n, ast.Starred) for n in names):
                values: list[Value] = [UNKNOWN] * len(names)
            elif isinstance(value, Sizes):
                values = [Size(d) for d in self.ensure_rank(value.shape, len(names))]
                if len(values) != len(names):
                    values = [UNKNOWN] * len(names)
            elif isinstance(value, Seq) and len(value.items) == len(names):
                values = list(value.items)
            else:
                values = [UNKNOWN] * len(names)
            for name, item in zip(names, values):
                self.bind(name, item)

    def ev(self, node: ast.AST) -> Value:
        if isinstance(node, ast.Name):
            if node.id in self.params:
                self.used.add(node.id)
            return self.env.get(node.id, UNKNOWN)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
                return Number(node.value)
            return UNKNOWN
        if isinstance(node, ast.UnaryOp):
            operand = self.ev(node.operand)
            if isinstance(operand, Number) and isinstance(node.op, ast.USub):
                return Number(-operand.value if operand.value is not None else None)
            return operand if isinstance(operand, Tensor) else UNKNOWN
        if isinstance(node, ast.BinOp):
            return self.binop(node, self.ev(node.left), self.ev(node.right))
        if isinstance(node, ast.Compare):
            value = self.ev(node.left)
            for right in node.comparators:
                value = self.broadcast(value, self.ev(right), node, node.left, right, False)
            return value
        if isinstance(node, ast.BoolOp):
            for item in node.values:
                self.ev(item)
            return UNKNOWN
        if isinstance(node, ast.IfExp):
            self.ev(node.test)
            body = self.ev(node.body)
            self.ev(node.orelse)
            return body
        if isinstance(node, (ast.Tuple, ast.List)):
            return Seq([self.ev(e) for e in node.elts])
        if isinstance(node, ast.Attribute):
            return self.attribute(node)
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.opaque(self.ev(child))
        return UNKNOWN

    def binop(self, node: ast.BinOp, left: Value, right: Value) -> Value:
        if isinstance(node.op, ast.MatMult):
            return linalg.matmul(self, left, right, node, node.left, node.right)
        if isinstance(node.op, ast.Div):
            self.domain(node.right, POSITIVE)
        if isinstance(node.op, ast.Pow) and isinstance(right, Number) \
                and isinstance(right.value, float) and not right.value.is_integer():
            self.domain(node.left, POSITIVE)
        if isinstance(left, Number) and isinstance(right, Number):
            return Number()
        additive = isinstance(node.op, (ast.Add, ast.Sub))
        return self.broadcast(left, right, node, node.left, node.right, additive)

    def attribute(self, node: ast.Attribute) -> Value:
        base = self.ev(node.value)
        if not isinstance(base, Tensor):
            return UNKNOWN
        if node.attr in ("T", "H"):
            dims = self.ensure_rank(base.shape, 2)
            self.because(node, node.value, weak=True)
            return Tensor(Shape(list(reversed(dims))))
        if node.attr in ("mT", "mH"):
            dims = self.ensure_rank(base.shape, 2)
            self.because(node, node.value, weak=True)
            return Tensor(Shape([*dims[:-2], dims[-1], dims[-2]])) if len(dims) >= 2 \
                else base
        if node.attr == "shape":
            return Sizes(base.shape)
        if node.attr in ("data", "real", "grad"):
            return base
        return UNKNOWN  # ndim, dtype, device, requires_grad...

    def subscript(self, node: ast.Subscript) -> Value:
        base = self.ev(node.value)
        index = node.slice
        if isinstance(base, Sizes):
            position = int_value(self.ev(index))
            self.int_arg(index)
            if position is not None:
                return self.size_at(base.shape, position, node, node.value)
            return UNKNOWN
        if isinstance(base, Seq):
            position = int_value(self.ev(index))
            if position is not None and -len(base.items) <= position < len(base.items):
                item: Value = base.items[position]
                return item
            return UNKNOWN
        picked = self.ev(index)
        if isinstance(base, Tensor) and isinstance(picked, Tensor) \
                and isinstance(index, ast.Name) and index.id in self.shapes:
            # `x[index]` with a tensor parameter: an index tensor into x's first dim.
            dims = self.ensure_rank(base.shape, 1)
            if dims:
                self.index_into(index, dims[0])
                rows = self.ensure_rank(picked.shape, 1)
                self.because(node, index)
                return Tensor(Shape([*rows, *dims[1:]]))
        self.opaque(base)
        return UNKNOWN

    def call(self, node: ast.Call) -> Value:
        func = node.func
        args = list(node.args)
        keywords = {k.arg: k.value for k in node.keywords if k.arg is not None}
        for keyword, keyword_value in keywords.items():
            if keyword in DIM_ARGS:
                self.int_arg(keyword_value)
        if isinstance(func, ast.Attribute):
            base_node = func.value
            if isinstance(base_node, ast.Name) and base_node.id == "ctx":
                for arg in args:
                    self.ev(arg)
                return UNKNOWN
            if self._is_module(base_node):
                return call_torch_function(self, Call(func.attr, node, args, keywords))
            base = self.ev(base_node)
            if isinstance(base, Tensor):
                return call_tensor_op(self, TensorCall(func.attr, node, args, keywords,
                                                       base, base_node))
            if func.attr == "apply":  # another Function: through its forward, if we have it
                if isinstance(base_node, ast.Name) and base_node.id in self.callees \
                        and self.depth < MAX_INLINE_DEPTH and not keywords:
                    return inline(self, self.callees[base_node.id], args)
                for arg in args:
                    self.opaque(self.ev(arg))
                return UNKNOWN
        elif isinstance(func, ast.Name) and func.id in ("int", "float", "abs") and args:
            value = self.ev(args[0])
            return value if isinstance(value, (Size, Number)) else UNKNOWN
        elif isinstance(func, ast.Name) and func.id == "len" and args:
            value = self.ev(args[0])
            dims = self.ensure_rank(value.shape, 2) if isinstance(value, Tensor) else []
            return Size(dims[0]) if dims else UNKNOWN
        for arg in [*args, *keywords.values()]:
            self.opaque(self.ev(arg))
        return UNKNOWN

    def _is_module(self, node: ast.AST) -> bool:
        """`torch`, `F`, `torch.linalg`, or a lower-case name forward does not bind."""
        if isinstance(node, ast.Name):
            return node.id in MODULES or (node.id not in self.env and node.id[:1].islower()
                                          and node.id not in self.params)
        return isinstance(node, ast.Attribute) and self._is_module(node.value)


def inline(self: Inference, forward: ast.FunctionDef, args: list[ast.expr]) -> Value:
    """The value of `Fn.apply(*args)`, by walking Fn's forward with its parameters
    renamed to the arguments: shapes unify with the caller's through the shared
    symbols, and domains and int-ness land on the caller's parameters."""
    params = [a.arg for a in forward.args.args][1:]  # after ctx
    if len(args) > len(params):
        for arg in args:
            self.opaque(self.ev(arg))
        return UNKNOWN
    saved = dict(self.env)
    renames: dict[str, str] = {}
    for index, (param, arg) in enumerate(zip(params, args)):
        if isinstance(arg, ast.Name):
            renames[param] = arg.id
        else:
            fresh = f"__arg{self.depth}_{index}"
            self.env[fresh] = self.ev(arg)
            renames[param] = fresh
    body = _Renamer(renames).visit(copy.deepcopy(forward))
    self.depth += 1
    returned: list[Value] = []
    self.returns.append(returned)
    try:
        self.walk(body.body)
    finally:
        self.returns.pop()
        self.depth -= 1
        self.env = saved
    return returned[0] if returned else UNKNOWN
