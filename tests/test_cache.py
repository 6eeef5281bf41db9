"""The cache of passed results: reused while nothing that matters changed, JSON only.

Most runs here are in-process (`-j 0`) with an explicit `--cache-dir`, so they are quick;
the run that must not import torch is a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

SQUARE = '''
import torch


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g
'''

SPEC = '''
module: ops/ops.py
functions:
  Square:
    inputs: [{shape: [3]}]
'''


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def _cached(doc: dict[str, Any]) -> list[tuple[str | None, str, str, bool]]:
    return [(r["function"], r["check"], r["status"], r["cached"]) for r in doc["results"]]


def _entries(folder: Path) -> list[Path]:
    """The cached results (not the cached lists of Functions found in bare .py files)."""
    return sorted(p for p in folder.rglob("*.json")
                  if '"result"' in p.read_text(encoding="utf-8", errors="replace"))


@pytest.fixture
def cached_run(run_json: Any) -> Any:
    """cached_run(*args, cwd=None) -> JSON report of an in-process run using ./cache."""

    def run(*args: str, cwd: Path | None = None, cache: str = "cache") -> dict[str, Any]:
        return run_json(*args, "-j", "0", "--cache-dir", cache, cwd=cwd, in_process=False)

    return run


def test_unchanged_rerun_is_cached_and_does_not_import_torch(tmp_path: Path,
                                                             run_json: Any) -> None:
    _write(tmp_path / "ops" / "ops.py", SQUARE)
    _write(tmp_path / "spec.yaml", SPEC)
    # (Workers record the files as well: see test_batch's done-when folder.)
    first = run_json("spec.yaml", "-j", "0", "--cache-dir", "cache", in_process=False)
    assert _cached(first) == [("Square", "gradcheck", "passed", False),
                              ("Square", "gradgradcheck", "passed", False)]
    entries = _entries(tmp_path / "cache")
    assert len(entries) == 2
    script = textwrap.dedent("""
        import sys
        from gradcheck_cli.cli import main
        code = main(["spec.yaml", "--format", "json", "--device", "cpu", "--cache-dir", "cache"])
        assert "torch" not in sys.modules, "a fully cached run imported torch"
        sys.exit(code)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert _cached(doc) == [("Square", "gradcheck", "passed", True),
                            ("Square", "gradgradcheck", "passed", True)]
    for fresh, again in zip(first["results"], doc["results"]):
        assert again["inputs"] == fresh["inputs"]
        assert (again["location"], again["line"], again["spec"], again["module"]) == (
            fresh["location"], fresh["line"], fresh["spec"], fresh["module"])
    assert doc["summary"]["passed"] == 2 and doc["summary"]["exit_code"] == 0


@pytest.mark.parametrize("layout", ["flat", "package"])
def test_passes_are_cached_when_the_working_directory_is_inside_the_ops_root(
        tmp_path: Path, run_json: Any, layout: str) -> None:
    """The op beside the spec in the working directory, or in a package run from the root.

    BUG: nothing is ever cached in these layouts. `worker.local_files` records every module
    in sys.modules whose resolved `__file__` lies below the op's package root; torch's
    `torch.ops` and `torch.classes` have the *relative* `__file__` values `_ops.py` and
    `_classes.py`, which `Path.resolve()` puts in the working directory. When that is
    (below) the package root they become "dependencies" that do not exist, their hash is
    None, and `Cache.store` silently drops the entry.
    """
    if layout == "flat":
        _write(tmp_path / "ops.py", SQUARE)
        _write(tmp_path / "spec.yaml", SPEC.replace("ops/ops.py", "ops.py"))
    else:
        _write(tmp_path / "mypkg" / "__init__.py", "")
        _write(tmp_path / "mypkg" / "ops.py", SQUARE)
        _write(tmp_path / "spec.yaml", SPEC.replace("ops/ops.py", "mypkg/ops.py"))
    first = run_json("spec.yaml", "-j", "0", "--cache-dir", "cache", in_process=False)
    assert [r["status"] for r in first["results"]] == ["passed", "passed"]
    assert len(_entries(tmp_path / "cache")) == 2, "the passes were not cached"
    again = run_json("spec.yaml", "-j", "0", "--cache-dir", "cache", in_process=False)
    assert [r["cached"] for r in again["results"]] == [True, True]


