"""Custom ops (torch.library) as targets: found in a user's file, called as their schema says.

Two ways of writing an op are found: `@torch.library.custom_op("ns::name", ...)` (a
CustomOpDef bound at module level, named by that binding) and `torch.library.define` with
`impl` / `register_autograd` (named by a module-level binding to `torch.ops.ns.name`, else
by the op's name). Which names are ops is read from the file's source (`declared_ops`,
torch-free, so the planner can pick the checks that apply without importing anything),
and confirmed on the imported module.

The engine's inputs are one flat list: a `Tensor[]` argument takes LIST_LENGTH of them
(named `xs[0]`, `xs[1]`), and keyword-only arguments follow the positional ones, by name.
`OpTarget.pack` turns the flat list back into the op's (args, kwargs).
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from gradcheck_cli.results import Status
from gradcheck_cli.target.records import Layout, Param, Target

LIST_LENGTH = 2  # the tensors a Tensor[] argument gets from a flat list of inputs
NOT_DIFFERENTIABLE = ("not differentiable: no autograd formula registered "
                      "(torch.library.register_autograd)")


@dataclass(frozen=True)
class Slot:
    """One argument of the op's schema."""

    name: str
    type: str  # Tensor, Tensor?, Tensor[], int, float, bool, int[], float[], str, Scalar, ...
    keyword_only: bool = False
    has_default: bool = False
    default: Any = None

    @property
    def width(self) -> int:
        """How many entries of the flat input list it takes."""
        return LIST_LENGTH if self.type == "Tensor[]" else 1

    def param_names(self) -> list[str]:
        if self.type == "Tensor[]":
            return [f"{self.name}[{k}]" for k in range(LIST_LENGTH)]
        return [self.name]


@dataclass
class OpTarget(Target):
    """A custom op: `obj` is its CustomOpDef, or its OpOverload for a define-style op."""

    qualname: str = ""
    slots: tuple[Slot, ...] = ()
    differentiable: bool = True  # an autograd formula is registered
    kernel_name: str | None = None  # the name of the Python function that computes it
    fake_line: int | None = None

    @property
    def overload(self) -> Any:
        """The torch.ops OpOverload (what opcheck and FakeTensorMode dispatch)."""
        return getattr(self.obj, "_opoverload", self.obj)

    @property
    def fake_location(self) -> str:
        return f"{self.file}:{self.fake_line or self.forward_line or self.line}"

    def pack(self, args: tuple[Any, ...] | list[Any]) -> tuple[list[Any], dict[str, Any]]:
        """The flat inputs as the op's positional and keyword arguments. A slot left out
        at the end keeps its default; a Tensor[] slot given a list takes it whole."""
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
        index = 0
        for slot in self.slots:
            if index >= len(args):
                break
            if slot.type == "Tensor[]" and not isinstance(args[index], (list, tuple)):
                value: Any = list(args[index:index + slot.width])
                index += slot.width
            else:
                value = args[index]
                index += 1
            if slot.keyword_only:
                keywords[slot.name] = value
            else:
                positional.append(value)
        return positional, keywords

    def flat_layout(self, count: int) -> Layout:
        """How `pack` passes `count` flat inputs, as a Layout (for repro scripts)."""
        slots: list[tuple[str | None, int | None]] = []
        index = 0
        for slot in self.slots:
            if index >= count:
                break
            width = slot.width if slot.type == "Tensor[]" else None
            slots.append((slot.name if slot.keyword_only else None, width))
            index += width or 1
        return Layout(tuple(slots))

    def positional(self) -> list[Param]:
        return [Param(s.name, s.has_default, s.default) for s in self.slots
                if not s.keyword_only]

    def keyword_names(self) -> list[str] | None:
        return [slot.name for slot in self.slots]

    def call(self, *args: Any) -> Any:
        if self.layout is not None:  # the spec's own structure (kwargs, lists)
            return self.invoke(*self.layout.pack(args))
        positional, keywords = self.pack(args)
        return self.invoke(positional, keywords)

    def invoke(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        return self.obj(*args, **kwargs)

    def kernel_node(self) -> ast.FunctionDef | None:
        """The source of the function that computes the op (what input drafts read)."""
        try:
            tree = ast.parse(self.file.read_text(encoding="utf-8", errors="replace"))
        except (OSError, SyntaxError, ValueError):
            return None
        named = [n for n in ast.walk(tree)
                 if isinstance(n, ast.FunctionDef) and n.name == self.kernel_name]
        # Two functions of that name (a helper's): the one at the op's line.
        at_line = [n for n in named if self.forward_line in
                   (n.lineno, *(d.lineno for d in n.decorator_list))]
        found = at_line or named
        return found[0] if found else None


# --- what the source declares (no torch) ------------------------------------------------


def _callee(node: ast.AST) -> str:
    """The last name of what is called: `custom_op` for `torch.library.custom_op(...)`."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _first_string(call: ast.Call, keyword: str = "name") -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value,
                                                                             str):
        return call.args[0].value
    for item in call.keywords:
        if item.arg == keyword and isinstance(item.value, ast.Constant) \
                and isinstance(item.value.value, str):
            return item.value.value
    return None


def _custom_op_call(node: ast.AST) -> str | None:
    """The qualified name of a `custom_op("ns::name", ...)` call, else None."""
    if isinstance(node, ast.Call) and _callee(node.func) == "custom_op":
        name = _first_string(node)
        if name and "::" in name:
            return name
    return None


def _ops_path(node: ast.AST) -> str | None:
    """`ns::name` for an expression `torch.ops.ns.name` (or `.name.overload`)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.insert(0, node.id)
    if len(parts) >= 4 and parts[:2] == ["torch", "ops"]:
        return f"{parts[2]}::{parts[3]}"
    return None


def _define_style(tree: ast.Module) -> list[str]:
    """Qualified names defined with torch.library.define or a Library's define."""
    libraries: dict[str, str] = {}  # variable -> namespace, from `lib = Library("ns", ...)`
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                and _callee(node.value.func) == "Library":
            namespace = _first_string(node.value, "ns")
            for target in node.targets:
                if isinstance(target, ast.Name) and namespace:
                    libraries[target.id] = namespace
    found: list[str] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and _callee(node.func) == "define"):
            continue
        text = _first_string(node, "qualname") or _first_string(node, "schema")
        if not text:
            continue
        holder = node.func.value if isinstance(node.func, ast.Attribute) else None
        if "::" in text:
            found.append(text.split("(")[0].strip().split(".")[0])
        elif isinstance(holder, ast.Name) and holder.id in libraries:
            name = text.split("(")[0].strip().split(".")[0]
            found.append(f"{libraries[holder.id]}::{name}")
    return list(dict.fromkeys(found))


