"""`gradcheck-cli init FILE.py`: write a starter spec for every autograd Function in a file.

Shapes are guessed from how forward uses each parameter (its AST: `x @ w`, `.T`,
`+ bias`, `.view(...)`, `x.shape[0]`, `F.linear`, `einsum`, ...), then tried: forward and
backward are run once on CPU with the guess, and a guess that does not run is replaced by
one that does where a simpler one exists, else marked TODO with the error. Parameters with
defaults keep them as literals.
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gradcheck_cli.errors import GradcheckCliError, UsageError
from gradcheck_cli.quiet import quiet_torch_import
from gradcheck_cli.runner import user_output_to_stderr

if TYPE_CHECKING:
    from gradcheck_cli.discovery import Target
    from gradcheck_cli.specfile import InputSpec

EXIT_OK, EXIT_INTERNAL = 0, 3  # other exit codes come from cli.invoke
PLACEHOLDER = (3, 4)
SIZES = (3, 4, 2, 5, 6, 7, 8, 9, 10, 11)  # distinct, so a transposed dim shows in the check
POSITIVE = (0.5, 2.0)
NON_FINITE = "forward returned non-finite values"


# ---------------------------------------------------------------- symbolic shapes


class _Dim:
    """One size, shared by every tensor dimension unified with it (union-find)."""

    def __init__(self, size: int | None = None) -> None:
        self.parent: _Dim = self
        self.size = size

    def root(self) -> _Dim:
        node = self
        while node.parent is not node:
            node.parent = node.parent.parent
            node = node.parent
        return node


class _Shape:
    """A tensor shape: a list of dims, or None while its rank is unknown (union-find)."""

    def __init__(self, dims: list[_Dim] | None = None) -> None:
        self.parent: _Shape = self
        self.dims = dims
        self.opaque = False  # passed to something we do not model: the guess is a guess
        self.elementwise = False  # used in elementwise operations

    def root(self) -> _Shape:
        node = self
        while node.parent is not node:
            node.parent = node.parent.parent
            node = node.parent
        return node


@dataclass
class _Tensor:
    shape: _Shape


@dataclass
class _Size:
    """An int that is the size of some tensor's dimension (`x.shape[0]`)."""

    dim: _Dim


@dataclass
class _Sizes:
    """A whole shape as a value (`x.shape`, `x.size()`)."""

    shape: _Shape


@dataclass
class _Number:
    value: float | int | None = None


@dataclass
class _Seq:
    items: list[Any]


class _Unknown:
    pass


UNKNOWN = _Unknown()
Value = _Tensor | _Size | _Sizes | _Number | _Seq | _Unknown

UNARY = frozenset({
    "abs", "absolute", "neg", "negative", "exp", "exp2", "expm1", "log", "log2", "log10",
    "log1p", "sin", "cos", "tan", "asin", "acos", "atan", "arcsin", "arccos", "arctan", "sinh",
    "cosh", "tanh", "asinh", "acosh", "atanh", "arcsinh", "arccosh", "arctanh", "sigmoid",
    "logit", "relu", "relu6", "elu", "selu", "celu", "gelu", "silu", "mish", "softplus",
    "softsign", "tanhshrink", "hardtanh", "hardsigmoid", "hardswish", "leaky_relu",
    "logsigmoid", "sqrt", "rsqrt", "square", "reciprocal", "sign", "sgn", "erf", "erfc",
    "erfinv", "lgamma", "digamma", "floor", "ceil", "round", "trunc", "frac", "clamp", "clip",
    "clamp_min", "clamp_max", "nan_to_num", "detach", "clone", "contiguous", "float", "double",
    "half", "to", "cpu", "cuda", "type_as", "requires_grad_", "softmax", "log_softmax",
    "cumsum", "cumprod", "logcumsumexp", "flip", "fliplr", "flipud", "roll", "triu", "tril",
    "masked_fill", "zeros_like", "ones_like", "empty_like", "rand_like", "randn_like",
    "full_like", "dropout", "normalize", "sinc", "deg2rad", "rad2deg", "conj", "real", "relu_",
    "sigmoid_", "tanh_", "exp_", "neg_", "abs_", "clamp_", "threshold",
    "heaviside"
})
BINARY = frozenset({
    "add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide",
    "floor_divide", "remainder", "fmod", "pow", "float_power", "maximum", "minimum", "fmax",
    "fmin", "atan2", "arctan2", "hypot", "copysign", "xlogy", "eq", "ne", "lt", "le", "gt",
    "ge", "logaddexp", "logaddexp2", "lerp", "addcmul", "addcdiv", "where", "add_", "sub_",
    "mul_", "div_"
})
REDUCE = frozenset({
    "sum", "mean", "prod", "amax", "amin", "logsumexp", "norm", "std", "var", "max", "min",
    "median", "nansum", "nanmean", "all", "any", "argmax", "argmin", "count_nonzero"
})
FACTORIES = frozenset({
    "zeros", "ones", "empty", "rand", "randn", "full", "new_zeros", "new_ones", "new_empty",
    "new_full"
})
_POSITIVE_OPS = ("log", "log2", "log10", "log1p", "sqrt", "rsqrt", "reciprocal", "lgamma",
                 "digamma")
_UNIT_OPS = ("asin", "acos", "atanh", "arcsin", "arccos", "arctanh", "erfinv")
DOMAINS: dict[str, tuple[float, float]] = {
    **dict.fromkeys(_POSITIVE_OPS, POSITIVE),
    **dict.fromkeys(_UNIT_OPS, (-0.9, 0.9)),
    "logit": (0.1, 0.9),
    "acosh": (1.5, 3.0),
    "arccosh": (1.5, 3.0),
}
DIM_ARGS = frozenset({"dim", "dim0", "dim1", "axis", "keepdim"})
MODULES = frozenset({"torch", "F", "functional", "nn", "special", "linalg", "_C", "_nn", "fft"})


