"""The symbolic values shape inference computes: dims and shapes (union-find), tensors, sizes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

POSITIVE = (0.5, 2.0)  # the domain of log, sqrt, division...: away from 0 and from overflow


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


class Shape:
    """A tensor shape: a list of dims, or None while its rank is unknown (union-find)."""

    def __init__(self, dims: list[Dim] | None = None) -> None:
        self.parent: Shape = self
        self.dims = dims
        self.opaque = False  # passed to something we do not model: the guess is a guess
        self.elementwise = False  # used in elementwise operations

    def root(self) -> Shape:
        node = self
        while node.parent is not node:
            node.parent = node.parent.parent
            node = node.parent
        return node


@dataclass
class Tensor:
    """A tensor forward computes or receives, known by its symbolic shape (not torch's)."""

    shape: Shape


@dataclass
class Size:
    """An int that is the size of some tensor's dimension (`x.shape[0]`)."""

    dim: Dim


@dataclass
class Sizes:
    """A whole shape as a value (`x.shape`, `x.size()`)."""

    shape: Shape


@dataclass
class Number:
    """A Python number; its value when it is a literal."""

    value: float | int | None = None


@dataclass
class Seq:
    """A tuple or list literal, item by item."""

    items: list[Any]


class Unknown:
    """Anything the inference does not model."""


UNKNOWN = Unknown()
Value = Tensor | Size | Sizes | Number | Seq | Unknown


def int_value(value: Value) -> int | None:
    """The int `value` is as a literal (a dim index, a size), else None."""
    if isinstance(value, Number) and isinstance(value.value, int):
        return value.value
    return None
