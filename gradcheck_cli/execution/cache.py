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

import functools
import hashlib
import hmac
import importlib.machinery
import json
import os
import platform
import secrets
import stat
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from gradcheck_cli.execution.tasks import Task
from gradcheck_cli.results import CheckResult, Status
from gradcheck_cli.settings import RunOptions
from gradcheck_cli.specs.collect import display
from gradcheck_cli.version import __version__

FORMAT = 2

# Environment variables that change what torch computes or how the tool decides: thread
# counts change reduction order, allocator and backend switches change kernels.
ENV_PREFIXES = ("PYTORCH_", "TORCH_", "CUDA_", "CUBLAS_", "CUDNN_", "NVIDIA_", "OMP_",
                "MKL_", "KMP_", "OPENBLAS_", "GOTO_", "ATEN_", "GRADCHECK")
# Which files `import helper` finds depends on these.
ENV_NAMES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONNOUSERSITE",
             "PYTHONUSERBASE", "LD_PRELOAD", "LD_LIBRARY_PATH")

# A skip whose reason follows from the module and the machine alone: worth keeping.
DETERMINISTIC_SKIPS = ("is decorated @once_differentiable", "CUDA not available")

KEY_BYTES = 32
CACHE_FOLDER = ".gradcheck_cache"
# A user module's file: Python source, or a compiled extension (a rebuilt .so changes it).
_SOURCE_SUFFIXES = (".py", *importlib.machinery.EXTENSION_SUFFIXES)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None


def _torch_version() -> str:
    # From the installed metadata: reading it does not import torch.
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "none"


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
    return {"python": sys.version, "platform": platform.platform(), "cpus": os.cpu_count(),
            "memory": _total_memory(), "nvidia": nodes}


def cacheable(result: CheckResult) -> bool:
    """Whether `result` may be stored: a pass, or a skip whose reason cannot change while
    the files and the machine stay the same (the worker sends deps for these)."""
    if result.status is Status.PASSED:
        return True
    return result.status is Status.SKIPPED and any(
        reason in result.message for reason in DETERMINISTIC_SKIPS)


def _library_roots() -> list[Path]:
    """Folders of the interpreter's and installed libraries' files, and of this tool."""
    roots = {Path(__file__).resolve().parents[1]}
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        where = sysconfig.get_paths().get(name)
        if where:
            roots.add(Path(where).resolve())
    return sorted(roots)


_baseline: set[str] = set()  # modules loaded before the first user file (`mark_baseline`)
_marked: list[bool] = []
# Files opened for reading by the user's code, by the module whose import or check ran
# (absolute paths): each module's are its checks' dependencies, however long the
# process lives (the pytest plugin's, say).
_reads: dict[str, set[str]] = {}
_running: list[str] = []  # the module whose code runs now (`reading_for`)
_count: list[int] = [0]  # files noted in all, for `generation`
_own_folders: set[str] = set()  # the cache's folders: its reads are not the user's
MAX_TRACKED = 10_000
# torch.compile's own caches: rewritten by every compile, never the user's data.
_COMPILER_CACHES = ("/torchinductor_", "/.triton/", "/triton/cache")
_TOO_MANY = "/nonexistent/gradcheck-cli: too many files opened to track"
# Where files opened for reading are the system's or the process's, not the user's data.
_SYSTEM = ("/proc/", "/sys/", "/dev/", "/etc/", "/usr/", "/lib/", "/lib64/", "/bin/",
           "/sbin/", "/run/")
_WRITING = os.O_WRONLY | os.O_RDWR | getattr(os, "O_CREAT", 0) | getattr(os, "O_TRUNC", 0)


def _for_reading(mode: Any, flags: Any) -> bool:
    if isinstance(mode, str):
        return not any(c in mode for c in "wax+")
    return isinstance(flags, int) and not flags & _WRITING