@dataclass
class _Settings:
    bias: bool = True  # `known + param` makes param the last dim only (a bias)
    square: bool = False  # every free size 3: the fallback for ops we do not model
    none_as_tensor: bool = False  # a `bias=None` parameter forward uses as a tensor gets one


class _Inference:
    """Walks forward's body once, unifying shapes as the operations demand."""

    def __init__(self, params: list[str], defaults: dict[str, Any], settings: _Settings) -> None:
        self.params = params
        self.settings = settings
        self.env: dict[str, Value] = {}
        self.shapes: dict[str, _Shape] = {}
        self.reasons: dict[str, str] = {}
        self.weak: set[str] = set()
        self.used: set[str] = set()
        self.int_params: set[str] = set()
        self.domains: dict[str, tuple[float, float]] = {}
        self.biases: set[str] = set()
        for name in params:
            default = defaults.get(name, inspect.Parameter.empty)
            if default is inspect.Parameter.empty or default is None:
                shape = _Shape()
                self.shapes[name] = shape
                self.env[name] = _Tensor(shape)
            elif isinstance(default, (int, float)) and not isinstance(default, bool):
                self.env[name] = _Number(default)

    # -- bookkeeping

    def _param(self, node: ast.AST) -> str | None:
        """The parameter an expression is made of directly (`w`, `w.T`, `w.view(1, -1)`)."""
        while True:
            if isinstance(node, ast.Name):
                return node.id if node.id in self.shapes else None
            if isinstance(node, ast.Attribute):
                node = node.value
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                node = node.func.value
            else:
                return None

    def _because(self, node: ast.AST, *operands: ast.AST, weak: bool = False) -> None:
        """Remember the first expression that fixed each operand's shape, for the comment.

        A `weak` reason (`w.T` alone) gives way to the next one (`x @ w.T`).
        """
        text = ast.unparse(node)
        if len(text) > 48:
            text = text[:45] + "..."
        for operand in operands:
            name = self._param(operand)
            if name is not None and (name not in self.reasons or name in self.weak):
                self.reasons[name] = text
                if weak:
                    self.weak.add(name)
                else:
                    self.weak.discard(name)

    def _int_arg(self, node: ast.AST) -> None:
        if isinstance(node, ast.Name) and node.id in self.params and node.id in self.shapes:
            self.int_params.add(node.id)

    def _domain(self, node: ast.AST, domain: tuple[float, float]) -> None:
        if isinstance(node, ast.Name) and node.id in self.shapes:
            self.domains.setdefault(node.id, domain)

    def _opaque(self, value: Value) -> None:
        if isinstance(value, _Tensor):
            value.shape.root().opaque = True
        elif isinstance(value, _Seq):
            for item in value.items:
                self._opaque(item)

    # -- unification

    def unify_dim(self, a: _Dim, b: _Dim) -> None:
        ra, rb = a.root(), b.root()
        if ra is rb:
            return
        if ra.size is None:
            ra.parent = rb
        elif rb.size is None or rb.size == ra.size:
            rb.parent = ra
        # two different fixed sizes: a conflict; the trial run will tell

    def unify(self, a: _Shape, b: _Shape) -> None:
        ra, rb = a.root(), b.root()
        if ra is rb:
            return
        if ra.dims is not None and rb.dims is not None:
            if len(ra.dims) != len(rb.dims):
                return  # ranks differ: broadcasting, not equality; leave both alone
            for x, y in zip(ra.dims, rb.dims):
                self.unify_dim(x, y)
        rb.parent = ra
        ra.dims = ra.dims if ra.dims is not None else rb.dims
        ra.opaque |= rb.opaque
        ra.elementwise |= rb.elementwise

    def ensure_rank(self, shape: _Shape, rank: int, at_least: bool = False) -> list[_Dim]:
        root = shape.root()
        if root.dims is None:
            root.dims = [_Dim() for _ in range(rank)]
        elif at_least and len(root.dims) < rank:
            pass  # a conflict; the trial run will tell
        return root.dims

    def _is_free_param(self, shape: _Shape) -> bool:
        root = shape.root()
        return root.dims is None and any(s.root() is root for s in self.shapes.values())

    def broadcast(self, a: Value, b: Value, node: ast.AST, left: ast.AST, right: ast.AST,
                  additive: bool) -> Value:
        if not isinstance(a, _Tensor) and not isinstance(b, _Tensor):
            return _Number() if isinstance(a, (_Number, _Size)) else UNKNOWN
        if not isinstance(a, _Tensor):
            assert isinstance(b, _Tensor)
            b.shape.root().elementwise = True
            return b
        if not isinstance(b, _Tensor):
            a.shape.root().elementwise = True
            return a
        ra, rb = a.shape.root(), b.shape.root()
        ra.elementwise = rb.elementwise = True
        if ra.dims is None and rb.dims is None:
            self.unify(ra, rb)
            return a
        if ra.dims is None or rb.dims is None:
            free, known, free_node = (ra, rb, left) if ra.dims is None else (rb, ra, right)
            assert known.dims is not None
            if (additive and self.settings.bias and len(known.dims) >= 2
                    and self._is_free_param(free)):
                free.dims = [known.dims[-1]]
                name = self._param(free_node)
                if name is not None:
                    self.biases.add(name)
            else:
                self.unify(free, known)
            self._because(node, free_node)
            return _Tensor(known)
        longer, shorter = (ra, rb) if len(ra.dims) >= len(rb.dims) else (rb, ra)
        assert longer.dims is not None and shorter.dims is not None
        for x, y in zip(reversed(longer.dims), reversed(shorter.dims)):
            if x.root().size != 1 and y.root().size != 1:
                self.unify_dim(x, y)
        return _Tensor(longer)

    def matmul(self, a: Value, b: Value, node: ast.AST, left: ast.AST,
               right: ast.AST) -> Value:
        if not isinstance(a, _Tensor) or not isinstance(b, _Tensor):
            return UNKNOWN
        da = self.ensure_rank(a.shape, 2)
        db = self.ensure_rank(b.shape, 2)
        self._because(node, left, right)
        if len(da) == 1 and len(db) == 1:
            self.unify_dim(da[0], db[0])
            return _Tensor(_Shape([]))
        if len(db) == 1:
            self.unify_dim(da[-1], db[0])
            return _Tensor(_Shape(da[:-1]))
        if len(da) == 1:
            self.unify_dim(da[0], db[-2])
            return _Tensor(_Shape(db[:-2] + db[-1:]))
        self.unify_dim(da[-1], db[-2])
        batch_a, batch_b = da[:-2], db[:-2]
        for x, y in zip(reversed(batch_a), reversed(batch_b)):
            self.unify_dim(x, y)
        batch = batch_a if len(batch_a) >= len(batch_b) else batch_b
        return _Tensor(_Shape([*batch, da[-2], db[-1]]))

    # -- evaluation

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
            self.ev(stmt.value)
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
            elif isinstance(value, _Sizes):
                values = [_Size(d) for d in self.ensure_rank(value.shape, len(names))]
                if len(values) != len(names):
                    values = [UNKNOWN] * len(names)
            elif isinstance(value, _Seq) and len(value.items) == len(names):
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
                return _Number(node.value)
            return UNKNOWN
        if isinstance(node, ast.UnaryOp):
            operand = self.ev(node.operand)
            if isinstance(operand, _Number) and isinstance(node.op, ast.USub):
                return _Number(-operand.value if operand.value is not None else None)
            return operand if isinstance(operand, _Tensor) else UNKNOWN
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
            return _Seq([self.ev(e) for e in node.elts])
        if isinstance(node, ast.Attribute):
            return self.attribute(node)
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self._opaque(self.ev(child))
        return UNKNOWN

    def binop(self, node: ast.BinOp, left: Value, right: Value) -> Value:
        if isinstance(node.op, ast.MatMult):
            return self.matmul(left, right, node, node.left, node.right)
        if isinstance(node.op, ast.Div):
            self._domain(node.right, POSITIVE)
        if isinstance(node.op, ast.Pow) and isinstance(right, _Number) \
                and isinstance(right.value, float) and not right.value.is_integer():
            self._domain(node.left, POSITIVE)
        if isinstance(left, _Number) and isinstance(right, _Number):
            return _Number()
        additive = isinstance(node.op, (ast.Add, ast.Sub))
        return self.broadcast(left, right, node, node.left, node.right, additive)

    def attribute(self, node: ast.Attribute) -> Value:
        base = self.ev(node.value)
        if not isinstance(base, _Tensor):
            return UNKNOWN
        if node.attr in ("T", "H"):
            dims = self.ensure_rank(base.shape, 2)
            self._because(node, node.value, weak=True)
            return _Tensor(_Shape(list(reversed(dims))))
        if node.attr in ("mT", "mH"):
            dims = self.ensure_rank(base.shape, 2)
            self._because(node, node.value, weak=True)
            return _Tensor(_Shape([*dims[:-2], dims[-1], dims[-2]])) if len(dims) >= 2 \
                else base
        if node.attr == "shape":
            return _Sizes(base.shape)
        if node.attr in ("ndim", "dtype", "device", "requires_grad", "is_cuda"):
            return UNKNOWN
        if node.attr in ("data", "real", "grad"):
            return base
        return UNKNOWN

    def subscript(self, node: ast.Subscript) -> Value:
        base = self.ev(node.value)
        index = node.slice
        if isinstance(base, _Sizes):
            position = self.ev(index)
            self._int_arg(index)
            if isinstance(position, _Number) and isinstance(position.value, int):
                return self._size_at(base.shape, position.value, node, node.value)
            return UNKNOWN
        if isinstance(base, _Seq):
            position = self.ev(index)
            if isinstance(position, _Number) and isinstance(position.value, int) \
                    and -len(base.items) <= position.value < len(base.items):
                item: Value = base.items[position.value]
                return item
            return UNKNOWN
        self.ev(index)
        self._opaque(base)
        return UNKNOWN

    def _size_at(self, shape: _Shape, position: int, node: ast.AST, of: ast.AST) -> Value:
        need = position + 1 if position >= 0 else -position
        dims = self.ensure_rank(shape, max(2, need), at_least=True)
        self._because(node, of)
        if -len(dims) <= position < len(dims):
            return _Size(dims[position])
        return UNKNOWN

    def _sizes(self, args: list[ast.expr]) -> list[_Dim] | None:
        """The dims a `view`/`zeros` call names: ints, `x.shape[i]`, a tuple of those."""
        values: list[Value] = [self.ev(a) for a in args]
        for a in args:
            self._int_arg(a)
        if len(values) == 1 and isinstance(values[0], _Sizes):
            return self.ensure_rank(values[0].shape, 2)
        if len(values) == 1 and isinstance(values[0], _Seq):
            values = values[0].items
        dims: list[_Dim] = []
        for value in values:
            if isinstance(value, _Size):
                dims.append(value.dim)
            elif isinstance(value, _Number) and isinstance(value.value, int) and value.value >= 0:
                dims.append(_Dim(value.value))
            elif isinstance(value, (_Number, _Unknown)):
                dims.append(_Dim())
            else:
                return None
        return dims

    def call(self, node: ast.Call) -> Value:
        func = node.func
        args = list(node.args)
        keywords = {k.arg: k.value for k in node.keywords if k.arg is not None}
        for keyword, keyword_value in keywords.items():
            if keyword in DIM_ARGS:
                self._int_arg(keyword_value)
        if isinstance(func, ast.Attribute):
            base_node = func.value
            if isinstance(base_node, ast.Name) and base_node.id == "ctx":
                for arg in args:
                    self.ev(arg)
                return UNKNOWN
            if self._is_module(base_node):
                return self.function(func.attr, node, args, keywords)
            base = self.ev(base_node)
            if isinstance(base, _Tensor):
                return self.method(func.attr, base, node, base_node, args, keywords)
            if func.attr == "apply":  # another Function
                for arg in args:
                    self._opaque(self.ev(arg))
                return UNKNOWN
        elif isinstance(func, ast.Name) and func.id in ("int", "float", "abs") and args:
            value = self.ev(args[0])
            return value if isinstance(value, (_Size, _Number)) else UNKNOWN
        elif isinstance(func, ast.Name) and func.id == "len" and args:
            value = self.ev(args[0])
            if isinstance(value, _Tensor):
                return _Size(self.ensure_rank(value.shape, 2, at_least=True)[0])
            return UNKNOWN
        for arg in [*args, *keywords.values()]:
            self._opaque(self.ev(arg))
        return UNKNOWN

    def _is_module(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Name):
            return node.id in MODULES or (node.id not in self.env and node.id[:1].islower()
                                          and node.id not in self.params)
        return isinstance(node, ast.Attribute) and self._is_module(node.value)

    def function(self, name: str, node: ast.Call, args: list[ast.expr],
                 keywords: dict[str, ast.expr]) -> Value:
        """`torch.name(...)`, `F.name(...)`: the first argument plays the tensor."""
        if name in FACTORIES:
            dims = self._sizes(args[1:] if name == "full" else args)
            return _Tensor(_Shape(dims)) if dims is not None else UNKNOWN
        if name == "eye" and args:
            size = self.ev(args[0])
            dim = size.dim if isinstance(size, _Size) else _Dim()
            return _Tensor(_Shape([dim, dim]))
        if name in ("matmul", "mm", "bmm", "mv", "dot", "inner") and len(args) >= 2:
            return self.matmul(self.ev(args[0]), self.ev(args[1]), node, args[0], args[1])
        if name in ("outer", "ger") and len(args) == 2:
            a, b = self.ev(args[0]), self.ev(args[1])
            if isinstance(a, _Tensor) and isinstance(b, _Tensor):
                da, db = self.ensure_rank(a.shape, 1), self.ensure_rank(b.shape, 1)
                self._because(node, args[0], args[1])
                return _Tensor(_Shape([da[0], db[0]]))
            return UNKNOWN
        if name == "linear" and len(args) >= 2:
            return self.linear(node, args, keywords)
        if name == "einsum" and args:
            return self.einsum(node, args)
        if name in ("conv1d", "conv2d", "conv3d") and len(args) >= 2:
            return self.conv(int(name[4]), node, args, keywords)
        if name in ("cat", "concat", "stack"):
            for arg in args:
                self.ev(arg)
            return UNKNOWN
        if not args:
            return UNKNOWN
        first = self.ev(args[0])
        if isinstance(first, _Tensor):
            return self.method(name, first, node, args[0], args[1:], keywords)
        for arg in args[1:]:
            self.ev(arg)
        return UNKNOWN

    def method(self, name: str, base: _Tensor, node: ast.Call, base_node: ast.expr,
               args: list[ast.expr], keywords: dict[str, ast.expr]) -> Value:
        """`base.name(*args)`, also reached for `torch.name(base, *args)`."""
        if name in DOMAINS:
            self._domain(base_node, DOMAINS[name])
        if name in ("min", "max") and args:
            other = self.ev(args[0])
            if isinstance(other, _Tensor):
                return self.broadcast(base, other, node, base_node, args[0], False)
            self._int_arg(args[0])
            return UNKNOWN
        if name in REDUCE:
            return self.reduce(base, args, keywords)
        if name in UNARY:
            for arg in [*args, *keywords.values()]:
                self.ev(arg)
            base.shape.root().elementwise = True
            if name in ("softmax", "log_softmax", "cumsum", "cumprod", "logcumsumexp") and args:
                self._int_arg(args[0])
            return base
        if name in BINARY:
            result: Value = base
            for arg in args:
                result = self.broadcast(result, self.ev(arg), node, base_node, arg,
                                        name in ("add", "sub", "subtract", "add_", "sub_"))
            return result
        if name in ("matmul", "mm", "bmm", "mv", "dot", "inner") and args:
            return self.matmul(base, self.ev(args[0]), node, base_node, args[0])
        if name in ("t", "transpose", "swapaxes", "swapdims", "permute"):
            return self.transpose(name, base, node, base_node, args)
        if name in ("view", "reshape"):
            return self.view(base, node, base_node, args)
        if name in ("view_as", "reshape_as", "expand_as") and args:
            other = self.ev(args[0])
            if isinstance(other, _Tensor):
                if self._is_free_param(base.shape) and name != "expand_as":
                    self.unify(base.shape, other.shape)
                    self._because(node, base_node)
                return _Tensor(other.shape)
            return UNKNOWN
        if name == "size":
            if not args:
                return _Sizes(base.shape)
            position = self.ev(args[0])
            self._int_arg(args[0])
            if isinstance(position, _Number) and isinstance(position.value, int):
                return self._size_at(base.shape, position.value, node, base_node)
            return UNKNOWN
        if name in ("dim", "numel", "item", "tolist", "is_contiguous", "stride"):
            return _Number() if name != "tolist" else UNKNOWN
        if name in ("unsqueeze", "squeeze"):
            for arg in args:
                self._int_arg(arg)
            base.shape.root().elementwise = True
            return UNKNOWN
        if name in FACTORIES:  # x.new_zeros(...)
            dims = self._sizes(args)
            return _Tensor(_Shape(dims)) if dims is not None else UNKNOWN
        if name == "linear":
            return self.linear(node, [base_node, *args], keywords)
        for arg in [*args, *keywords.values()]:
            self._opaque(self.ev(arg))
        self._opaque(base)
        return UNKNOWN

    def reduce(self, base: _Tensor, args: list[ast.expr],
               keywords: dict[str, ast.expr]) -> Value:
        dim_node = args[0] if args else keywords.get("dim", keywords.get("axis"))
        keep_node = args[1] if len(args) > 1 else keywords.get("keepdim")
        base.shape.root().elementwise = True  # a reduction takes any shape
        if dim_node is None:
            return _Tensor(_Shape([]))
        self._int_arg(dim_node)
        dim = self.ev(dim_node)
        keep = isinstance(keep_node, ast.Constant) and keep_node.value is True
        dims = base.shape.root().dims
        if dims is None or not isinstance(dim, _Number) or not isinstance(dim.value, int):
            return UNKNOWN
        position = dim.value
        if not -len(dims) <= position < len(dims):
            return UNKNOWN
        position %= len(dims)
        if keep:
            return _Tensor(_Shape([*dims[:position], _Dim(1), *dims[position + 1:]]))
        return _Tensor(_Shape([*dims[:position], *dims[position + 1:]]))

    def transpose(self, name: str, base: _Tensor, node: ast.Call, base_node: ast.expr,
                  args: list[ast.expr]) -> Value:
        for arg in args:
            self._int_arg(arg)
        positions = [self.ev(a) for a in args]
        if len(positions) == 1 and isinstance(positions[0], _Seq):
            positions = positions[0].items
        ints = [p.value for p in positions if isinstance(p, _Number) and isinstance(p.value, int)]
        if len(ints) != len(positions):
            self._opaque(base)
            return UNKNOWN
        self._because(node, base_node, weak=True)
        if name == "t" or (name in ("transpose", "swapaxes", "swapdims") and len(ints) != 2):
            dims = self.ensure_rank(base.shape, 2)
            return _Tensor(_Shape(list(reversed(dims))))
        if name == "permute":
            dims = self.ensure_rank(base.shape, len(ints))
            if sorted(i % len(dims) for i in ints) != list(range(len(dims))):
                return UNKNOWN
            return _Tensor(_Shape([dims[i] for i in ints]))
        need = max(2, *(i + 1 if i >= 0 else -i for i in ints))
        dims = self.ensure_rank(base.shape, need, at_least=True)
        try:
            a, b = (i % len(dims) for i in ints)
        except ZeroDivisionError:
            return UNKNOWN
        swapped = list(dims)
        swapped[a], swapped[b] = swapped[b], swapped[a]
        return _Tensor(_Shape(swapped))

    def view(self, base: _Tensor, node: ast.Call, base_node: ast.expr,
             args: list[ast.expr]) -> Value:
        values = [self.ev(a) for a in args]
        if len(values) == 1 and isinstance(values[0], _Sizes):
            if self._is_free_param(base.shape):
                self.unify(base.shape, values[0].shape)
            return _Tensor(values[0].shape)
        dims = self._sizes(args)
        if dims is None:
            return UNKNOWN
        if self._is_free_param(base.shape):
            fixed = [d.root().size for d in dims]
            root = base.shape.root()
            if len(dims) > 1 and all(s in (1, None) for s in fixed) and fixed.count(None) == 1:
                root.dims = [d for d in dims if d.root().size is None]  # b.view(1, -1): 1-D
            else:
                root.dims = list(dims)  # the target shape itself is a shape that views so
            self._because(node, base_node)
        return _Tensor(_Shape(dims))

    def linear(self, node: ast.Call, args: list[ast.expr], keywords: dict[str, ast.expr]
               ) -> Value:
        x, w = self.ev(args[0]), self.ev(args[1])
        bias_node = args[2] if len(args) > 2 else keywords.get("bias")
        if not isinstance(x, _Tensor) or not isinstance(w, _Tensor):
            return UNKNOWN
        dx = self.ensure_rank(x.shape, 2)
        dw = self.ensure_rank(w.shape, 2)
        self._because(node, args[0], args[1])
        if len(dw) != 2:
            return UNKNOWN
        self.unify_dim(dx[-1], dw[1])
        if bias_node is not None:
            bias = self.ev(bias_node)
            if isinstance(bias, _Tensor):
                db = self.ensure_rank(bias.shape, 1)
                self.unify_dim(db[-1], dw[0])
                self._because(node, bias_node)
        return _Tensor(_Shape([*dx[:-1], dw[0]]))

    def conv(self, spatial: int, node: ast.Call, args: list[ast.expr],
             keywords: dict[str, ast.expr]) -> Value:
        """`F.conv2d(x, w, b)`: x (N, C, H, W), w (O, C, kH, kW), b (O,); kernels 3 on 6."""
        x, w = self.ev(args[0]), self.ev(args[1])
        bias_node = args[2] if len(args) > 2 else keywords.get("bias")
        if not isinstance(x, _Tensor) or not isinstance(w, _Tensor):
            return UNKNOWN
        dx = self.ensure_rank(x.shape, spatial + 2)
        dw = self.ensure_rank(w.shape, spatial + 2)
        self._because(node, args[0], args[1])
        if len(dx) != spatial + 2 or len(dw) != spatial + 2:
            return UNKNOWN
        self.unify_dim(dx[1], dw[1])
        for size, dims in ((6, dx[2:]), (3, dw[2:])):
            for dim in dims:
                if dim.root().size is None:
                    dim.root().size = size
        if bias_node is not None:
            bias = self.ev(bias_node)
            if isinstance(bias, _Tensor):
                self.unify_dim(self.ensure_rank(bias.shape, 1)[-1], dw[0])
                self._because(node, bias_node)
        return _Tensor(_Shape([dx[0], dw[0], *(_Dim() for _ in range(spatial))]))

    def einsum(self, node: ast.Call, args: list[ast.expr]) -> Value:
        equation = args[0]
        operands = [self.ev(a) for a in args[1:]]
        if len(operands) == 1 and isinstance(operands[0], _Seq):
            operands = operands[0].items
        if not isinstance(equation, ast.Constant) or not isinstance(equation.value, str) \
                or "..." in equation.value or "->" not in equation.value:
            for operand in operands:
                self._opaque(operand)
            return UNKNOWN
        inputs, output = equation.value.replace(" ", "").split("->")
        terms = inputs.split(",")
        if len(terms) != len(operands):
            return UNKNOWN
        letters: dict[str, _Dim] = {}
        for term, operand in zip(terms, operands):
            if not isinstance(operand, _Tensor):
                continue
            dims = self.ensure_rank(operand.shape, len(term))
            if len(dims) != len(term):
                continue
            for letter, dim in zip(term, dims):
                if letter in letters:
                    self.unify_dim(letters[letter], dim)
                else:
                    letters[letter] = dim
        self._because(node, *args[1:])
        return _Tensor(_Shape([letters.get(letter, _Dim()) for letter in output]))


