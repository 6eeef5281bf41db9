"""A Python object as a target: what the API's `check(obj, ...)` is handed, not found in a file.

An autograd Function subclass, a custom op (a CustomOpDef, an OpOverload or its packet), an
nn.Module (a class or an instance) or any callable becomes the same Target a file's
discovery would give, with the file and lines of its source where Python knows them.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from gradcheck_cli.target.custom_op import OpTarget, describe_custom_op, flat_params, slots_of
from gradcheck_cli.target.discovery import describe_function_class, source_lines
from gradcheck_cli.target.records import Target, read_signature

UNKNOWN_FILE = Path("<unknown>")


def source_file(obj: Any) -> Path:
    """The file `obj` is defined in, or `<unknown>` (a builtin, a lambda typed at a prompt)."""
    for candidate in (obj, getattr(obj, "_init_fn", None), type(obj)):
        try:
            found = inspect.getsourcefile(candidate) if candidate is not None else None
        except (TypeError, OSError):
            found = None
        if found:
            return Path(found).resolve()
    return UNKNOWN_FILE


def _name(obj: Any) -> str:
    for attribute in ("__qualname__", "__name__"):
        value = getattr(obj, attribute, None)
        if isinstance(value, str) and value:
            return value
    return type(obj).__name__


def _line(obj: Any) -> int:
    try:
        return inspect.getsourcelines(obj)[1] or 1
    except (TypeError, OSError):
        return 1


def describe_overload(obj: Any) -> OpTarget:
    """An OpTarget for a torch.ops op (`torch.ops.mylib.foo` or its `.default`), however
    it was defined; its source lines are unknown."""
    import torch

    overload = obj.default if isinstance(obj, torch._ops.OpOverloadPacket) else obj
    schema = overload._schema
    qualname = schema.name
    slots = slots_of(schema)
    differentiable = any(
        torch._C._dispatch_has_kernel_for_dispatch_key(qualname, key)
        for key in ("Autograd", "AutogradCPU", "AutogradCUDA", "CompositeImplicitAutograd"))
    return OpTarget(name=qualname.partition("::")[2], kind="custom_op", obj=overload,
                    file=UNKNOWN_FILE, line=1, params=flat_params(slots), qualname=qualname,
                    slots=slots, differentiable=differentiable)


def target_of(obj: Any) -> Target:
    """The Target for `obj`; a TypeError for what cannot be called at all."""
    import torch
    from torch._library.custom_ops import CustomOpDef

    path = source_file(obj)
    if isinstance(obj, CustomOpDef):
        return describe_custom_op(obj._name, obj, path)
    if isinstance(obj, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
        return describe_overload(obj)
    if isinstance(obj, type) and issubclass(obj, torch.autograd.Function):
        lines = source_lines(path) if path != UNKNOWN_FILE else {}
        return describe_function_class(obj, path, lines)
    if isinstance(obj, torch.nn.Module) or (isinstance(obj, type)
                                           and issubclass(obj, torch.nn.Module)):
        cls = obj if isinstance(obj, type) else type(obj)
        line = _line(cls)
        forward = getattr(cls, "forward", None)
        forward_line = _line(forward) if forward is not None else line
        return Target(name=cls.__name__, kind="module", obj=obj, file=path, line=line,
                      forward_line=forward_line, backward_line=forward_line,
                      **read_signature(cls.forward, 1).fields())
    if not callable(obj):
        raise TypeError(f"cannot check {type(obj).__name__} object: give an autograd "
                        "Function subclass, a custom op, an nn.Module or a callable")
    return Target(name=_name(obj), kind="callable", obj=obj, file=path, line=_line(obj),
                  **read_signature(obj, 0).fields())


__all__ = ["OpTarget", "source_file", "target_of"]
