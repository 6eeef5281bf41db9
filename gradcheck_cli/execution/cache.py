"""Cache of passed results, keyed by everything that can change them; JSON, never pickle.

A key covers the tool and torch versions, the spec file's content (or the module's, for
inferred inputs), the Function, case, device, check, seed, tolerances and mode. An entry
also records the user's files the module imported (their SHA-256), and is reused only
while they are unchanged. Only passes are stored: failures are always re-run.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from gradcheck_cli.execution.tasks import Task
from gradcheck_cli.results import CheckResult, Status
from gradcheck_cli.settings import RunOptions
from gradcheck_cli.specs.collect import display
from gradcheck_cli.version import __version__

FORMAT = 1


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _torch_version() -> str:
    # From the installed metadata: reading it does not import torch.
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "none"


class Cache:
    """Passed results under `folder` (one small JSON file per key)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._torch = _torch_version()
        self._hashes: dict[Path, str | None] = {}
        self._ignored = False  # the folder's .gitignore is known to exist

    def _hash(self, path: Path) -> str | None:
        if path not in self._hashes:
            self._hashes[path] = _digest(path)
        return self._hashes[path]

    def _key(self, name: str, path: Path, material: dict[str, Any]) -> str | None:
        """The key of `material` and of `path`'s content (stored under `name`), with the
        versions every key carries; None when the file cannot be read."""
        resolved = path.resolve()
        content = self._hash(resolved)
        if content is None:
            return None
        material = {"format": FORMAT, "tool": __version__, "torch": self._torch,
                    name: str(resolved), "content": content, **material}
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()

    def key(self, task: Task, options: RunOptions) -> str | None:
        source = task.spec if task.spec is not None else task.module
        return self._key("source", source, {
            "function": task.function, "case": task.case.name, "device": task.device,
            "check": task.check, "settings": repr(task.settings),
            "explicit": task.explicit_checks,
            "seed": options.seed, "atol": options.atol, "rtol": options.rtol, "eps": options.eps,
            "shape": list(options.shape) if task.inferred else None,
            "mode": options.mode, "max_memory": options.max_memory,
        })

    def _path(self, key: str) -> Path:
        return self.folder / f"v{FORMAT}" / key[:2] / f"{key}.json"

    def _entry(self, key: str) -> dict[str, Any] | None:
        """The stored entry, if it is readable and every file it depends on is unchanged."""
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict):
            return None
        deps = entry.get("deps")
        if not isinstance(deps, dict) or not deps:
            return None
        for name, digest in deps.items():
            if self._hash(Path(name)) != digest:
                return None
        return entry

    def lookup(self, task: Task, options: RunOptions) -> CheckResult | None:
        key = self.key(task, options)
        entry = self._entry(key) if key is not None else None
        if entry is None:
            return None
        try:
            result = CheckResult.from_dict(entry["result"])
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        # Paths as this run shows them (the storing run may have started elsewhere).
        result.module = display(task.module)
        result.spec = display(task.spec) if task.spec else None
        where = entry.get("location")
        if isinstance(where, list) and len(where) == 2:
            result.location = f"{display(Path(where[0]))}:{where[1]}"
        result.cached = True
        result.duration = 0.0
        return result

    def _discovery_key(self, module: Path) -> str | None:
        return self._key("discover", module, {})

    def lookup_discovery(self, module: Path) -> list[str] | None:
        """The Functions found in a bare .py before, while it and its imports are unchanged."""
        key = self._discovery_key(module)
        entry = self._entry(key) if key is not None else None
        names = entry.get("names") if entry is not None else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return None
        return names

    def store_discovery(self, module: Path, names: list[str], deps: list[str]) -> None:
        key = self._discovery_key(module)
        if key is not None and deps:
            self._write(key, {"names": names}, deps)

    def store(self, task: Task, options: RunOptions, result: CheckResult,
              deps: list[str]) -> None:
        if result.status is not Status.PASSED or not deps:
            return
        key = self.key(task, options)
        if key is None:
            return
        stored: dict[str, Any] = {"result": result.to_dict()}
        if result.location:
            path, _, line = result.location.rpartition(":")
            if path and line.isdigit():
                stored["location"] = [str(Path(path).resolve()), int(line)]
        self._write(key, stored, deps)

    def _write(self, key: str, content: dict[str, Any], deps: list[str]) -> None:
        hashes = {name: self._hash(Path(name)) for name in deps}
        if any(v is None for v in hashes.values()):
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not self._ignored:
                gitignore = self.folder / ".gitignore"
                if not gitignore.exists():
                    gitignore.write_text("# written by gradcheck-cli\n*\n", encoding="utf-8")
                self._ignored = True
            # Write then rename: a reader never sees half a file, even with parallel runs.
            handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump({**content, "deps": hashes}, out)
            os.replace(temp, path)
        except OSError:
            pass  # a read-only or full disk must not fail the run: the cache is an optimisation