def _on_open(event: str, args: tuple[Any, ...]) -> None:
    """Audit hook: note each file the user's code opens for reading (a data file, a weight
    file, an extension library), as a dependency of the checks that follow. Must never
    raise: an exception here would make the user's `open` fail."""
    if event != "open" or not _running:
        return
    try:
        path, mode, flags = [*args, None, None, None][:3]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str) or not _for_reading(mode, flags):
            return
        path = os.path.abspath(path)
        # Bytecode is derived from a source file that counts already.
        if not path.startswith(_SYSTEM) and not path.endswith(".pyc") \
                and not any(c in path for c in _COMPILER_CACHES):
            reads = _reads.setdefault(_running[-1], set())
            if path not in reads:
                # Past the cap, a name that is no file: the module's results stay uncached.
                reads.add(path if len(reads) < MAX_TRACKED else _TOO_MANY)
                _count[0] += 1
    except Exception:  # see the docstring
        return


# A dependency that is an environment variable, not a file: `$env:NAME` (no path starts so).
ENV_DEP = "$env:"
_env_reads: dict[str, set[str]] = {}  # module -> the variables its code read


def _note_env(key: object) -> None:
    if _running and isinstance(key, str):
        names = _env_reads.setdefault(_running[-1], set())
        if key not in names:
            names.add(key)
            _count[0] += 1


