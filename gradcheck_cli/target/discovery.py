"""Import a user's file by path and find the autograd Functions (and callables) it defines."""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from gradcheck_cli.engine.describe import summary
from gradcheck_cli.errors import ModuleLoadError
from gradcheck_cli.target.custom_op import (
    declared_ops,
    duplicate_registration,
    find_ops,
    replaced_by,
    resolve_op,
)
from gradcheck_cli.target.records import Target, read_signature

_loaded: dict[Path, ModuleType] = {}


def package_root(path: Path) -> tuple[Path, str]:
    """The folder to put on sys.path and the dotted module name of `path`.

    As pytest does: walk up while folders hold `__init__.py`, so relative imports work.
    """
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").exists() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    if path.name == "__init__.py":
        parts.pop()
    return folder, ".".join(parts)


def import_file(path: Path) -> ModuleType:
    """Import the user's Python file (once per process); errors say file, line and why."""
    path = path.resolve()
    if path in _loaded:
        return _loaded[path]
    unloadable = _file_problem(path)
    if unloadable is not None:
        raise unloadable
    already = _imported_as_is(path)
    if already is not None:
        # Imported before by its own name (the user's tests did `import ops`): running it
        # again would define its torch.library ops a second time, which torch refuses.
        _loaded[path] = already
        return already
    root, dotted = package_root(path)
    try:
        with from_source():
            module = (_import_in_package(path, root, dotted) if "." in dotted
                      else _import_unique(path))
    except SyntaxError as exc:
        raise _syntax_error(exc, path) from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit too: a module calling exit() is the user's bug
        file, line = user_frame(exc, path)
        twice = duplicate_registration(exc)
        raise ModuleLoadError(
            twice or f"importing the module raised {summary(exc, whole=True)}",
            file=file or str(path),
            line=line,
            hint=None if twice else "the module must import without side effects failing; "
            "run `python FILE` to see the full traceback",
        ) from exc
    _loaded[path] = module
    return module


def _imported_as_is(path: Path) -> ModuleType | None:
    """A module of this process already loaded from `path` (not by us), if any."""
    for name, module in list(sys.modules.items()):
        filename = getattr(module, "__file__", None)
        # The name first: resolving every loaded module's path would cost a syscall each.
        if name == "__main__" or not isinstance(filename, str) \
                or not filename.endswith(path.name):
            continue
        try:
            if Path(filename).resolve() == path:
                return module
        except (OSError, ValueError):
            continue
    return None


def reimport(path: Path) -> ModuleType:
    """Import the file again, afresh: its torch.library ops become the registered ones
    again after another file of this process redefined one of their names."""
    path = path.resolve()
    old = _loaded.pop(path, None)
    if old is not None:
        sys.modules.pop(old.__name__, None)
    return import_file(path)


def _file_problem(path: Path) -> ModuleLoadError | None:
    if not path.exists():
        return ModuleLoadError("module file not found", file=str(path),
                               hint="check the `module:` path (relative to the spec file)")
    if path.suffix != ".py":
        return ModuleLoadError("not a Python file", file=str(path))
    return None


def _syntax_error(exc: SyntaxError, path: Path) -> ModuleLoadError:
    return ModuleLoadError(
        f"syntax error: {exc.msg}",
        file=exc.filename or str(path),
        line=exc.lineno,
        column=exc.offset,
        hint="fix the syntax; `python -m py_compile FILE` shows the same error",
    )


def load_problem(path: Path) -> ModuleLoadError | None:
    """What keeps a file from importing that its source alone shows (missing, not Python,
    a syntax error), told without importing it; None when it may import."""
    path = path.resolve()
    problem = _file_problem(path)
    if problem is not None:
        return problem
    try:
        compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        return _syntax_error(exc, path)
    except (OSError, ValueError):
        return None
    return None


def _import_in_package(path: Path, root: Path, dotted: str) -> ModuleType:
    """Import a file that sits in a package, so that its relative imports work.

    As `dotted` when that name is free or already this file; when another folder's
    package of the same name got there first, below an alias package whose __path__ is
    this root, so both load side by side.
    """
    top = dotted.split(".")[0]
    taken = sys.modules.get(top)
    if taken is None or _within(taken, root):
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        module = importlib.import_module(dotted)
        if Path(getattr(module, "__file__", "") or "").resolve() == path:
            return module
    alias = "gradcheck_root_" + hashlib.sha1(str(root).encode()).hexdigest()[:10]
    if alias not in sys.modules:
        holder = ModuleType(alias)
        holder.__path__ = [str(root)]
        sys.modules[alias] = holder
    return importlib.import_module(f"{alias}.{dotted}")