def test_cached_passes_are_marked_in_the_table(tmp_path: Path, cached_run: Any,
                                               run_cli: Any) -> None:
    _write(tmp_path / "ops" / "ops.py", SQUARE)
    _write(tmp_path / "spec.yaml", SPEC)
    cached_run("spec.yaml")
    code, out, _ = run_cli("spec.yaml", "-j", "0", "--cache-dir", "cache", in_process=False)
    assert code == 0
    assert out.count("passed (cached)") == 2
    assert out.splitlines()[-1].startswith("2 passed in ")


HELPED = '''
import torch

from {source} import FACTOR


class Double(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * FACTOR

    @staticmethod
    def backward(ctx, g):
        return g * FACTOR
'''


@pytest.mark.parametrize("edit", ["module", "helper", "package_helper", "spec"])
def test_editing_what_a_check_depends_on_reruns_it(tmp_path: Path, cached_run: Any,
                                                   edit: str) -> None:
    if edit == "package_helper":
        _write(tmp_path / "src" / "pkg" / "__init__.py", "")
        module = _write(tmp_path / "src" / "pkg" / "ops.py", HELPED.format(source=".consts"))
        helper = _write(tmp_path / "src" / "pkg" / "consts.py", "FACTOR = 2.0\n")
        spec = _write(tmp_path / "spec.yaml", "module: src/pkg/ops.py\n"
                      "functions:\n  Double:\n    inputs: [{shape: [3]}]\n")
    else:
        module = _write(tmp_path / "ops" / "ops.py", HELPED.format(source="helper"))
        helper = _write(tmp_path / "ops" / "helper.py", "FACTOR = 2.0\n")
        spec = _write(tmp_path / "spec.yaml", "module: ops/ops.py\n"
                      "functions:\n  Double:\n    inputs: [{shape: [3]}]\n")
    first = cached_run("spec.yaml")
    assert [r["status"] for r in first["results"]] == ["passed", "passed"]
    assert [r["cached"] for r in cached_run("spec.yaml")["results"]] == [True, True]
    target = {"module": module, "helper": helper, "package_helper": helper, "spec": spec}[edit]
    target.write_text(target.read_text() + "\n# edited\n")
    again = cached_run("spec.yaml")
    assert [(r["status"], r["cached"]) for r in again["results"]] == [
        ("passed", False), ("passed", False)], edit
    # ... and the new passes are cached in turn.
    assert [r["cached"] for r in cached_run("spec.yaml")["results"]] == [True, True]


PROJECT_OP = '''
import torch

from mylib.grads import double_grad


class Double(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return double_grad(g)
'''


