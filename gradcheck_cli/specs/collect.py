"""Command-line paths -> what to check: spec files, and bare Python files to infer inputs for."""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from gradcheck_cli.errors import UsageError, did_you_mean

SPEC_SUFFIXES = (".yaml", ".yml")
SKIP_DIRS = {"__pycache__", "node_modules", "venv", "site-packages"}
_SPEC_KEY = re.compile(r"""^\s*["']?(module|functions|defaults)["']?\s*:""", re.MULTILINE)
# An autograd Function, or a custom op (torch.library.custom_op, define, Library).
_FUNCTION_HINT = re.compile(r"\bFunction\b|autograd|\blibrary\b|custom_op")


@dataclass(frozen=True)
class Item:
    """One thing to check: a spec file, or a Python file whose inputs are inferred."""

    path: Path
    kind: str  # "spec" | "module"


def display(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when below it."""
    try:
        return _display(path, os.getcwd())
    except OSError:  # the working directory is gone
        return str(path)


@functools.lru_cache(maxsize=4096)
def _display(path: Path, cwd: str) -> str:
    """`display` in `cwd` (cached: every result of a spec shows the same two or three paths,
    and each resolve costs a stat per folder)."""
    try:
        return str(path.resolve().relative_to(Path(cwd).resolve()))
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop
        return str(path)


def looks_like_spec(path: Path) -> bool:
    """A YAML file that is (or tries to be) a gradcheck spec, unlike a CI workflow.

    A mapping with (or with a misspelling of) `module`, `functions` or `defaults` is one;
    a file that does not parse counts too when its text mentions those keys, so its
    syntax error gets reported.
    """
    from gradcheck_cli.errors import SpecError
    from gradcheck_cli.specs import yamlsource
    from gradcheck_cli.specs.specfile import TOP_KEYS

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return bool(_SPEC_KEY.search(path.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return True
    try:
        # The parser that load_spec uses (it keeps the document): parsed once, not twice.
        doc = yamlsource.load(text, str(path))
    except SpecError:
        return bool(_SPEC_KEY.search(text))
    if not isinstance(doc, dict):
        return False
    return any(key in TOP_KEYS or did_you_mean(str(key), TOP_KEYS) for key in doc)


def might_define_functions(path: Path) -> bool:
    """A .py worth importing: it mentions autograd, Function or torch.library. Others are
    never executed."""
    try:
        return bool(_FUNCTION_HINT.search(path.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return True


def specs_referencing(folder: Path, recursive: bool = True) -> dict[Path, list[Path]]:
    """module file -> the specs in `folder` (and below it, unless not `recursive`) whose
    `module:` names it."""
    from gradcheck_cli.specs.specfile import load_spec

    found: dict[Path, list[Path]] = {}
    for spec_path in _walk_specs(folder, recursive):
        spec = load_spec(spec_path)
        if spec.module is not None:
            found.setdefault(_resolved(spec.module), []).append(spec_path)
    return found


def collect(paths: list[str], ignore: tuple[str, ...] = (),
            specs_folder: Path | None = None) -> tuple[list[Item], list[str]]:
    """Expand files and folders (all specs below a folder), keeping the user's order.

    A .py file stands for the specs that name it as their `module:`, beside it or in
    `specs_folder` (where `gradcheck-cli init` writes them); with none, its Functions are
    found and their inputs inferred. `ignore` holds files or folders to
    leave out, as pytest's --ignore. Returns the items and notes for the user.
    """
    items: list[Item] = []
    notes: list[str] = []
    seen: set[Path] = set()
    ignored = [_resolved(Path(p)) for p in ignore]
    referencing: dict[Path, list[Path]] | None = None

    def add(path: Path, kind: str) -> None:
        key = _resolved(path)
        if any(key == i or i in key.parents for i in ignored) or key in seen:
            return
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
            if looks_like_spec(path):
                add(path, "spec")
            else:
                notes.append(f"{raw}: not a gradcheck spec (no `module:`/`functions:`), skipped")
        elif path.suffix == ".py":
            if referencing is None:
                referencing = specs_referencing(specs_folder) if specs_folder else {}
            beside = specs_referencing(path.parent, recursive=False)
            specs = list(dict.fromkeys([*beside.get(_resolved(path), []),
                                        *referencing.get(_resolved(path), [])]))
            if specs:
                for spec in specs:
                    add(spec, "spec")
            elif might_define_functions(path):
                add(path, "module")
            else:
                notes.append(f"{raw}: no autograd Function in it, nothing to check")
        else:
            raise UsageError(f"not a .py file, a .yaml spec or a folder: {raw}")
    return items, notes


def _resolved(path: Path) -> Path:
    """`path` with symlinks followed as far as they go: a symlink loop stays a path (the
    spec that names it gets the error), it does not end the run."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def _walk_specs(folder: Path, recursive: bool = True) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")) \
            if recursive else []
        for name in sorted(files):
            if name.endswith(SPEC_SUFFIXES) and looks_like_spec(Path(root) / name):
                found.append(Path(root) / name)
    return found