# ---------------------------------------------------------------- per-Function drafts


@dataclass
class Entry:
    """One line under `inputs`: the YAML of the value and a comment."""

    name: str
    yaml: str
    comment: str
    todo: bool = False


@dataclass
class Draft:
    """What init writes for one Function."""

    name: str
    entries: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def todos(self) -> int:
        return sum(e.todo for e in self.entries) + sum(n.startswith("TODO") for n in self.notes)


def _function_node(fn: Any) -> ast.FunctionDef | None:
    try:
        source = textwrap.dedent(inspect.getsource(inspect.unwrap(fn)))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            return node
    return None


def _method(cls: type, name: str) -> Any:
    raw = inspect.getattr_static(cls, name, None)
    if isinstance(raw, (staticmethod, classmethod)):
        return raw.__func__
    return raw


def _positional(node: ast.FunctionDef) -> list[str]:
    return [a.arg for a in [*node.args.posonlyargs, *node.args.args]]


def none_gradients(cls: type, count: int) -> set[int]:
    """Positions whose gradient backward always returns as a literal None."""
    node = _function_node(_method(cls, "backward"))
    if node is None:
        return set()
    returns = [n for n in ast.walk(node) if isinstance(n, ast.Return) and n.value is not None]
    if not returns:
        return set()
    found: set[int] | None = None
    for ret in returns:
        assert ret.value is not None
        items = ret.value.elts if isinstance(ret.value, (ast.Tuple, ast.List)) else [ret.value]
        here = {i for i, item in enumerate(items[:count])
                if isinstance(item, ast.Constant) and item.value is None}
        found = here if found is None else found & here
    return found or set()


