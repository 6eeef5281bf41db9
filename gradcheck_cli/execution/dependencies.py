"""What a check depends on besides its spec: the user's files, data and environment.

From `mark_baseline` on (the first user import in a process), an audit hook notes the
files the user's code opens for reading and a recording `os.environ` the variables it
reads, each under the module whose import or check runs (`reading_for`). `dependencies`
lists them with every Python file loaded since, the project's own files and the RECORD of
each installed package the user's code pulled in: the cache keeps a result only while all
of them hash the same.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import os
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Environment variables that change what torch computes or how the tool decides: thread
# counts change reduction order, allocator and backend switches change kernels.
ENV_PREFIXES = ("PYTORCH_", "TORCH_", "CUDA_", "CUBLAS_", "CUDNN_", "NVIDIA_", "OMP_",
                "MKL_", "KMP_", "OPENBLAS_", "GOTO_", "ATEN_", "GRADCHECK")
# Which files `import helper` finds depends on these.
ENV_NAMES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONNOUSERSITE",
             "PYTHONUSERBASE", "LD_PRELOAD", "LD_LIBRARY_PATH")

CACHE_FOLDER = ".gradcheck_cache"
# A user module's file: Python source, or a compiled extension (a rebuilt .so changes it).
_SOURCE_SUFFIXES = (".py", *importlib.machinery.EXTENSION_SUFFIXES)


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


def env_digest(name: str) -> str:
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
    """Whether `path` is one of `roots` or lies below one (absolute, resolved paths;
    compared as text: `path.parents` costs microseconds per module, per listing)."""
    text = str(path)
    for root in roots:
        top = str(root)
        if text == top or text.startswith(top.rstrip(os.sep) + os.sep):
            return True
    return False


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


@functools.lru_cache(maxsize=65_536)
def _resolved(filename: str) -> Path:
    """A loaded module's file, links resolved: each resolve costs a stat per folder, and
    the thousand-odd modules torch loads are listed again after every check that loads
    or opens anything new. The thousand-odd lie in a hundred-odd folders: each folder is
    resolved once, and a file that is no link itself lies where its folder does."""
    path = Path(filename)
    if path.name in ("", ".", "..") or path.is_symlink():
        return path.resolve()
    return _resolved_folder(str(path.parent)) / path.name


@functools.lru_cache(maxsize=16_384)
def _resolved_folder(folder: str) -> Path:
    return Path(folder).resolve()


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
        path = _resolved(filename)
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


def ignore_folders(*folders: Path) -> None:
    """Files the tool itself reads there (the cache, its key) are never dependencies."""
    _own_folders.update(str(folder.resolve()) for folder in folders)
