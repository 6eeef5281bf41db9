"""What is checked, as data: a target (Function, op, module or callable) and its parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Param:
    """One positional parameter of forward (after ctx), or of a plain function."""

    name: str
    has_default: bool
    default: Any = None


@dataclass
class Target:
    """Something to check: an autograd Function subclass, a custom op or a plain callable."""

    name: str
    # "function" | "legacy" | "callable" | "module" (an nn.Module subclass) | "custom_op"
    # (a torch.library op: target/custom_op.OpTarget)
    kind: str
    obj: Any
    file: Path
    line: int
    params: list[Param] = field(default_factory=list)
    varargs: bool = False
    once_differentiable: bool = False
    forward_line: int | None = None
    backward_line: int | None = None

    @property
    def is_autograd_function(self) -> bool:
        """A unit whose backward is the user's own formula: an autograd Function, or a
        custom op (its registered autograd formula), not a composite of such units."""
        return self.kind in ("function", "legacy", "custom_op")

    @property
    def forward_location(self) -> str:
        """`file:line` of its forward (of the class or callable where none is known)."""
        return f"{self.file}:{self.forward_line or self.line}"

    @property
    def backward_location(self) -> str:
        return f"{self.file}:{self.backward_line or self.line}"

    def call(self, *args: Any) -> Any:
        """Run it as gradcheck would: `Function.apply`, or the callable itself."""
        if self.kind == "callable":
            return self.obj(*args)
        return self.obj.apply(*args)