def declared_ops(path: Path) -> dict[str, str]:
    """The ops the file's source defines: {Python name: "ns::name"}, read without
    importing it (a decorated or assigned custom_op; a define-style op by its binding to
    torch.ops, else its op name)."""
    try:
        status = path.stat()
    except OSError:
        return {}
    return dict(_declared(path.resolve(), status.st_mtime_ns, status.st_size))


@functools.cache
def _declared(path: Path, mtime_ns: int, size: int) -> tuple[tuple[str, str], ...]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return ()
    found: dict[str, str] = {}
    bound: dict[str, str] = {}  # qualname -> the name bound to torch.ops.ns.name
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                qualname = _custom_op_call(decorator)
                if qualname:
                    found.setdefault(node.name, qualname)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
            qualname = _custom_op_call(value.func) if isinstance(value, ast.Call) else None
            if qualname is None and isinstance(value, ast.Call) and len(value.args) >= 2:
                qualname = _custom_op_call(value)
            if qualname:
                found.setdefault(name, qualname)
            elif _ops_path(value):
                bound.setdefault(_ops_path(value) or "", name)
    for qualname in _define_style(tree):
        if qualname not in found.values():
            found.setdefault(bound.get(qualname) or qualname.split("::")[1], qualname)
    return tuple(found.items())


def is_declared_op(path: Path, name: str) -> bool:
    """Whether `name` in the file at `path` is a custom op, as its source tells."""
    return name in declared_ops(path)


# --- the imported module's ops ------------------------------------------------------------


def find_ops(module: ModuleType, path: Path) -> list[OpTarget]:
    """Every custom op the module defines: the declared ones, and CustomOpDefs bound at its
    top level whose function is its own; in source order."""
    from torch._library.custom_ops import CustomOpDef

    names = list(declared_ops(path))
    for name, value in list(vars(module).items()):
        if isinstance(value, CustomOpDef) and name not in names \
                and getattr(value._init_fn, "__module__", None) == module.__name__:
            names.append(name)
    found = [t for t in (resolve_op(module, path, n) for n in names) if t is not None]
    found.sort(key=lambda t: t.line)
    return found


