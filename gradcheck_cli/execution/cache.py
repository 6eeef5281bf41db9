"""Cache of passed (and deterministically skipped) results: honest keys, signed JSON entries.

A key covers the tool, torch and Python versions, the machine's shape (cores, memory), the
environment variables torch and the tool read, the spec file's content (or the module's,
for inferred inputs), the Function, case, device, check and every option that can change a
verdict. An entry also records the user's files the check imported (their SHA-256) and is
reused only while they are unchanged. Entries are signed with a key kept in the user's
cache home (never in the project), so a planted or restored `.gradcheck_cache/` cannot
pass for ours; anything unreadable, unsigned or of the wrong shape is ignored. Failures and
errors are never stored: they always run again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

from gradcheck_cli.execution import dependencies
from gradcheck_cli.execution.dependencies import (
    ENV_DEP,
    ENV_NAMES,
    ENV_PREFIXES,
    env_digest,
)
from gradcheck_cli.execution.tasks import Task
from gradcheck_cli.results import CheckResult, Status
from gradcheck_cli.settings import RunOptions
from gradcheck_cli.specs.collect import display
from gradcheck_cli.version import __version__

FORMAT = 2

# A skip whose reason follows from the module and the machine alone: worth keeping.
DETERMINISTIC_SKIPS = ("is decorated @once_differentiable", "CUDA not available")

KEY_BYTES = 32


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None


def _torch_version() -> str:
    """torch's installed version, without importing torch: the name of its `.dist-info`
    folder (pip writes the version there, `torch-2.13.0+cpu.dist-info`), first on
    `sys.path` as importlib.metadata searches; where a torch egg comes first (a
    development build, its version only in PKG-INFO) or none is found, importlib.metadata's
    answer, which costs a cached run some 20 ms of imports."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            lowered = name.lower()
            if lowered.endswith(".egg-info") and \
                    lowered[:-len(".egg-info")].split("-")[0] == "torch":
                break  # an egg (a development build): its version is in PKG-INFO
            if lowered.endswith(".dist-info"):
                dist, _, version = name[:-len(".dist-info")].rpartition("-")
                if dist.lower().replace("-", "_").replace(".", "_") == "torch" and version:
                    return version
        else:
            continue
        break
    from importlib import metadata

    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "none"


def platform_name() -> str:
    """The operating system, its release, the processor and the C library, as
    `platform.platform()` tells them (which reads the Python binary for its libc: some
    10 ms of a cached run)."""
    try:
        system = os.uname()
    except AttributeError:  # not POSIX
        import platform

        return platform.platform()
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError, AttributeError):  # not glibc
        libc = ""
    return "-".join([system.sysname, system.release, system.machine, libc])


def environment() -> dict[str, str]:
    """The environment variables a verdict may depend on."""
    return {k: v for k, v in sorted(os.environ.items())
            if k.startswith(ENV_PREFIXES) or k in ENV_NAMES}


def _total_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def machine() -> dict[str, Any]:
    """What auto mode's exact/probe decision and the CUDA answer depend on besides the spec."""
    nodes = sorted(p.name for p in Path("/dev").glob("nvidia*")) if sys.platform.startswith(
        "linux") else None
    return {"python": sys.version, "platform": platform_name(), "cpus": os.cpu_count(),
            "memory": _total_memory(), "nvidia": nodes}


def cacheable(result: CheckResult) -> bool:
    """Whether `result` may be stored: a pass, or a skip whose reason cannot change while
    the files and the machine stay the same (the worker sends deps for these)."""
    if result.status is Status.PASSED:
        return True
    return result.status is Status.SKIPPED and any(
        reason in result.message for reason in DETERMINISTIC_SKIPS)