class _RecordingEnviron(os._Environ):
    """os.environ, noting each variable the user's code reads (`os.environ[...]`,
    `.get`, `os.getenv`, `in`): a verdict may depend on it, so the cache must."""

    def __getitem__(self, key: str) -> str:
        _note_env(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        _note_env(key)
        return super().__contains__(key)


def _record_environ() -> None:
    env = os.environ
    if isinstance(env, _RecordingEnviron) or type(env) is not os._Environ:
        return
    # The same underlying mapping: writes through either object are the same variables.
    recording = _RecordingEnviron(env._data, env.encodekey,  # type: ignore[attr-defined]
                                  env.decodekey, env.encodevalue, env.decodevalue)
    os.environ = recording  # noqa: B003 - the same variables, seen through a recorder


def _env_digest(name: str) -> str:
    value = os.environ.get(name)  # not recorded: no user module runs now
    return hashlib.sha256(b"unset" if value is None else b"=" + value.encode(
        "utf-8", "surrogateescape")).hexdigest()


def mark_baseline() -> None:
    """Remember the modules loaded before any user code ran in this process (once): a
    module loaded later, wherever its file lies, is the user's doing and a dependency.
    From then on files opened and environment variables read count too."""
    if not _marked:
        _baseline.update(sys.modules)
        _marked.append(True)
        sys.addaudithook(_on_open)
        _record_environ()


@contextmanager
def reading_for(module: Path) -> Iterator[None]:
    """While the user's `module` is imported or checked, the files opened for reading are
    its dependencies (a data file, weights, an extension library)."""
    _running.append(str(module.resolve()))
    try:
        yield
    finally:
        _running.pop()


def generation() -> int:
    """Changes whenever `dependencies` could give more files (a module loaded, a file opened)."""
    return len(sys.modules) + _count[0]


def _extension_libraries() -> set[str]:
    """Native libraries loaded through torch (`torch.ops.load_library`): a rebuilt kernel
    changes the verdict."""
    torch = sys.modules.get("torch")
    ops = getattr(torch, "ops", None) if torch is not None else None
    loaded = getattr(ops, "loaded_libraries", None)
    return {str(p) for p in loaded if isinstance(p, str)} if isinstance(loaded, set) else set()


def project_root(path: Path) -> Path | None:
    """The nearest folder above `path` holding pyproject.toml, setup.py or .git."""
    for folder in path.parents:
        if any((folder / marker).exists() for marker in ("pyproject.toml", "setup.py", ".git")):
            return folder
    return None


def _user_roots(module_path: Path) -> list[Path]:
    from gradcheck_cli.target.discovery import package_root

    roots = [package_root(module_path)[0].resolve()]
    project = project_root(module_path)
    if project is not None:
        roots.append(project.resolve())
    return roots


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(root == path or root in path.parents for root in roots)


@functools.cache
def _records(packages: Path) -> dict[str, str]:
    """Top-level name -> the RECORD file of the distribution that installed it, for one
    site-packages folder (read once per process)."""
    found: dict[str, str] = {}
    for info in packages.glob("*.dist-info"):
        record = info / "RECORD"
        try:
            lines = record.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            top = line.split(",", 1)[0].split("/", 1)[0]
            if top and not top.endswith((".dist-info", ".data")) and top != "..":
                found.setdefault(top.removesuffix(".py"), str(record))
    return found


def _installed_record(path: Path) -> str | None:
    """The RECORD of the installed distribution that holds `path`, if one is found."""
    parts = path.parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            at = parts.index(marker)
            if at + 1 < len(parts):
                top = parts[at + 1].removesuffix(".py")
                return _records(Path(*parts[:at + 1])).get(top)
    return None


def dependencies(module_path: Path) -> list[str]:
    """The user's Python files a check of `module_path` may depend on, for the cache: the
    module itself, every loaded .py below its package or project root, and every .py
    loaded after `mark_baseline` wherever it lies (outside the standard library, installed
    packages and this tool). Call it after the check ran: modules that forward or backward
    imported lazily count. A worker that ran other modules before lists their files too,
    which costs a cache miss when they change, never a stale pass."""
    module_path = module_path.resolve()
    libraries = _library_roots()
    roots = _user_roots(module_path)
    files = {str(module_path)}
    for name, module in list(sys.modules.items()):
        filename = getattr(module, "__file__", None)
        # Some modules (torch.ops) carry a relative, made-up __file__: not a file of ours.
        if (not isinstance(filename, str) or not filename.endswith(_SOURCE_SUFFIXES)
                or not os.path.isabs(filename)):
            continue
        path = Path(filename).resolve()
        later = bool(_marked) and name not in _baseline
        if "site-packages" in path.parts or "dist-packages" in path.parts:
            # An installed package the user's code loaded: its upgrade changes the verdict.
            # Its RECORD (the hash of every file it installed) stands for all its files.
            # (A package loaded before the user's code, torch itself, is in the key.)
            top = name.partition(".")[0]
            record = _installed_record(path) if later and top not in _baseline else None
            if record is not None:
                files.add(record)
            continue
        if (_inside(path, roots) or later) and not _inside(path, libraries) and path.is_file():
            files.add(str(path))
    for opened in (*_reads.get(str(module_path), ()), *_extension_libraries()):
        path = Path(opened).resolve()
        # A file opened then removed stays listed: its missing hash keeps the result
        # out of the cache, as the check could not be repeated.
        if not _inside(path, libraries) and CACHE_FOLDER not in path.parts \
                and not _inside(path, [Path(f) for f in _own_folders]):
            files.add(str(path))
    files.update(ENV_DEP + name for name in _env_reads.get(str(module_path), ())
                 if not name.startswith(ENV_PREFIXES) and name not in ENV_NAMES)
    return sorted(files)


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
        _own_folders.update({str(folder.resolve()), str(key_home().resolve())})
        self._secret = secret if secret is not None else signing_key()
        self._fixed = {"format": FORMAT, "tool": __version__, "torch": _torch_version(),
                       "env": environment(), "machine": machine()}
        self._hashes: dict[Path, str | None] = {}
        self._ignored = False  # the folder's .gitignore is known to exist

    def _hash(self, path: Path) -> str | None:
        name = str(path)
        if name.startswith(ENV_DEP):
            return _env_digest(name[len(ENV_DEP):])
        if path not in self._hashes:
            self._hashes[path] = _digest(path)
        return self._hashes[path]

    def _key(self, name: str, path: Path, material: dict[str, Any]) -> str | None:
        """The key of `material` and of `path`'s content (stored under `name`), with what
        every key carries; None when the file cannot be read or nothing can be signed."""
        if self._secret is None:
            return None
        resolved = path.resolve()
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
            "explicit": task.explicit_checks, "module": str(task.module.resolve()),
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