def resolve_op(module: ModuleType, path: Path, name: str) -> OpTarget | None:
    """The custom op called `name` in the module, or None when it is none."""
    from torch._library.custom_ops import CustomOpDef

    value = getattr(module, name, None)
    if isinstance(value, CustomOpDef):
        return describe_custom_op(name, value, path)
    qualname = declared_ops(path).get(name)
    if qualname is None:
        return None
    overload = _lookup(qualname)
    if overload is None:
        return None
    return _describe_defined(name, qualname, overload, module, path)


def _lookup(qualname: str) -> Any:
    """The op's OpOverload (its only overload, or `default`), or None if not registered."""
    import torch

    namespace, _, name = qualname.partition("::")
    try:
        packet = getattr(getattr(torch.ops, namespace), name)
        overloads = packet.overloads()
    except (AttributeError, RuntimeError):
        return None
    chosen = overloads[0] if len(overloads) == 1 else "default"
    return getattr(packet, chosen, None)


def slots_of(schema: Any) -> tuple[Slot, ...]:
    """The schema's arguments as slots, in order (keyword-only ones last, as schemas have)."""
    slots = []
    for argument in schema.arguments:
        has_default = bool(argument.has_default_value())
        slots.append(Slot(argument.name, type_name(argument.type), bool(argument.kwarg_only),
                          has_default, argument.default_value if has_default else None))
    return tuple(slots)


def type_name(jit_type: Any) -> str:
    """A schema type as the schema writes it (`Tensor[]`, `Tensor?`, `int`, `SymInt` as int)."""
    kind = jit_type.kind()
    if kind == "OptionalType":
        return type_name(jit_type.getElementType()) + "?"
    if kind == "ListType":
        return type_name(jit_type.getElementType()) + "[]"
    return {"TensorType": "Tensor", "IntType": "int", "SymIntType": "int", "FloatType": "float",
            "SymFloatType": "float", "BoolType": "bool", "SymBoolType": "bool",
            "NumberType": "Scalar", "StringType": "str"}.get(kind, str(jit_type))


def flat_params(slots: tuple[Slot, ...]) -> list[Param]:
    params = []
    for slot in slots:
        for name in slot.param_names():
            params.append(Param(name, slot.has_default, slot.default))
    return params


def _code_line(fn: Any) -> int | None:
    code = getattr(fn, "__code__", None)
    return code.co_firstlineno if code is not None else None