def test_editing_a_project_module_outside_the_ops_folder_reruns_the_check(
        tmp_path: Path, cached_run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The op imports the project's own library (as with `pip install -e .`).

    BUG: only files below the op's own folder (its package root) are recorded as the
    check's dependencies, so an edit to `mylib/grads.py`, the user's real backward code,
    leaves the stale pass in the cache: a broken gradient is reported "passed (cached)".
    """
    _write(tmp_path / "pyproject.toml", "[project]\nname = 'demo'\n")
    _write(tmp_path / "mylib" / "__init__.py", "")
    grads = _write(tmp_path / "mylib" / "grads.py", "def double_grad(g):\n    return 2 * g\n")
    _write(tmp_path / "checks" / "ops.py", PROJECT_OP)
    _write(tmp_path / "checks" / "double.yaml",
           "module: ops.py\nfunctions:\n  Double:\n    inputs: [{shape: [3]}]\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # the installed project
    first = cached_run("checks/double.yaml", "--check", "gradcheck")
    assert [(r["status"], r["cached"]) for r in first["results"]] == [("passed", False)]
    grads.write_text("def double_grad(g):\n    return 3 * g  # now wrong\n")
    again = cached_run("checks/double.yaml", "--check", "gradcheck")
    assert [r["cached"] for r in again["results"]] == [False], (
        "an edit to mylib/grads.py, imported by the op, did not invalidate its cached pass")


def test_a_py_file_without_a_spec_reuses_its_cached_passes(tmp_path: Path,
                                                          cached_run: Any) -> None:
    """`gradcheck-cli ops/square.py` (inferred inputs), as pre-commit runs it on every commit.

    BUG: the passes are stored, but the tasks found by importing a bare .py
    (`runner._execute_all` -> `found`) are queued without `Cache.lookup`, so an unchanged
    re-run checks everything again (and imports torch in a worker to do it).
    """
    _write(tmp_path / "ops" / "square.py", SQUARE)
    first = cached_run("ops/square.py")
    assert _cached(first) == [("Square", "gradcheck", "passed", False),
                              ("Square", "gradgradcheck", "passed", False)]
    assert len(_entries(tmp_path / "cache")) == 2
    again = cached_run("ops/square.py")
    assert _cached(again) == [("Square", "gradcheck", "passed", True),
                              ("Square", "gradgradcheck", "passed", True)]


def test_failures_and_errors_are_never_cached(tmp_path: Path, cached_run: Any) -> None:
    _write(tmp_path / "ops" / "ops.py", SQUARE + '''

class Half(Square):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return x * g


class Short(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        return a * 3 + b

    @staticmethod
    def backward(ctx, g):
        return 3 * g
''')
    _write(tmp_path / "spec.yaml", SPEC + "  Half:\n    inputs: [{shape: [3]}]\n"
           "  Short:\n    inputs: [{shape: [2]}, {shape: [2]}]\n")
    first = cached_run("spec.yaml")
    expected = [("Square", "gradcheck", "passed"), ("Square", "gradgradcheck", "passed"),
                ("Half", "gradcheck", "failed"), ("Half", "gradgradcheck", "passed"),
                ("Short", "gradcheck", "error"), ("Short", "gradgradcheck", "error")]
    assert [(f, c, s) for f, c, s, _ in _cached(first)] == expected
    assert first["_exit_code"] == 1
    assert len(_entries(tmp_path / "cache")) == 3  # the passes only
    second = cached_run("spec.yaml")
    assert _cached(second) == [(f, c, s, s == "passed") for f, c, s in expected]
    assert second["_exit_code"] == 1
    failed = [r for r in second["results"] if r["status"] != "passed"]
    assert all(r["duration"] > 0 for r in failed)
    for entry in _entries(tmp_path / "cache"):
        assert json.loads(entry.read_text())["result"]["status"] == "passed"


def test_no_cache_neither_reads_nor_writes(tmp_path: Path, run_json: Any,
                                          cached_run: Any) -> None:
    _write(tmp_path / "ops" / "ops.py", SQUARE)
    _write(tmp_path / "spec.yaml", SPEC)
    doc = run_json("spec.yaml", "-j", "0", "--no-cache", in_process=False)
    assert [r["cached"] for r in doc["results"]] == [False, False]
    assert not (tmp_path / ".gradcheck_cache").exists()
    cached_run("spec.yaml", cache=".gradcheck_cache")
    assert [r["cached"] for r in cached_run("spec.yaml", cache=".gradcheck_cache")["results"]] \
        == [True, True]
    doc = run_json("spec.yaml", "-j", "0", "--no-cache", in_process=False)
    assert [r["cached"] for r in doc["results"]] == [False, False]


def test_default_cache_dir_is_in_the_project_root(tmp_path: Path, run_json: Any) -> None:
    _write(tmp_path / "pyproject.toml", "[project]\nname = 'demo'\n")
    _write(tmp_path / "pkg" / "ops" / "ops.py", SQUARE)
    _write(tmp_path / "pkg" / "spec.yaml", SPEC)
    work = tmp_path / "pkg"
    first = run_json("spec.yaml", "-j", "0", cwd=work, in_process=False)
    assert [r["cached"] for r in first["results"]] == [False, False]
    cache = tmp_path / ".gradcheck_cache"
    assert len(_entries(cache)) == 2
    assert not (work / ".gradcheck_cache").exists()
    assert (cache / ".gitignore").read_text().splitlines()[-1] == "*"
    again = run_json("spec.yaml", "-j", "0", cwd=work, in_process=False)
    assert [r["cached"] for r in again["results"]] == [True, True]


def test_cache_dir_option_and_the_cache_is_json_never_pickle(tmp_path: Path,
                                                             cached_run: Any) -> None:
    _write(tmp_path / "ops" / "ops.py", SQUARE)
    _write(tmp_path / "spec.yaml", SPEC)
    cached_run("spec.yaml", cache="elsewhere/gc")
    assert not (tmp_path / ".gradcheck_cache").exists()
    entries = _entries(tmp_path / "elsewhere" / "gc")
    assert len(entries) == 2
    for entry in entries:
        assert entry.suffix == ".json"
        raw = entry.read_bytes()
        assert not raw.startswith(b"\x80"), "a pickle"
        data = json.loads(raw)
        assert data["result"]["status"] == "passed"
        assert data["result"]["function"] == "Square"
        # The user's one file of this project. A process that already ran other tests'
        # ops lists theirs too (their modules are loaded), and installed packages' RECORDs
        # (torch loads sympy and others lazily): a cache miss when they change, never a
        # stale pass.
        ours = [d for d in data["deps"] if Path(d).is_relative_to(tmp_path.resolve())]
        assert ours == [str((tmp_path / "ops" / "ops.py").resolve())]
    # Another folder knows nothing of it.
    doc = cached_run("spec.yaml", cache="other")
    assert [r["cached"] for r in doc["results"]] == [False, False]


@pytest.mark.parametrize("options", [("--seed", "7"), ("--atol", "1e-4"), ("--rtol", "1e-2"),
                                     ("--eps", "1e-5")])
def test_other_seed_or_tolerances_are_not_served_from_the_cache(tmp_path: Path,
                                                                cached_run: Any,
                                                                options: tuple[str, str]) -> None:
    _write(tmp_path / "ops" / "ops.py", SQUARE)
    _write(tmp_path / "spec.yaml", SPEC)
    cached_run("spec.yaml", "--check", "gradcheck")
    doc = cached_run("spec.yaml", "--check", "gradcheck", *options)
    assert [r["cached"] for r in doc["results"]] == [False]
    assert [r["cached"] for r in cached_run("spec.yaml", "--check", "gradcheck")["results"]] \
        == [True]


@pytest.mark.parametrize("content", [
    b"{not json", b"", b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94.", b"\xff\xfe\x00",
    b"[]", b"null", b'{"result": "passed", "deps": {}}',
    b'{"result": [1, 2], "deps": {"/nowhere.py": "0"}}',
])
def test_a_corrupt_cache_file_is_ignored(tmp_path: Path, cached_run: Any,
                                         content: bytes) -> None:
    _write(tmp_path / "ops" / "ops.py", SQUARE)
    _write(tmp_path / "spec.yaml", SPEC)
    cached_run("spec.yaml")
    entries = _entries(tmp_path / "cache")
    assert entries
    for entry in entries:
        entry.write_bytes(content)
    doc = cached_run("spec.yaml")
    assert doc["_exit_code"] == 0, doc["_stderr"]
    assert _cached(doc) == [("Square", "gradcheck", "passed", False),
                            ("Square", "gradgradcheck", "passed", False)]
    # The entries are written afresh.
    assert [r["cached"] for r in cached_run("spec.yaml")["results"]] == [True, True]


def test_cached_results_show_paths_as_seen_from_this_run(tmp_path: Path, cached_run: Any,
                                                         run_json: Any) -> None:
    """A pass cached by a run from the project root, reused by a run from a subfolder.

    BUG: the cached result keeps the paths of the run that stored it (`specs/good.yaml`,
    `ops/good.py`), relative to *that* working directory, so the reused result names files
    that do not exist from here, unlike the same result run afresh.
    """
    _write(tmp_path / "pyproject.toml", "[project]\nname = 'demo'\n")
    _write(tmp_path / "ops" / "good.py", SQUARE)
    _write(tmp_path / "specs" / "good.yaml",
           "module: ../ops/good.py\nfunctions:\n  Square:\n    inputs: [{shape: [3]}]\n")
    cache = str(tmp_path / ".gradcheck_cache")
    cached_run("specs/good.yaml", cache=cache)
    sub = tmp_path / "specs"
    fresh = run_json("good.yaml", "-j", "0", "--no-cache", cwd=sub, in_process=False)
    reused = cached_run("good.yaml", cwd=sub, cache=cache)
    assert [r["cached"] for r in reused["results"]] == [True, True]

    def where(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(r["spec"], r["module"], r["location"]) for r in doc["results"]]

    assert where(reused) == where(fresh)


def test_module_level_cache_key_runs_without_torch() -> None:
    # The cache module itself must not pull torch in (a cached run never imports it).
    script = "import sys, gradcheck_cli.execution.cache, gradcheck_cli.execution.runner; " \
             "assert 'torch' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_the_torch_version_in_the_key_is_importlib_metadatas(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """Read from the folder name, first on sys.path as importlib.metadata searches: the
    same answer here, and another torch first on the path is that torch's version."""
    from importlib import metadata

    from gradcheck_cli.execution import cache

    assert cache._torch_version() == metadata.version("torch")
    (tmp_path / "torch-9.8.7+rocm.dist-info").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cache._torch_version() == "9.8.7+rocm"


def test_the_platform_in_the_key_names_the_system_and_its_release() -> None:
    import platform

    from gradcheck_cli.execution import cache

    name = cache.platform_name()
    assert name.startswith(f"{platform.system()}-{platform.release()}-{platform.machine()}-")
    libc, version = platform.libc_ver()
    if libc == "glibc":
        assert name.endswith(f"glibc {version}")


def test_a_modules_file_is_resolved_as_path_resolve_does(tmp_path: Path) -> None:
    """Folders are resolved once and shared by their files: a linked folder, a linked file
    (to a file elsewhere), a link to a link and `..` in the path all end where
    `Path.resolve` ends."""
    from gradcheck_cli.execution import dependencies

    real = tmp_path / "real"
    (real / "pkg").mkdir(parents=True)
    (real / "pkg" / "mod.py").write_text("")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "target.py").write_text("")
    (tmp_path / "linked").symlink_to(real)
    (real / "pkg" / "alias.py").symlink_to(elsewhere / "target.py")
    (real / "pkg" / "alias2.py").symlink_to(real / "pkg" / "alias.py")
    names = [real / "pkg" / "mod.py", tmp_path / "linked" / "pkg" / "mod.py",
             tmp_path / "linked" / "pkg" / "alias.py", real / "pkg" / "alias2.py",
             tmp_path / "linked" / "pkg" / ".." / "pkg" / "mod.py"]
    for name in names:
        assert dependencies._resolved(str(name)) == name.resolve(), name
    assert dependencies._resolved(str(names[2])) == (elsewhere / "target.py").resolve()


