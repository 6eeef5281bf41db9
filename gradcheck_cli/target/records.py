"""What is checked, as data: a target (Function, op, module or callable) and its parameters."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Param:
    """One positional parameter of forward (after ctx), or of a plain function."""

    name: str
    has_default: bool
    default: Any = None


@dataclass(frozen=True)
class Layout:
    """How the engine's flat list of inputs becomes a call's arguments, when a spec gives
    keyword arguments or lists: per argument, its keyword (None: positional) and how many
    flat inputs it takes (None: one value; a number: a list of that many)."""

    slots: tuple[tuple[str | None, int | None], ...]

    @property
    def width(self) -> int:
        return sum(1 if count is None else count for _, count in self.slots)

    def pack(self, flat: tuple[Any, ...] | list[Any]) -> tuple[list[Any], dict[str, Any]]:
        """The positional and keyword arguments; flat inputs past the layout follow the
        positional ones."""
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        index = 0
        for keyword, count in self.slots:
            if count is None:
                value: Any = flat[index]
                index += 1
            else:
                value = list(flat[index:index + count])
                index += count
            if keyword is None:
                args.append(value)
            else:
                kwargs[keyword] = value
        args.extend(flat[index:])
        return args, kwargs


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
    keywords: list[Param] = field(default_factory=list)  # keyword-only parameters
    varkw: bool = False  # takes **kwargs
    varargs_name: str = "args"  # the name of its *args, for the inputs it takes
    once_differentiable: bool = False
    forward_line: int | None = None
    backward_line: int | None = None
    layout: Layout | None = None  # how a spec's keyword and list inputs are passed

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

    def positional(self) -> list[Param]:
        """The parameters a spec's `inputs` fill, in order."""
        return self.params

    def keyword_names(self) -> list[str] | None:
        """The names a spec's `kwargs` may give (None: any, it takes **kwargs)."""
        return None if self.varkw else [p.name for p in (*self.params, *self.keywords)]

    def call(self, *args: Any) -> Any:
        """Run it as gradcheck would: `Function.apply`, or the callable itself, with the
        flat inputs packed by the layout when there is one."""
        if self.layout is not None:
            positional, keywords = self.layout.pack(args)
            return self.invoke(positional, keywords)
        return self.invoke(list(args), {})

    def invoke(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if self.kind == "callable":
            return self.obj(*args, **kwargs)
        return self.obj.apply(*args, **kwargs)


@dataclass
class Signature:
    """A callable's parameters as a spec fills them (after `skip` leading ones)."""

    params: list[Param] = field(default_factory=list)
    varargs: bool = False
    keywords: list[Param] = field(default_factory=list)
    varkw: bool = False
    varargs_name: str = "args"

    def fields(self) -> dict[str, Any]:
        return {"params": self.params, "varargs": self.varargs, "keywords": self.keywords,
                "varkw": self.varkw, "varargs_name": self.varargs_name}


def read_signature(fn: Any, skip: int) -> Signature:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return Signature(varargs=True, varkw=True)
    found = Signature()
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    for parameter in list(signature.parameters.values())[skip:]:
        has_default = parameter.default is not inspect.Parameter.empty
        param = Param(parameter.name, has_default, parameter.default if has_default else None)
        if parameter.kind == inspect.Parameter.VAR_POSITIONAL:
            found.varargs, found.varargs_name = True, parameter.name
        elif parameter.kind == inspect.Parameter.VAR_KEYWORD:
            found.varkw = True
        elif parameter.kind == inspect.Parameter.KEYWORD_ONLY:
            found.keywords.append(param)
        elif parameter.kind in positional:
            found.params.append(param)
    return found