@dataclass
class _Guess:
    """Input specs for one trial, with a comment per parameter."""

    specs: list[InputSpec]
    comments: list[str]
    todo: list[bool]
    notes: list[str] = field(default_factory=list)
    biases: set[str] = field(default_factory=set)


def _literal(value: Any) -> str | None:
    """`value` as a YAML flow scalar or collection that PyYAML reads back equal; else None."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent if exponent[0] in '+-' else '+' + exponent}"
        return text
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        items = [_literal(v) for v in value]
        strings = [i for i in items if i is not None]
        return "[" + ", ".join(strings) + "]" if len(strings) == len(items) else None
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        pairs = [(json.dumps(k), _literal(v)) for k, v in value.items()]
        if any(v is None for _, v in pairs):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    return None


class _Sizer:
    """Concrete sizes for dims: fixed ones kept, free ones numbered 3, 4, 2, 5, ..."""

    def __init__(self, square: bool) -> None:
        self.square = square
        self.sizes: dict[int, int] = {}

    def size(self, dim: _Dim) -> int:
        root = dim.root()
        if root.size is not None:
            return root.size
        if id(root) not in self.sizes:
            self.sizes[id(root)] = 3 if self.square else SIZES[len(self.sizes) % len(SIZES)]
        return self.sizes[id(root)]


def guess(target: Target, forward: ast.FunctionDef | None, none_grads: set[int],
          settings: _Settings) -> _Guess:
    """One guess at the inputs of `target`, from forward's AST."""
    from gradcheck_cli.specfile import LiteralInput, TensorInput

    names = [p.name for p in target.params]
    defaults = {p.name: p.default for p in target.params if p.has_default}
    inference = _Inference(names, defaults, settings)
    if forward is not None:
        inference.walk(forward.body)
    sizer = _Sizer(settings.square)
    result = _Guess([], [], [], biases=set(inference.biases))

    def add(spec: InputSpec, comment: str, todo: bool = False) -> None:
        result.specs.append(spec)
        result.comments.append(comment)
        result.todo.append(todo)

    for index, param in enumerate(target.params):
        name = param.name
        if param.has_default:
            if _literal(param.default) is None:
                # Defaults trail: this one and the rest are left to forward.
                rest = ", ".join(f"{p.name}={_short_repr(p.default)}"
                                 for p in target.params[index:])
                result.notes.append(f"forward's defaults are kept for {rest} (not YAML values)")
                break
            comment = "forward's default"
            if param.default is None and name in inference.reasons:
                shape, reason, _ = _tensor_shape(inference, name, sizer, settings)
                tensor = TensorInput(shape=shape, name=name)
                if settings.none_as_tensor:
                    add(tensor, f"{reason}; a tensor, as forward/backward failed with "
                                "its default None")
                    continue
                comment += f"; to check its gradient too, write - {_entry_yaml(tensor)}"
            elif isinstance(param.default, tuple):
                comment += " (a tuple; forward gets a list)"
            add(LiteralInput(param.default, name=name), comment)
            continue
        if name in inference.int_params and name not in inference.reasons:
            add(LiteralInput(-1, name=name),
                "TODO: an int (forward uses it as a dim or size); check the value", True)
            continue
        shape, comment, is_todo = _tensor_shape(inference, name, sizer, settings)
        low, high = inference.domains.get(name, (None, None))
        requires_grad = index not in none_grads
        if low is not None:
            comment += "; low/high keep it in forward's domain"
        if not requires_grad:
            comment += "; backward returns None for it, so its gradient is not checked"
        add(TensorInput(shape=shape, low=low, high=high, requires_grad=requires_grad,
                        name=name), comment, is_todo)
    return result