@pytest.mark.parametrize("folder, name, expected", [
    ("torch.egg-info", "torch", "2.14.0a0+git1234"),  # a development build: PKG-INFO says
    ("Torch-9.9.dist-info", "Torch", "9.9"),
    ("torch-tb-profiler-0.4.3.dist-info", "torch-tb-profiler", None),  # not torch: the
])                                                                     # installed one's
def test_the_torch_version_first_on_the_path_is_the_keys(tmp_path: Path, folder: str,
                                                         name: str, expected: str | None,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    from importlib import metadata

    from gradcheck_cli.execution import cache

    installed = metadata.version("torch")
    version = folder.split("-")[1] if "dist-info" in folder else "2.14.0a0+git1234"
    (tmp_path / folder).mkdir()
    meta = "PKG-INFO" if folder.endswith(".egg-info") else "METADATA"
    (tmp_path / folder / meta).write_text(f"Metadata-Version: 2.1\nName: {name}\n"
                                          f"Version: {version}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cache._torch_version() == (expected or installed)


def test_a_working_directory_removed_during_the_run_costs_no_crash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An op may remove the folder the run started in: absolute paths need no cwd."""
    from gradcheck_cli.execution.cache import Cache

    spec = tmp_path / "s.yaml"
    spec.write_text("x")
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    store = Cache(tmp_path / "cache", secret=b"k" * 32)
    gone.rmdir()
    assert store._resolve(spec) == spec.resolve()