def _in_file(fn: Any, path: Path) -> int | None:
    """The line where `fn` starts if it is defined in the file at `path`."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    try:
        same = Path(code.co_filename).resolve() == path.resolve()
    except OSError:
        return None
    return code.co_firstlineno if same else None


def describe_custom_op(name: str, opdef: Any, path: Path) -> OpTarget:
    """An OpTarget for a CustomOpDef: lines of its function, backward and fake kernel."""
    kernel = opdef._init_fn
    line = _def_line(path, getattr(kernel, "__name__", name)) or _code_line(kernel) or 1
    return OpTarget(
        name=name, kind="custom_op", obj=opdef, file=path, line=line,
        params=flat_params(slots_of(opdef._opoverload._schema)), forward_line=line,
        backward_line=_in_file(opdef._backward_fn, path) or _in_file(
            opdef._setup_context_fn, path),
        qualname=opdef._qualname, slots=slots_of(opdef._opoverload._schema),
        differentiable=opdef._backward_fn is not None,
        kernel_name=getattr(kernel, "__name__", None),
        fake_line=_in_file(opdef._abstract_fn, path))


def _describe_defined(name: str, qualname: str, overload: Any, module: ModuleType,
                      path: Path) -> OpTarget:
    """An OpTarget for an op made with torch.library.define + impl + register_autograd."""
    import torch

    def has(key: str) -> bool:
        return bool(torch._C._dispatch_has_kernel_for_dispatch_key(qualname, key))

    registrations = _registrations(path).get(qualname, {})
    # `@torch.library.impl(...)` returns None: the kernel is known by its source only.
    backward = getattr(module, registrations.get("register_autograd", ""), None)
    line = int(registrations.get("line") or 1)
    slots = slots_of(overload._schema)
    return OpTarget(
        name=name, kind="custom_op", obj=overload, file=path, line=line,
        params=flat_params(slots), forward_line=registrations.get("impl_line") or line,
        backward_line=_in_file(backward, path), qualname=qualname, slots=slots,
        differentiable=any(has(k) for k in ("Autograd", "AutogradCPU", "AutogradCUDA",
                                            "CompositeImplicitAutograd")),
        kernel_name=registrations.get("impl"), fake_line=_fake_line(qualname, path))


def _fake_line(qualname: str, path: Path) -> int | None:
    """The line of the fake kernel registered for a define-style op, in this file."""
    from torch._library.simple_registry import singleton

    entry = singleton.get(qualname) or singleton.get(f"{qualname}.default")
    kernel = entry.fake_impl.kernel if entry is not None else None
    source = str(getattr(kernel, "source", "") or "")
    where, _, line = source.rpartition(":")
    try:
        same = bool(where) and Path(where).resolve() == path.resolve()
    except OSError:
        same = False
    return int(line) if same and line.isdigit() else None


def _def_line(path: Path, name: str) -> int | None:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node.lineno
    return None


def _registrations(path: Path) -> dict[str, dict[str, Any]]:
    """For each define-style op of the file: the line of its define, the names of the
    functions given to `impl` and `register_autograd`."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return {}
    found: dict[str, dict[str, Any]] = {}
    for node in tree.body:
        calls: list[tuple[ast.Call, str | None]] = []
        if isinstance(node, ast.FunctionDef):
            calls = [(d, node.name) for d in node.decorator_list if isinstance(d, ast.Call)]
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            calls = [(node.value, None)]
        for call, decorated in calls:
            what = _callee(call.func)
            qualname = _first_string(call, "qualname")
            if not qualname or "::" not in qualname:
                continue
            qualname = qualname.split("(")[0].strip()
            entry = found.setdefault(qualname, {})
            if what == "define":
                entry.setdefault("line", node.lineno)
            elif what in ("impl", "register_autograd"):
                given = call.args[1] if what == "register_autograd" and len(call.args) > 1 \
                    else None
                fn = decorated or (given.id if isinstance(given, ast.Name) else None)
                if fn:
                    entry.setdefault(what, fn)
                if decorated and what == "impl":
                    entry.setdefault("impl_line", node.lineno)
    return found


# --- problems known before a check runs ----------------------------------------------------


def replaced_by(target: OpTarget) -> Path | None:
    """The file whose definition of the same qualified name replaced this op in this
    process (torch keeps the last custom_op of a name), or None while it is the live one."""
    from torch._library.custom_ops import OPDEFS

    if not hasattr(target.obj, "_init_fn"):
        return None  # define-style: a second define raises instead of replacing
    current = OPDEFS.get(target.qualname)
    if current is None or current is target.obj:
        return None
    code = getattr(current._init_fn, "__code__", None)
    return Path(code.co_filename).resolve() if code is not None else target.file


def not_checkable(target: Target, check: str, explicit: bool
                  ) -> tuple[Status, str, str | None] | None:
    """The result of a check of a custom op known before it runs (status, message and
    location), or None: an op replaced by another definition of its name; a check that
    differentiates an op with no autograd formula (skipped, or an error when asked for)."""
    if not isinstance(target, OpTarget):
        return None
    other = replaced_by(target)
    if other is not None:
        twice = "later in the same file" if other == target.file.resolve() else f"in {other}"
        return (Status.ERROR,
                f"`{target.qualname}` is defined again {twice}, and torch keeps only the last "
                f"definition of an op name: checking {target.name} would check the other "
                "one. Give each op its own qualified name ('ns::name')", target.forward_location)
    if target.differentiable or check.startswith("opcheck") or check == "capabilities":
        return None
    what = f"`{target.qualname}` is {NOT_DIFFERENTIABLE}"
    if explicit:
        return Status.ERROR, f"{what}, but {check} was asked for", target.forward_location
    return Status.SKIPPED, what, None


def duplicate_registration(exc: BaseException) -> str | None:
    """Plain words for torch's error on defining an op name twice in one process."""
    try:
        text = str(exc)
    except Exception:  # the user's own exception may not even print
        return None
    match = re.search(r"register an operator \((\w+::[\w.]+)", text)
    if not match or "multiple times" not in text:
        return None
    return (f"the op `{match.group(1)}` is already registered in this process (by another "
            "file, or this one imported under a second name): torch.library op names are "
            "global. Give each file's ops their own qualified names ('ns::name')")
