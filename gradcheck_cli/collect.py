"""Command-line paths -> what to check: spec files and bare Python files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gradcheck_cli.errors import UsageError

SPEC_SUFFIXES = (".yaml", ".yml")
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".gradcheck_cache", "node_modules",
             ".venv", "venv", ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


@dataclass(frozen=True)
class Item:
    """One thing to check: a spec file, or a Python file whose inputs are inferred."""

    path: Path
    kind: str  # "spec" | "module"


def display(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def collect(paths: list[str], ignore: tuple[str, ...] = ()) -> list[Item]:
    """Expand files and folders (all specs below a folder), keeping the user's order.

    `ignore` holds files or folders to leave out, as pytest's --ignore.
    """
    items: list[Item] = []
    seen: set[Path] = set()
    ignored = [Path(p).resolve() for p in ignore]

    def add(path: Path, kind: str) -> None:
        key = path.resolve()
        if any(key == i or i in key.parents for i in ignored):
            return
        if key not in seen:
            seen.add(key)
            items.append(Item(path, kind))

    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UsageError(f"no such file or folder: {raw}",
                             hint="give .py files, .yaml specs or folders holding specs")
        if path.is_dir():
            for found in _walk_specs(path):
                add(found, "spec")
        elif path.suffix in SPEC_SUFFIXES:
            add(path, "spec")
        elif path.suffix == ".py":
            add(path, "module")
        else:
            raise UsageError(f"not a .py file, a .yaml spec or a folder: {raw}")
    return items


def _walk_specs(folder: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(SPEC_SUFFIXES):
                found.append(Path(root) / name)
    return found
