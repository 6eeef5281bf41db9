"""Symbolic shapes of forward's parameters, inferred from its AST, for `gradcheck-cli init`.

`Inference` walks forward's body once and unifies shapes as the operations demand: `x @ w`
shares an inner dimension, `+ bias` a trailing one, `.view(...)`, `x.shape[0]`,
`F.linear`, `einsum` and the like add theirs. It also notes the domain an input needs
(`log`, `sqrt`, division: positive) and which parameters are integers. Reads code only:
no torch, no I/O.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

POSITIVE = (0.5, 2.0)
MATMUL = ("matmul", "mm", "bmm", "mv", "dot", "inner")  # as functions and as methods


class Dim:
    """One size, shared by every tensor dimension unified with it (union-find)."""

    def __init__(self, size: int | None = None) -> None:
        self.parent: Dim = self
        self.size = size

    def root(self) -> Dim:
        node = self
        while node.parent is not node:
            node.parent = node.parent.parent
            node = node.parent
        return node


class _Shape:
    """A tensor shape: a list of dims, or None while its rank is unknown (union-find)."""

    def __init__(self, dims: list[Dim] | None = None) -> None:
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

    dim: Dim


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
class Settings:
    bias: bool = True  # `known + param` makes param the last dim only (a bias)
    square: bool = False  # every free size 3: the fallback for ops we do not model
    none_as_tensor: bool = False  # a `bias=None` parameter forward uses as a tensor gets one


class Inference:
    """Walks forward's body once, unifying shapes as the operations demand."""

    def __init__(self, params: list[str], defaults: dict[str, Any], settings: Settings) -> None:
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

    def unify_dim(self, a: Dim, b: Dim) -> None:
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

    def ensure_rank(self, shape: _Shape, rank: int) -> list[Dim]:
        """The shape's dims, made `rank` fresh ones when unknown (a known rank that does
        not fit is a conflict the trial run will tell)."""
        root = shape.root()
        if root.dims is None:
            root.dims = [Dim() for _ in range(rank)]
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
        dims = self.ensure_rank(shape, max(2, need))
        self._because(node, of)
        if -len(dims) <= position < len(dims):
            return _Size(dims[position])
        return UNKNOWN

    def _sizes(self, args: list[ast.expr]) -> list[Dim] | None:
        """The dims a `view`/`zeros` call names: ints, `x.shape[i]`, a tuple of those."""
        values: list[Value] = [self.ev(a) for a in args]
        for a in args:
            self._int_arg(a)
        if len(values) == 1 and isinstance(values[0], _Sizes):
            return self.ensure_rank(values[0].shape, 2)
        if len(values) == 1 and isinstance(values[0], _Seq):
            values = values[0].items
        dims: list[Dim] = []
        for value in values:
            if isinstance(value, _Size):
                dims.append(value.dim)
            elif isinstance(value, _Number) and isinstance(value.value, int) and value.value >= 0:
                dims.append(Dim(value.value))
            elif isinstance(value, (_Number, _Unknown)):
                dims.append(Dim())
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
                return _Size(self.ensure_rank(value.shape, 2)[0])
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
            dim = size.dim if isinstance(size, _Size) else Dim()
            return _Tensor(_Shape([dim, dim]))
        if name in MATMUL and len(args) >= 2:
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
        if name in MATMUL and args:
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
            return _Tensor(_Shape([*dims[:position], Dim(1), *dims[position + 1:]]))
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
        dims = self.ensure_rank(base.shape, need)
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
        return _Tensor(_Shape([dx[0], dw[0], *(Dim() for _ in range(spatial))]))

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
        letters: dict[str, Dim] = {}
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
        return _Tensor(_Shape([letters.get(letter, Dim()) for letter in output]))