def _short_repr(value: Any) -> str:
    text = repr(value)
    if " at 0x" in text:  # an address changes from run to run
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= 40 else text[:37] + "..."


def _tensor_shape(inference: _Inference, name: str, sizer: _Sizer,
                  settings: _Settings) -> tuple[tuple[int, ...], str, bool]:
    """The shape guessed for tensor parameter `name`, why, and whether it needs a look."""
    root = inference.shapes[name].root()
    if root.dims is None:
        shape: tuple[int, ...] = (3, 3) if settings.square else PLACEHOLDER
        if name not in inference.used:
            return shape, "not used by forward: any shape", False
        if root.elementwise and not root.opaque:
            same = [p for p, s in inference.shapes.items()
                    if p != name and p in inference.used and s.root() is root]
            if same:
                return shape, f"any shape, the same as {', '.join(same)}", False
            return shape, "any shape: forward does not constrain it", False
        return shape, "TODO: shape not inferred from forward; set the one it expects", True
    shape = tuple(sizer.size(d) for d in root.dims)
    reason = inference.reasons.get(name)
    comment = f"from `{reason}`" if reason else "the shape of what it combines with"
    if root.opaque:
        return shape, "TODO: check it; " + comment, True
    return shape, comment, False


def trial(target: Target, specs: list[InputSpec]) -> str | None:
    """Run forward and backward once on CPU; None when they run, else what went wrong."""
    import torch

    from gradcheck_cli.inputs import build_inputs
    from gradcheck_cli.vjp import vjp

    try:
        built = build_inputs(target, tuple(specs), 0, "cpu")
        with user_output_to_stderr():
            out = target.call(*built.args)
            outs = out if isinstance(out, (tuple, list)) else (out,)
            tensors = [o for o in outs if isinstance(o, torch.Tensor)]
            for o in tensors:
                if (o.is_floating_point() or o.is_complex()) and not bool(
                        torch.isfinite(o.detach()).all()):
                    return NON_FINITE
            diff_out = [o for o in tensors if o.requires_grad]
            diff_in = [a for a in built.args if isinstance(a, torch.Tensor) and a.requires_grad]
            if diff_out and diff_in:
                vjp(diff_out, diff_in, [torch.ones_like(o) for o in diff_out])
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        return f"{type(exc).__name__}: {first}"[:200]
    return None


