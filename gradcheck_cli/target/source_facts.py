"""What a Function's source shows it uses (ctx.needs_input_grad, a jvp), read without importing.

The planner turns checks on by default from these facts (`CheckKind.default_when`): the
sweep of frozen inputs for a Function whose backward reads `ctx.needs_input_grad`, the
forward-mode check for one that defines `jvp` (or saves for it with
`ctx.save_for_forward`). Reading the source keeps planning torch-free; a class's facts
include those of its base classes defined in the same file.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

# Fact names, as `CheckKind.default_when` spells them.
NEEDS_INPUT_GRAD = "needs_input_grad"
JVP = "jvp"
VMAP = "vmap"  # declares vmap support: `generate_vmap_rule = True` or a `vmap` staticmethod


def source_facts(path: Path, name: str) -> frozenset[str]:
    """The facts the class `name` of the file at `path` shows (empty for anything else)."""
    try:
        status = path.stat()
    except OSError:
        return frozenset()
    return _classes(path.resolve(), status.st_mtime_ns, status.st_size).get(name, frozenset())


@functools.cache
def _classes(path: Path, mtime_ns: int, size: int) -> dict[str, frozenset[str]]:
    """{class name: facts} for the file's top-level classes, bases' facts included."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return {}
    own: dict[str, set[str]] = {}
    bases: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            own[node.name] = _facts_of(node)
            bases[node.name] = [b.id for b in node.bases if isinstance(b, ast.Name)]

    def gathered(name: str, seen: frozenset[str]) -> set[str]:
        found = set(own.get(name, ()))
        for base in bases.get(name, ()):
            if base in own and base not in seen:
                found |= gathered(base, seen | {base})
        return found

    return {name: frozenset(gathered(name, frozenset({name}))) for name in own}


def _facts_of(node: ast.ClassDef) -> set[str]:
    found: set[str] = set()
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == "jvp":
            found.add(JVP)
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == "vmap":
            found.add(VMAP)
        if isinstance(item, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "generate_vmap_rule" for t in item.targets) \
                and isinstance(item.value, ast.Constant) and item.value.value is True:
            found.add(VMAP)
    for child in ast.walk(node):
        if isinstance(child, ast.Attribute):
            if child.attr == "needs_input_grad":
                found.add(NEEDS_INPUT_GRAD)
            elif child.attr == "save_for_forward":
                found.add(JVP)
    return found
