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

from gradcheck_cli import __version__
from gradcheck_cli.results import CheckResult, Status
from gradcheck_cli.runner import RunOptions, Task

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

    def _hash(self, path: Path) -> str | None:
        if path not in self._hashes:
            self._hashes[path] = _digest(path)
        return self._hashes[path]

    def key(self, task: Task, options: RunOptions) -> str | None:
        source = task.spec if task.spec is not None else task.module
        content = self._hash(source.resolve())
        if content is None:
            return None
        material = {
            "format": FORMAT, "tool": __version__, "torch": self._torch,
            "source": str(source.resolve()), "content": content,
            "function": task.function, "case": task.case.name, "device": task.device,
            "check": task.check, "settings": repr(task.settings),
            "explicit": task.explicit_checks,
            "seed": options.seed, "atol": options.atol, "rtol": options.rtol, "eps": options.eps,
            "shape": list(options.shape) if task.inferred else None,
            "mode": options.mode, "max_memory": options.max_memory,
        }
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / f"v{FORMAT}" / key[:2] / f"{key}.json"

    def lookup(self, task: Task, options: RunOptions) -> CheckResult | None:
        key = self.key(task, options)
        if key is None:
            return None
        try:
            entry: dict[str, Any] = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        deps = entry.get("deps")
        if not isinstance(deps, dict) or not deps:
            return None
        for name, digest in deps.items():
            if self._hash(Path(name)) != digest:
                return None
        try:
            result = CheckResult.from_dict(entry["result"])
        except (KeyError, TypeError, ValueError):
            return None
        result.cached = True
        result.duration = 0.0
        return result

    def store(self, task: Task, options: RunOptions, result: CheckResult,
              deps: list[str]) -> None:
        if result.status is not Status.PASSED or not deps:
            return
        key = self.key(task, options)
        if key is None:
            return
        hashes = {name: self._hash(Path(name)) for name in deps}
        if any(v is None for v in hashes.values()):
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            gitignore = self.folder / ".gitignore"
            if not gitignore.exists():
                gitignore.write_text("# written by gradcheck-cli\n*\n", encoding="utf-8")
            # Write then rename: a reader never sees half a file, even with parallel runs.
            handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump({"result": result.to_dict(), "deps": hashes}, out)
            os.replace(temp, path)
        except OSError:
            pass  # a read-only or full disk must not fail the run: the cache is an optimisation