def _with_domain(specs: list[InputSpec]) -> list[InputSpec]:
    from dataclasses import replace

    from gradcheck_cli.specfile import TensorInput

    return [replace(s, low=POSITIVE[0], high=POSITIVE[1])
            if isinstance(s, TensorInput) and s.low is None else s for s in specs]


def draft(target: Target) -> Draft:
    """The spec entry for one Function: guessed, tried, and commented."""
    result = Draft(target.name)
    cls = target.obj
    forward = _function_node(_method(cls, "forward")) if isinstance(cls, type) else None
    none_grads = none_gradients(cls, len(target.params)) if isinstance(cls, type) else set()
    if forward is None:
        result.notes.append("TODO: forward's source was not found; the shapes are placeholders")
    if target.varargs:
        result.notes.append("TODO: forward takes *args; add an entry per extra argument")
    if target.kind == "legacy":
        result.notes.append("TODO: forward is not a @staticmethod (a legacy Function); "
                            "gradcheck-cli reports it as an error until it is")
    first = guess(target, forward, none_grads, _Settings())
    tried: list[_Guess] = [first]
    if any(p.has_default and p.default is None for p in target.params):
        tried.append(guess(target, forward, none_grads, _Settings(none_as_tensor=True)))
    if first.biases:
        tried.append(guess(target, forward, none_grads, _Settings(bias=False)))
    tried.append(guess(target, forward, none_grads, _Settings(square=True)))
    chosen = first
    if target.kind != "legacy":
        chosen, error = _first_that_runs(target, tried)
        if error is not None:
            result.notes.append(f"TODO: with these shapes forward/backward raised {error}")
    result.notes.extend(chosen.notes)
    for spec, comment, is_todo in zip(chosen.specs, chosen.comments, chosen.todo):
        result.entries.append(Entry(spec.name or "?", _entry_yaml(spec), comment, is_todo))
    return result


