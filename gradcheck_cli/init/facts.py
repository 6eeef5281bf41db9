"""What shape inference has learnt about forward's parameters, and the unification rules use."""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from typing import Any

from gradcheck_cli.init.symbols import (
    UNKNOWN,
    Dim,
    Number,
    Seq,
    Shape,
    Size,
    Sizes,
    Tensor,
    Unknown,
    Value,
)


@dataclass
class Settings:
    """The knobs one guess is made with (the drafts try several)."""

    bias: bool = True  # `known + param` makes param the last dim only (a bias)
    square: bool = False  # every free size 3: the fallback for ops we do not model
    none_as_tensor: bool = False  # a `bias=None` parameter forward uses as a tensor gets one


class Facts:
    """The parameters' symbolic shapes, why each was fixed, their domains and int-ness.

    Rules (gradcheck_cli/init/rules/) read and unify through these methods; `ev` evaluates
    an expression and is the AST walk's (`shape_inference.Inference`).
    """

    def __init__(self, params: list[str], defaults: dict[str, Any], settings: Settings) -> None:
        self.params = params
        self.settings = settings
        self.env: dict[str, Value] = {}
        self.shapes: dict[str, Shape] = {}
        self.reasons: dict[str, str] = {}
        self.weak: set[str] = set()
        self.used: set[str] = set()
        self.int_params: set[str] = set()
        self.domains: dict[str, tuple[float, float]] = {}
        self.biases: set[str] = set()
        self.indices: dict[str, Dim] = {}  # index parameters -> the size they index
        for name in params:
            default = defaults.get(name, inspect.Parameter.empty)
            if default is inspect.Parameter.empty or default is None:
                shape = Shape()
                self.shapes[name] = shape
                self.env[name] = Tensor(shape)
            elif isinstance(default, (int, float)) and not isinstance(default, bool):
                self.env[name] = Number(default)

    def ev(self, node: ast.AST) -> Value:
        """The value of an expression, learning from it as it goes."""
        raise NotImplementedError  # the AST walk supplies it

    # -- bookkeeping

    def param_of(self, node: ast.AST) -> str | None:
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

    def because(self, node: ast.AST, *operands: ast.AST, weak: bool = False) -> None:
        """Remember the first expression that fixed each operand's shape, for the comment.

        A `weak` reason (`w.T` alone) gives way to the next one (`x @ w.T`).
        """
        text = ast.unparse(node)
        if len(text) > 48:
            text = text[:45] + "..."
        for operand in operands:
            name = self.param_of(operand)
            if name is not None and (name not in self.reasons or name in self.weak):
                self.reasons[name] = text
                if weak:
                    self.weak.add(name)
                else:
                    self.weak.discard(name)

    def int_arg(self, node: ast.AST) -> None:
        """`node` is used as a dim or a size: a parameter it names is an int."""
        if isinstance(node, ast.Name) and node.id in self.params and node.id in self.shapes:
            self.int_params.add(node.id)

    def index_into(self, node: ast.AST, size: Dim) -> None:
        """A parameter `node` names is an index tensor of values below `size`."""
        if isinstance(node, ast.Name) and node.id in self.shapes:
            self.indices.setdefault(node.id, size)

    def domain(self, node: ast.AST, domain: tuple[float, float]) -> None:
        """A parameter `node` names needs values in `domain` (the first one asked wins)."""
        if isinstance(node, ast.Name) and node.id in self.shapes:
            self.domains.setdefault(node.id, domain)

    def opaque(self, value: Value) -> None:
        """`value` goes where we do not model: its shape is only a guess."""
        if isinstance(value, Tensor):
            value.shape.root().opaque = True
        elif isinstance(value, Seq):
            for item in value.items:
                self.opaque(item)

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

    def unify(self, a: Shape, b: Shape) -> None:
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

    def ensure_rank(self, shape: Shape, rank: int) -> list[Dim]:
        """The shape's dims, made `rank` fresh ones when unknown (a known rank that does
        not fit is a conflict the trial run will tell)."""
        root = shape.root()
        if root.dims is None:
            root.dims = [Dim() for _ in range(rank)]
        return root.dims

    def is_free_param(self, shape: Shape) -> bool:
        """Whether `shape` is a parameter's whose rank nothing has fixed yet."""
        root = shape.root()
        return root.dims is None and any(s.root() is root for s in self.shapes.values())

    def broadcast(self, a: Value, b: Value, node: ast.AST, left: ast.AST, right: ast.AST,
                  additive: bool) -> Value:
        """`a op b` elementwise: equal trailing dims, or a free `+ param` taken as a bias."""
        if not isinstance(a, Tensor) and not isinstance(b, Tensor):
            return Number() if isinstance(a, (Number, Size)) else UNKNOWN
        if not isinstance(a, Tensor):
            assert isinstance(b, Tensor)
            b.shape.root().elementwise = True
            return b
        if not isinstance(b, Tensor):
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
                    and self.is_free_param(free)):
                free.dims = [known.dims[-1]]
                name = self.param_of(free_node)
                if name is not None:
                    self.biases.add(name)
            else:
                self.unify(free, known)
            self.because(node, free_node)
            return Tensor(known)
        longer, shorter = (ra, rb) if len(ra.dims) >= len(rb.dims) else (rb, ra)
        assert longer.dims is not None and shorter.dims is not None
        for x, y in zip(reversed(longer.dims), reversed(shorter.dims)):
            if x.root().size != 1 and y.root().size != 1:
                self.unify_dim(x, y)
        return Tensor(longer)

    # -- sizes as values

    def size_at(self, shape: Shape, position: int, node: ast.AST, of: ast.AST) -> Value:
        """`x.shape[position]`: the dim, giving `x` the rank that needs."""
        need = position + 1 if position >= 0 else -position
        dims = self.ensure_rank(shape, max(2, need))
        self.because(node, of)
        if -len(dims) <= position < len(dims):
            return Size(dims[position])
        return UNKNOWN

    def sizes(self, args: list[ast.expr]) -> list[Dim] | None:
        """The dims a `view`/`zeros` call names: ints, `x.shape[i]`, a tuple of those."""
        values: list[Value] = [self.ev(a) for a in args]
        for a in args:
            self.int_arg(a)
        if len(values) == 1 and isinstance(values[0], Sizes):
            return self.ensure_rank(values[0].shape, 2)
        if len(values) == 1 and isinstance(values[0], Seq):
            values = values[0].items
        dims: list[Dim] = []
        for value in values:
            if isinstance(value, Size):
                dims.append(value.dim)
            elif isinstance(value, Number) and isinstance(value.value, int) and value.value >= 0:
                dims.append(Dim(value.value))
            elif isinstance(value, (Number, Unknown)):
                dims.append(Dim())
            else:
                return None
        return dims
