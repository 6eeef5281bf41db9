"""Project defaults from `[tool.gradcheck-cli]` in the nearest pyproject.toml that has one."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from gradcheck_cli.errors import did_you_mean

TABLE = "gradcheck-cli"
FILENAME = "pyproject.toml"

_Check = Callable[[Any], bool]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


# key -> (what its value must be, in words; the test a value must pass)
KEYS: dict[str, tuple[str, _Check]] = {
    "specs": ("a string (a folder)", lambda v: isinstance(v, str)),
    "devices": ("a list of strings", _is_str_list),
    "checks": ("a list of strings", _is_str_list),
    "seed": ("an integer", _is_int),
    "atol": ("a number", _is_number),
    "rtol": ("a number", _is_number),
    "eps": ("a number", _is_number),
    "timeout": ("a number of seconds", _is_number),
    "jobs": ('an integer or "auto"', lambda v: _is_int(v) or v == "auto"),
    "cache": ("true or false", lambda v: isinstance(v, bool)),
    "cache_dir": ("a string (a folder)", lambda v: isinstance(v, str)),
    "format": ("a string", lambda v: isinstance(v, str)),
    "shard": ('a string "I/N" (e.g. "2/4")', lambda v: isinstance(v, str)),
}
PATH_KEYS = ("specs", "cache_dir")
FLOAT_KEYS = ("atol", "rtol", "eps", "timeout")


@dataclass(frozen=True)
class ProjectConfig:
    """The file read (None when none was found), its valid values, and what was wrong in it."""

    path: Path | None
    values: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _toml_loader() -> Callable[[BinaryIO], dict[str, Any]] | None:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.load
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli
        except ImportError:
            return None
        return tomli.load


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def validate(table: dict[str, Any], path: Path) -> ProjectConfig:
    """Keep the known, well-typed keys of a `[tool.gradcheck-cli]` table; warn about the rest."""
    values: dict[str, Any] = {}
    warnings: list[str] = []
    where = f"{path}: [tool.{TABLE}]"
    for key, value in table.items():
        if key not in KEYS:
            hint = did_you_mean(key, KEYS) or f"valid keys: {', '.join(KEYS)}"
            warnings.append(f"{where}: unknown key `{key}` ignored; {hint}")
            continue
        expected, ok = KEYS[key]
        if not ok(value):
            warnings.append(f"{where}: `{key}` must be {expected}, not {_type_name(value)} "
                            f"({value!r}); ignored")
            continue
        if key in FLOAT_KEYS:
            value = float(value)
        elif key in PATH_KEYS:
            value = os.path.normpath(path.parent / Path(value).expanduser())
        values[key] = value
    return ProjectConfig(path, values, warnings)


def read(path: Path) -> ProjectConfig | None:
    """The config in one pyproject.toml; None when it has no `[tool.gradcheck-cli]` table."""
    loader = _toml_loader()
    if loader is None:
        try:
            mentioned = f"[tool.{TABLE}" in path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        if not mentioned:
            return None
        return ProjectConfig(path, {}, [f"{path}: cannot read [tool.{TABLE}] on Python < 3.11 "
                                        "without `tomli`; `pip install tomli` or use options"])
    try:
        with path.open("rb") as stream:
            doc = loader(stream)
    except OSError as exc:
        return ProjectConfig(path, {}, [f"{path}: cannot read it ({exc.strerror}); "
                                        "project config skipped"])
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
        return ProjectConfig(path, {}, [f"{path}: not valid TOML ({exc}); "
                                        "project config skipped"])
    tool = doc.get("tool")
    if not isinstance(tool, dict) or TABLE not in tool:
        return None
    table = tool[TABLE]
    if not isinstance(table, dict):
        return ProjectConfig(path, {}, [f"{path}: `tool.{TABLE}` must be a table, not "
                                        f"{_type_name(table)}; ignored"])
    return validate(table, path)


def find_config(start: str | os.PathLike[str] | None = None) -> ProjectConfig:
    """Walk up from `start` (default: the working directory) to the first pyproject.toml with
    a `[tool.gradcheck-cli]` table (or one that cannot be read) and return its config.

    pyproject.toml files without the table are passed over, as pytest and ruff do, so a
    monorepo's root config still applies below a sub-package's own pyproject.toml.
    """
    here = Path(start if start is not None else os.getcwd()).absolute()
    if here.is_file():
        here = here.parent
    for folder in (here, *here.parents):
        candidate = folder / FILENAME
        if candidate.is_file():
            found = read(candidate)
            if found is not None:
                return found
    return ProjectConfig(None, {}, [])


def project_root() -> Path:
    """The nearest folder above the working directory holding pyproject.toml or .git."""
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
            return folder
    return here