def _first_that_runs(target: Target, tried: list[_Guess]) -> tuple[_Guess, str | None]:
    """The first guess forward and backward run with (widened into forward's domain when
    its outputs are not finite), marking what differs from the first guess; else the
    first guess and its error."""
    from gradcheck_cli.specfile import TensorInput

    first_error: str | None = None
    seen: list[list[InputSpec]] = []
    for candidate in tried:
        if candidate.specs in seen:
            continue
        seen.append(candidate.specs)
        specs, comments = candidate.specs, list(candidate.comments)
        problem = trial(target, specs)
        if problem == NON_FINITE:
            widened = _with_domain(specs)
            if trial(target, widened) is None:
                comments = [c + "; low/high keep forward finite" if w != s else c
                            for c, s, w in zip(comments, specs, widened)]
                specs, problem = widened, None
        if problem is None:
            for i, (spec, base) in enumerate(zip(specs, tried[0].specs)):
                if (isinstance(spec, TensorInput) and isinstance(base, TensorInput)
                        and spec.shape != base.shape):
                    comments[i] = "TODO: check it; found by trying (forward runs with it)"
            todo = [t or c.startswith("TODO") for t, c in zip(candidate.todo, comments)]
            return _Guess(specs, comments, todo, candidate.notes, candidate.biases), None
        first_error = first_error or problem
    return tried[0], first_error