def key_home() -> Path:
    """Where the signing key lives: the user's cache home, outside any project."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gradcheck-cli"


def _read_secret(path: Path) -> bytes | None:
    """The key, if it is a regular file of ours that nobody else can read or write."""
    try:
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(handle, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
            return None
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            return None
        secret = file.read(KEY_BYTES + 1)
    return secret if len(secret) == KEY_BYTES else None


def signing_key() -> bytes | None:
    """The user's cache key, created (0600) on first use; None when it cannot be had, and
    then the cache neither trusts nor writes anything."""
    path = key_home() / "key"
    secret = _read_secret(path)
    if secret is not None:
        return secret
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".key.")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(secrets.token_bytes(KEY_BYTES))
            os.chmod(temp, 0o600)
            # A hard link fails if another run made the key first: then that one is used.
            os.link(temp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temp)
    except OSError:
        return None
    return _read_secret(path)


def _valid_result(data: Any, task: Task) -> CheckResult | None:
    """The stored result, if it has the shape of one and is about this very task."""
    if not isinstance(data, dict):
        return None
    try:
        result = CheckResult.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if not cacheable(result):
        return None
    if (result.function, result.case, result.device, result.check) != (
            task.function, task.case.name, task.device, task.check):
        return None
    text = (result.message, result.mode, result.mode_reason)
    if not all(isinstance(t, str) for t in text) or not isinstance(result.inputs, list):
        return None
    if result.seed is not None and not isinstance(result.seed, int):
        return None
    return result


class Cache:
    """Results under `folder` (one small signed JSON file per key)."""

    def __init__(self, folder: Path, secret: bytes | None = None) -> None:
        self.folder = folder
        dependencies.ignore_folders(folder, key_home())
        self._secret = secret if secret is not None else signing_key()
        self._fixed = {"format": FORMAT, "tool": __version__, "torch": _torch_version(),
                       "env": environment(), "machine": machine()}
        self._hashes: dict[Path, str | None] = {}
        self._resolved: dict[tuple[Path, str], Path] = {}  # a run's spec and module paths
        self._ignored = False  # the folder's .gitignore is known to exist

    def _hash(self, path: Path) -> str | None:
        name = str(path)
        if name.startswith(ENV_DEP):
            return env_digest(name[len(ENV_DEP):])
        if path not in self._hashes:
            self._hashes[path] = _digest(path)
        return self._hashes[path]

    def _resolve(self, path: Path) -> Path:
        """`path.resolve()`, once per path (and working directory) in this cache's life: a
        spec's tasks all resolve the same two paths, a stat per folder each time."""
        try:
            where = (path, "" if path.is_absolute() else os.getcwd())
        except OSError:  # the working directory is gone: resolve (and fail) as before
            return path.resolve()
        if where not in self._resolved:
            self._resolved[where] = path.resolve()
        return self._resolved[where]

    def _key(self, name: str, path: Path, material: dict[str, Any]) -> str | None:
        """The key of `material` and of `path`'s content (stored under `name`), with what
        every key carries; None when the file cannot be read or nothing can be signed."""
        if self._secret is None:
            return None
        resolved = self._resolve(path)
        content = self._hash(resolved)
        if content is None:
            return None
        material = {**self._fixed, name: str(resolved), "content": content, **material}
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()

    def key(self, task: Task, options: RunOptions) -> str | None:
        source = task.spec if task.spec is not None else task.module
        return self._key("source", source, {
            "function": task.function, "case": task.case.name, "device": task.device,
            "check": task.check, "settings": repr(task.settings),
            "explicit": task.explicit_checks, "module": str(self._resolve(task.module)),
            "seed": options.seed, "atol": options.atol, "rtol": options.rtol, "eps": options.eps,
            "shape": list(options.shape) if task.inferred else None,
            "mode": options.mode, "max_memory": options.max_memory,
            "dodge_kinks": options.dodge_kinks,
        })

    def _path(self, key: str) -> Path:
        return self.folder / f"v{FORMAT}" / key[:2] / f"{key}.json"

    def _signature(self, key: str, content: dict[str, Any]) -> str:
        """The HMAC of an entry's content, bound to its key (an entry moved to another
        key's file does not verify)."""
        assert self._secret is not None
        body = json.dumps(content, sort_keys=True, separators=(",", ":")).encode("utf-8")
        return hmac.new(self._secret, key.encode() + b"\0" + body, hashlib.sha256).hexdigest()

    def _entry(self, key: str) -> dict[str, Any] | None:
        """The stored entry, if it is ours (signed for this key), readable, and every file
        it depends on is unchanged."""
        try:
            entry = json.loads(self._path(key).read_bytes().decode("utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict):
            return None
        mac = entry.pop("mac", None)
        if not isinstance(mac, str) or not hmac.compare_digest(
                mac.encode(), self._signature(key, entry).encode()):
            return None
        deps = entry.get("deps")
        if not isinstance(deps, dict) or not deps:
            return None
        for name, digest in deps.items():
            if not isinstance(name, str) or self._hash(Path(name)) != digest:
                return None
        return entry

    def lookup(self, task: Task, options: RunOptions) -> CheckResult | None:
        key = self.key(task, options)
        entry = self._entry(key) if key is not None else None
        if entry is None:
            return None
        result = _valid_result(entry.get("result"), task)
        if result is None:
            return None
        # Paths as this run shows them (the storing run may have started elsewhere).
        result.module = display(task.module)
        result.spec = display(task.spec) if task.spec else None
        where = entry.get("location")
        if (isinstance(where, list) and len(where) == 2 and isinstance(where[0], str)
                and isinstance(where[1], int)):
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
        if not cacheable(result) or not deps:
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
        entry = {**content, "deps": hashes}
        entry["mac"] = self._signature(key, entry)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not self._ignored:
                gitignore = self.folder / ".gitignore"
                if not gitignore.exists():
                    gitignore.write_text("# written by gradcheck-cli\n*\n", encoding="utf-8")
                self._ignored = True
            # Write then rename: a reader never sees half a file, even with parallel runs.
            handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    json.dump(entry, out)
                os.replace(temp, path)
            except BaseException:
                os.unlink(temp)
                raise
        except OSError:
            pass  # a read-only or full disk must not fail the run: the cache is an optimisation