def _within(module: ModuleType, root: Path) -> bool:
    locations = list(getattr(module, "__path__", []) or [])
    if getattr(module, "__file__", None):
        locations.append(str(Path(module.__file__ or "").parent))
    return any(Path(p).resolve().parent == root.resolve() for p in locations)


class _SourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles the user's file from its source every time: CPython trusts a .pyc whose
    size and mtime match, so an edit that keeps both would run stale bytecode."""

    def get_code(self, fullname: str) -> Any:
        return compile(self.get_data(self.path), self.path, "exec", dont_inherit=True)


@contextlib.contextmanager
def from_source() -> Iterator[None]:
    """Imports in this block (the user's file and whatever it imports) read and write no
    bytecode: `sys.pycache_prefix` points below os.devnull, a folder that cannot exist,
    so no temporary folder is left behind by a worker that never runs atexit."""
    saved = sys.pycache_prefix, sys.dont_write_bytecode
    sys.pycache_prefix = NO_PYCACHE
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.pycache_prefix, sys.dont_write_bytecode = saved


NO_PYCACHE = os.path.join(os.devnull, "gradcheck-cli-pycache")


def _import_unique(path: Path) -> ModuleType:
    # A name unique to the path: two `ops.py` in different folders must not collide,
    # and a user file named like a library (`test.py`, `functions.py`) must not shadow it.
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"gradcheck_user_{path.stem}_{digest}"
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path,
                                                  loader=_SourceLoader(name, str(path)))
    if spec is None or spec.loader is None:
        raise ModuleLoadError("cannot import this file", file=str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def user_frame(exc: BaseException, prefer: Path | None = None) -> tuple[str | None, int | None]:
    """The innermost traceback frame in the user's code: `prefer` first, else outside libraries."""
    frames = traceback.extract_tb(exc.__traceback__)
    if prefer is not None:
        preferred = prefer.resolve()
        for frame in reversed(frames):
            if Path(frame.filename).resolve() == preferred:
                return frame.filename, frame.lineno
    for frame in reversed(frames):
        name = frame.filename
        if "site-packages" in name or "/gradcheck_cli/" in name or name.startswith("<"):
            continue
        if "/lib/python" in name:
            continue
        return name, frame.lineno
    return None, None


def source_lines(path: Path) -> dict[str, dict[str, int]]:
    """Lines of top-level definitions and their methods: {name: {"": line, "forward": ...}}.

    Parsed once per version of the file (every task of a Function asks again).
    """
    try:
        status = path.stat()
    except OSError:
        return {}
    return _parse_lines(path, status.st_mtime_ns, status.st_size)


@functools.cache
def _parse_lines(path: Path, mtime_ns: int, size: int) -> dict[str, dict[str, int]]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return {}
    lines: dict[str, dict[str, int]] = {}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            entry = {"": node.lineno}
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        entry[item.name] = item.lineno
            lines[node.name] = entry
    return lines


def _is_once_differentiable(backward: Any) -> bool:
    import torch.autograd.function as autograd_function

    code = getattr(backward, "__code__", None)
    return (
        getattr(backward, "__wrapped__", None) is not None
        and code is not None
        and Path(code.co_filename).resolve() == Path(autograd_function.__file__).resolve()
        and code.co_name == "wrapper"
    )


def describe_function_class(cls: type, path: Path, lines: dict[str, dict[str, int]]) -> Target:
    """A Target for an autograd Function subclass, classifying its forward's style."""
    import torch

    own = lines.get(cls.__name__, {})
    raw_forward = inspect.getattr_static(cls, "forward")
    base_setup = torch.autograd.Function.setup_context
    new_style = getattr(cls, "setup_context", base_setup) is not base_setup
    kind = "function"
    if isinstance(raw_forward, (staticmethod, classmethod)):
        # Skip what precedes the inputs: `cls` for a classmethod, `ctx` unless setup_context
        # takes it instead (new-style Functions).
        leading = int(isinstance(raw_forward, classmethod)) + int(not new_style)
        signature = read_signature(raw_forward.__func__, leading)
    else:
        kind = "legacy"
        signature = read_signature(raw_forward, 1)
    code = getattr(getattr(cls, "forward", None), "__code__", None)
    forward_line = own.get("forward") or (code.co_firstlineno if code else None)
    backward = getattr(cls, "backward", None)
    bcode = getattr(getattr(backward, "__wrapped__", backward), "__code__", None)
    backward_line = own.get("backward") or (bcode.co_firstlineno if bcode else None)
    return Target(
        name=cls.__name__,
        kind=kind,
        obj=cls,
        file=path,
        line=own.get("", forward_line or 1),
        **signature.fields(),
        once_differentiable=_is_once_differentiable(backward),
        forward_line=forward_line,
        backward_line=backward_line,
    )


def _defines_forward(cls: type) -> bool:

    for klass in cls.__mro__:
        if "forward" in vars(klass):
            return not klass.__module__.startswith("torch.")
    return False


def find_functions(module: ModuleType, path: Path) -> list[Target]:
    """Every autograd Function subclass defined in the module's own file, in source order."""
    import torch

    lines = source_lines(path)
    found = []
    for value in list(vars(module).values()):
        if (
            isinstance(value, type)
            and issubclass(value, torch.autograd.Function)
            and value.__module__ == module.__name__
            and _defines_forward(value)
        ):
            found.append(describe_function_class(value, path, lines))
    found.sort(key=lambda t: t.line)
    return found


def find_targets(module: ModuleType, path: Path, plain_functions: bool = True) -> list[Target]:
    """What a bare .py offers to check, in source order: its autograd Functions and custom
    ops, and the nn.Modules (and, unless not `plain_functions`, the public plain functions)
    defined in it that use one of them (directly, or through another of its modules or
    functions). Code built on torch's own ops alone has nothing hand-written to check."""
    import torch

    functions: list[Target] = [*find_functions(module, path), *find_ops(module, path)]
    users = _users_of(path, {t.name for t in functions})
    found = list(functions)
    taken = {t.name for t in functions}
    for name, value in list(vars(module).items()):
        if name not in users or name.startswith("_") or name in taken:
            continue
        if getattr(value, "__module__", None) != module.__name__:
            continue
        is_module = isinstance(value, type) and issubclass(value, torch.nn.Module)
        is_plain = plain_functions and callable(value) and not isinstance(value, type)
        if is_module or is_plain:
            target = resolve(module, path, name)
            if target is not None:
                found.append(target)
    found.sort(key=lambda t: t.line)
    return found


def _users_of(path: Path, functions: set[str]) -> set[str]:
    """Top-level classes and functions of the file whose code refers to one of `functions`
    or, in turn, to such a user (a fixed point over the file's own names)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return set()
    refers: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            # Not its decorators: `@mysin.register_fake` makes a kernel of the op, not a user.
            decorators = {id(n) for d in node.decorator_list for n in ast.walk(d)}
            refers[node.name] = {n.id for n in ast.walk(node)
                                 if isinstance(n, ast.Name) and id(n) not in decorators}
    users: set[str] = set()
    known = set(functions)
    while True:
        new = {name for name, names in refers.items()
               if name not in known and names & known}
        if not new:
            return users
        users |= new
        known |= new


def resolve(module: ModuleType, path: Path, name: str) -> Target | None:
    """The Function, custom op or plain callable called `name` in the module, or None."""
    import torch

    op = resolve_op(module, path, name)
    other = replaced_by(op) if op is not None else None
    if op is not None and other is not None and other != path.resolve():
        # Another file of this process redefined its name: import this one afresh, so
        # that its op is the one registered again (else the other file's would be checked).
        op = resolve_op(reimport(path), path, name) or op
    if op is not None:
        return op
    value = getattr(module, name, None)
    if value is None:
        return None
    lines = source_lines(path)
    if isinstance(value, type) and issubclass(value, torch.autograd.Function):
        return describe_function_class(value, path, lines)
    if isinstance(value, type) and issubclass(value, torch.nn.Module):
        own = lines.get(name, {})
        return Target(name=name, kind="module", obj=value, file=path,
                      line=own.get("", 1), **read_signature(value.forward, 1).fields(),
                      forward_line=own.get("forward"), backward_line=own.get("forward"))
    if callable(value):
        signature = read_signature(value, 0)
        line = lines.get(name, {}).get("")
        if line is None:
            code = getattr(value, "__code__", None)
            line = code.co_firstlineno if code else 1
        return Target(name=name, kind="callable", obj=value, file=path, line=line,
                      **signature.fields())
    return None


def candidate_names(module: ModuleType) -> list[str]:
    """Names a spec could mean: public classes, functions and custom ops of the module."""
    filename = getattr(module, "__file__", None)
    ops = list(declared_ops(Path(filename))) if filename else []
    return [*ops, *(
        name for name, value in vars(module).items()
        if not name.startswith("_") and callable(value) and name not in ops
        and getattr(value, "__module__", None) == module.__name__
    )]


def names_defined(path: Path) -> set[str] | None:
    """The names a file defines at its top level (classes, functions, assignments, imports,
    inside top-level if/try/with blocks too), read from its source without importing it;
    None when the source cannot tell (a syntax error, `from x import *`, `globals()`)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return None
    names: set[str] = set()
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    pending.extend(child.body if isinstance(child, ast.ExceptHandler)
                                   else [child])
    if any(isinstance(n, ast.Name) and n.id in ("globals", "setattr", "exec")
           for n in ast.walk(tree)):
        return None
    return names | set(declared_ops(path))  # a define-style op is named by its op name