def _entry_yaml(spec: InputSpec) -> str:
    from gradcheck_cli.specfile import TensorInput

    if isinstance(spec, TensorInput):
        parts = [f"shape: [{', '.join(map(str, spec.shape))}]"]
        if spec.low is not None:
            parts.append(f"low: {_literal(spec.low)}")
        if spec.high is not None:
            parts.append(f"high: {_literal(spec.high)}")
        if not spec.requires_grad:
            parts.append("requires_grad: false")
        parts.append(f"name: {spec.name}")
        return "{" + ", ".join(parts) + "}"
    literal = _literal(spec.value)
    return "{value: " + (literal or "null") + f", name: {spec.name}}}"


# ---------------------------------------------------------------- the spec file


def default_output(path: Path, cwd: Path | None = None) -> Path:
    """`specs/<stem>.yaml` when the working directory has a specs/ folder, else beside the .py."""
    cwd = cwd or Path.cwd()
    if (cwd / "specs").is_dir():
        return cwd / "specs" / f"{path.stem}.yaml"
    return path.parent / f"{path.stem}.yaml"


def module_reference(module: Path, spec: Path) -> str:
    """The `module:` value: the .py's path relative to the spec's folder, with `/`."""
    module, folder = module.resolve(), spec.resolve().parent
    try:
        return Path(os.path.relpath(module, folder)).as_posix()
    except ValueError:  # another drive
        return module.as_posix()


def render(drafts: list[Draft], module: str, source: str, spec_shown: str) -> str:
    """The text of the starter spec."""
    lines = [
        f"# Starter spec written by `gradcheck-cli init {source}`.",
        "# Under `inputs`, one entry per argument of forward (after ctx), in order:",
        "#   {shape: [...]}   a float64 tensor, uniform in [low, high] (default [-1, 1]); its",
        "#                    gradient is checked unless `requires_grad: false`",
        "#   {value: ...}     passed to forward as is (a number, a list, null)",
        "# Fix what is marked TODO, add `cases:` for more shapes, then run:",
        f"#   gradcheck-cli {spec_shown}",
        f"module: {_literal(module) if _needs_quotes(module) else module}",
        "functions:",
    ]
    for entry in drafts:
        lines.append(f"  {entry.name}:")
        for note in entry.notes:
            lines.append(f"    # {note}")
        if not entry.entries:
            lines.append("    inputs: []               # forward takes no arguments")
            continue
        lines.append("    inputs:")
        width = max(len(e.yaml) for e in entry.entries) + 8
        for item in entry.entries:
            head = f"      - {item.yaml}"
            lines.append(f"{head.ljust(width)}  # {item.comment}")
    return "\n".join(lines) + "\n"


def _needs_quotes(text: str) -> bool:
    return (not text or text[0] in "!&*?|>'\"%@`{[-#,:" or ": " in text or " #" in text
            or text != text.strip())


def write_spec(path: Path, output: Path, force: bool) -> tuple[Path, list[Draft]]:
    """Import `path`, draft every Function, write the spec to `output`."""
    from gradcheck_cli.collect import display
    from gradcheck_cli.discovery import find_functions, import_file

    if output.exists() and not force:
        raise GradcheckCliError(f"{display(output)} already exists; not overwriting it",
                                hint="pass --force to replace it, or -o to write elsewhere")
    with user_output_to_stderr():
        module = import_file(path)
    targets = find_functions(module, path.resolve())
    if not targets:
        raise GradcheckCliError(f"no torch.autograd.Function subclass is defined in "
                                f"{display(path)}; nothing to write")
    drafts = [draft(t) for t in targets]
    text = render(drafts, module_reference(path, output), display(path), display(output))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    return output, drafts


@click.command(name="init", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Where to write the spec. Default: specs/<stem>.yaml when ./specs/ exists, "
                   "else <stem>.yaml beside the .py file.")
@click.option("--force", is_flag=True, help="Overwrite the spec if it exists.")
def command(path: Path, output: Path | None, force: bool) -> int:
    """Write a starter spec for every autograd Function defined in PATH (a .py file).

    Shapes are guessed from how forward uses each argument and tried once on CPU;
    what could not be guessed is marked TODO.
    """
    from gradcheck_cli.collect import display
    from gradcheck_cli.specfile import load_spec

    if path.suffix != ".py":
        raise UsageError(f"not a Python file: {path}", hint="give the .py file that defines "
                         "your torch.autograd.Function subclasses")
    if output is None:
        output = default_output(path)
    elif output.is_dir():
        output = output / f"{path.stem}.yaml"
    quiet_torch_import()
    written, drafts = write_spec(path, output, force)
    check = load_spec(written, display(written))
    if check.error is not None or any(f.error for f in check.functions):
        problem = check.error or next(f.error for f in check.functions if f.error)
        click.echo(f"gradcheck-cli init: internal error: the spec written does not load: "
                   f"{problem}", err=True)
        return EXIT_INTERNAL
    names = ", ".join(d.name for d in drafts)
    click.echo(f"wrote {display(written)}: {len(drafts)} Function(s) ({names})")
    todos = sum(d.todos for d in drafts)
    if todos:
        click.echo(f"{todos} place(s) marked TODO need a look")
    click.echo(f"next: gradcheck-cli {display(written)}")
    return EXIT_OK


def init_command(argv: list[str]) -> int:
    """Run `gradcheck-cli init ARGV...`; returns the exit code."""
    from gradcheck_cli.cli import invoke

    return invoke(command, list(argv), "gradcheck-cli init")
