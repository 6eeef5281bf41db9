"""The cache never turns a failing op into `passed (cached)`: planted, corrupt or stale entries.

Each run is a fresh `python -m gradcheck_cli` process (an in-process run keeps the user's
module imported between runs), with its own cache home holding the signing key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import py_compile
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gradcheck_cli.execution.cache import Cache

OPS = '''
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

WRONG = OPS.replace("return 2 * x * g", "return 3 * x * g")

SPEC = "module: ops.py\nfunctions:\n  Square:\n    inputs: [{shape: [3]}]\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def _run(tmp_path: Path, *args: str, home: str = "home",
         env: dict[str, str] | None = None) -> dict[str, Any]:
    environ = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / home), **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "gradcheck_cli", "spec.yaml", "--format", "json", "-j", "0",
         "--device", "cpu", "--cache-dir", "cache", "--check", "gradcheck", *args],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    doc["_exit_code"] = proc.returncode
    return doc


def _seen(doc: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(r["status"], r["cached"]) for r in doc["results"]]


def _entries(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "cache").rglob("*.json")
                  if '"result"' in p.read_text(encoding="utf-8", errors="replace"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    _write(tmp_path / "ops.py", OPS)
    _write(tmp_path / "spec.yaml", SPEC)
    return tmp_path


def _sign(entry_path: Path, entry: dict[str, Any], secret: bytes) -> None:
    entry.pop("mac", None)
    entry["mac"] = Cache(entry_path.parent, secret=secret)._signature(entry_path.stem, entry)
    entry_path.write_text(json.dumps(entry), encoding="utf-8")


@pytest.mark.parametrize("forger", ["unsigned", "another key"])
def test_a_planted_entry_cannot_pass_a_wrong_backward(project: Path, forger: str) -> None:
    """A pass cached for the right backward, then the op made wrong and the entry forged to
    match the wrong file's hash (what a pull request or a restored CI cache can carry)."""
    assert _seen(_run(project)) == [("passed", False)]
    (entry_path,) = _entries(project)
    _write(project / "ops.py", WRONG)
    entry = json.loads(entry_path.read_text(encoding="utf-8"))
    wrong_hash = hashlib.sha256((project / "ops.py").read_bytes()).hexdigest()
    entry["deps"] = {name: wrong_hash for name in entry["deps"]}
    if forger == "unsigned":
        entry.pop("mac", None)
        entry_path.write_text(json.dumps(entry), encoding="utf-8")
    else:
        _sign(entry_path, entry, b"\x01" * 32)
    doc = _run(project)
    assert _seen(doc) == [("failed", False)]
    assert doc["_exit_code"] == 1


def test_an_entry_moved_to_another_key_is_not_used(project: Path) -> None:
    """Square's genuine signed pass copied over the file of Wrong's key, once Wrong broke."""
    _write(project / "spec.yaml", SPEC + "  Other:\n    inputs: [{shape: [3]}]\n")
    other = OPS.split("\n\n\n", 1)[1].replace("Square", "Other")
    _write(project / "ops.py", OPS + "\n\n" + other)
    assert _seen(_run(project)) == [("passed", False), ("passed", False)]
    _write(project / "ops.py", OPS + "\n\n" + other.replace("2 * x * g", "3 * x * g"))
    assert _seen(_run(project)) == [("passed", False), ("failed", False)]
    by_function = {json.loads(p.read_text(encoding="utf-8"))["result"]["function"]: p
                   for p in _entries(project)}
    by_function["Other"].write_bytes(by_function["Square"].read_bytes())
    assert _seen(_run(project)) == [("passed", True), ("failed", False)]


@pytest.mark.parametrize("damage", ["wrong types", "other task", "directory", "truncated"])
def test_a_corrupt_or_wrong_typed_entry_is_ignored(project: Path, damage: str) -> None:
    """Signed with the user's real key (as a bug of ours could write it), yet of the wrong
    shape: ignored and run again, never exit 3."""
    _run(project)
    (entry_path,) = _entries(project)
    secret = (project / "home" / "gradcheck-cli" / "key").read_bytes()
    entry = json.loads(entry_path.read_text(encoding="utf-8"))
    if damage == "wrong types":
        entry["result"].update(message=5, inputs="x", mode=None, seed="7")
        _sign(entry_path, entry, secret)
    elif damage == "other task":
        entry["result"]["function"] = "Other"
        _sign(entry_path, entry, secret)
    elif damage == "directory":
        entry_path.unlink()
        entry_path.mkdir()
    else:
        entry_path.write_bytes(entry_path.read_bytes()[:40])
    doc = _run(project)
    assert _seen(doc) == [("passed", False)]
    assert doc["_exit_code"] == 0


def test_the_key_is_private_and_a_shared_one_is_not_trusted(project: Path) -> None:
    _run(project)
    key = project / "home" / "gradcheck-cli" / "key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(key.read_bytes()) == 32
    assert _seen(_run(project)) == [("passed", True)]
    key.chmod(0o644)  # anyone on the machine could sign entries with it now
    assert _seen(_run(project)) == [("passed", False)]


@pytest.mark.parametrize("change", [
    ("env", "OMP_NUM_THREADS", "3"), ("env", "PYTORCH_NO_CUDA_MEMORY_CACHING", "1"),
    ("env", "CUDA_VISIBLE_DEVICES", ""), ("flag", "--dodge-kinks", ""),
    ("flag", "--mode", "exact"), ("flag", "--max-memory", "1000000"),
])
def test_what_changes_a_verdict_is_in_the_key(project: Path, change: tuple[str, str, str]
                                              ) -> None:
    kind, name, value = change
    base = {"OMP_NUM_THREADS": "1"} if name != "OMP_NUM_THREADS" else {}
    assert _seen(_run(project, env=base)) == [("passed", False)]
    assert _seen(_run(project, env=base)) == [("passed", True)]
    if kind == "env":
        doc = _run(project, env={**base, name: value})
    else:
        doc = _run(project, *[a for a in (name, value) if a], env=base)
    assert _seen(doc) == [("passed", False)]


def test_a_file_imported_from_outside_the_project_is_a_dependency(tmp_path: Path) -> None:
    """The op's backward uses a helper from a folder on PYTHONPATH outside the project."""
    project = tmp_path / "project"
    _write(project / "pyproject.toml", "[project]\nname = 'demo'\n")
    helper = _write(tmp_path / "elsewhere" / "factor_helper.py", "FACTOR = 2\n")
    _write(project / "ops.py", OPS.replace("import torch", "import torch\n"
                                           "from factor_helper import FACTOR").replace(
        "return 2 * x * g", "return FACTOR * x * g"))
    _write(project / "spec.yaml", SPEC)
    env = {"PYTHONPATH": os.pathsep.join(
        filter(None, [str(tmp_path / "elsewhere"), os.environ.get("PYTHONPATH")]))}
    assert _seen(_run(project, env=env, home="../home")) == [("passed", False)]
    helper.write_text("FACTOR = 3\n", encoding="utf-8")
    assert _seen(_run(project, env=env, home="../home")) == [("failed", False)]



@pytest.mark.parametrize("jobs", ["0", "1"])
@pytest.mark.parametrize("where", ["project", "outside"])
def test_a_data_file_the_op_reads_is_a_dependency(tmp_path: Path, jobs: str, where: str) -> None:
    """The backward's factor comes from a text file read lazily in backward, inside the
    project or far outside it: editing the file must not leave a cached pass."""
    project = tmp_path / "project"
    _write(project / "pyproject.toml", "[project]\nname = 'demo'\n")
    data = (project if where == "project" else tmp_path / "data") / "factor.txt"
    _write(data, "2\n")
    _write(project / "ops.py", OPS.replace(
        "return 2 * x * g",
        f"return float(open({str(data)!r}).read()) * x * g"))
    _write(project / "spec.yaml", SPEC)
    assert _seen(_run(project, "-j", jobs, home="../home")) == [("passed", False)]
    assert _seen(_run(project, "-j", jobs, home="../home")) == [("passed", True)]
    data.write_text("3\n", encoding="utf-8")
    assert _seen(_run(project, "-j", jobs, home="../home")) == [("failed", False)]
    data.write_text("2\n", encoding="utf-8")
    assert _seen(_run(project, "-j", jobs, home="../home")) == [("passed", True)]
    data.unlink()
    assert _seen(_run(project, "-j", jobs, home="../home"))[0][0] == "error"



def test_a_file_opened_by_a_later_check_of_the_same_worker_is_its_dependency(
        tmp_path: Path) -> None:
    """One worker checks case `small`, then case `big`, whose backward alone reads a file:
    the dependencies the worker worked out for `small` must not be reused for `big`."""
    data = _write(tmp_path / "factor.txt", "2\n")
    _write(tmp_path / "ops.py", OPS.replace(
        "return 2 * x * g",
        f"return (float(open({str(data)!r}).read()) if x.numel() == 4 else 2) * x * g"))
    _write(tmp_path / "spec.yaml", "module: ops.py\nfunctions:\n  Square:\n    cases:\n"
           "      - {name: small, inputs: [{shape: [3]}]}\n"
           "      - {name: big, inputs: [{shape: [4]}]}\n")
    def seen() -> dict[str, tuple[str, bool]]:
        doc = _run(tmp_path, "-j", "1")
        return {r["case"]: (r["status"], r["cached"]) for r in doc["results"]}

    assert seen()["big"] == ("passed", False)
    data.write_text("3\n", encoding="utf-8")
    assert seen() == {"default": ("passed", True), "small": ("passed", True),
                      "big": ("failed", False)}

ONCE = '''
import torch
from torch.autograd.function import once_differentiable


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g
'''


def test_a_deterministic_skip_is_cached_and_the_rerun_does_not_import_torch(
        tmp_path: Path) -> None:
    _write(tmp_path / "ops.py", ONCE)
    _write(tmp_path / "spec.yaml", SPEC)
    environ = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "home")}
    argv = ["spec.yaml", "--format", "json", "--device", "cpu", "--cache-dir", "cache",
            "-j", "0"]
    script = textwrap.dedent(f"""
        import sys
        from gradcheck_cli.cli import main
        code = main({argv!r})
        print("TORCH" if "torch" in sys.modules else "NO TORCH", file=sys.stderr)
        sys.exit(code)
    """)

    def run() -> tuple[list[tuple[str, str, bool]], str]:
        proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=environ,
                              capture_output=True, text=True, timeout=120)
        doc = json.loads(proc.stdout)
        return ([(r["check"], r["status"], r["cached"]) for r in doc["results"]],
                proc.stderr.strip().splitlines()[-1])

    assert run() == ([("gradcheck", "passed", False), ("gradgradcheck", "skipped", False)],
                     "TORCH")
    assert run() == ([("gradcheck", "passed", True), ("gradgradcheck", "skipped", True)],
                     "NO TORCH")


HELPER_OPS = OPS.replace("import torch", "import torch\nfrom grads import grad_of_square").replace(
    "return 2 * x * g", "return grad_of_square(x, g)")


@pytest.mark.parametrize("edited", ["module", "helper"])
def test_a_same_size_edit_with_the_mtime_kept_runs_the_new_source(tmp_path: Path,
                                                                  edited: str) -> None:
    """CPython trusts a .pyc whose size and mtime match: an edit keeping both (`sed`, a
    checkout that restores times) must still run the new code, here a wrong backward."""
    if edited == "module":
        target = _write(tmp_path / "ops.py", OPS)
    else:
        _write(tmp_path / "ops.py", HELPER_OPS)
        target = _write(tmp_path / "grads.py", "def grad_of_square(x, g):\n"
                                               "    return 2 * x * g\n")
    _write(tmp_path / "spec.yaml", SPEC)
    assert _seen(_run(tmp_path, "--no-cache")) == [("passed", False)]
    # The bytecode any earlier import leaves (here PYTHONDONTWRITEBYTECODE may be set).
    py_compile.compile(str(target), doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    before = target.stat()
    text = target.read_text(encoding="utf-8")
    target.write_text(text.replace("2 * x * g", "3 * x * g"), encoding="utf-8")
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert target.stat().st_size == before.st_size
    assert _seen(_run(tmp_path, "--no-cache")) == [("failed", False)]
    assert _seen(_run(tmp_path)) == [("failed", False)]  # nor cached under the new hash


NOISY = '''
import time

import torch

SLOW_CALLS = [0]  # the next forwards to slow down, as a busy machine or a warm-up would


class NoisySquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        if SLOW_CALLS[0] > 0:
            SLOW_CALLS[0] -= 1
            time.sleep(0.1)
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g
'''


@pytest.mark.parametrize(("numel", "slow_calls"), [(64, 2), (400, 2)])
def test_the_mode_does_not_change_between_identical_runs(tmp_path: Path, numel: int,
                                                         slow_calls: int) -> None:
    """A 64-element check (tiny: always exact) and a 400-element one (timed more than once,
    the fastest kept) whose first forwards are slow, as on a busy machine: exact in 6 of 6
    runs. (Before, one slow timing sent them to probe mode.)"""
    import torch

    from gradcheck_cli.engine.checks.gradcheck import gradcheck
    from gradcheck_cli.engine.outcome import Tolerances
    from gradcheck_cli.results import Status
    from gradcheck_cli.target.discovery import import_file, resolve

    path = _write(tmp_path / "noisy.py", NOISY)
    module = import_file(path)
    target = resolve(module, path.resolve(), "NoisySquare")
    assert target is not None
    # Called as a plain callable: the exact/probe timing, not the reference mode a Function
    # takes first (the same on every run: it times nothing).
    target = dataclasses.replace(target, kind="callable", obj=target.obj.apply)
    modes = []
    for run in range(6):
        module.SLOW_CALLS[0] = slow_calls
        x = torch.rand(numel, dtype=torch.float64, generator=torch.Generator().manual_seed(run))
        outcome = gradcheck(target, [x.requires_grad_()], ["x"], Tolerances(), 1 << 26)
        assert outcome.status is Status.PASSED, outcome.message
        modes.append((outcome.mode, outcome.mode_reason))
    assert modes == [("exact", "")] * 6


def test_tiny_checks_are_exact_whatever_the_timing() -> None:
    from gradcheck_cli.engine import cost

    tiny = cost.Sizes((64,), 64, 8)
    assert tiny.tiny and tiny.jacobian_entries == 64 * 64
    slow = cost.Timing(5.0, 5.0)  # one absurd measurement
    assert cost.choose("auto", tiny, 1 << 30, slow).mode == "exact"
    assert cost.choose("auto", cost.Sizes((320, 320), 640, 8), 1 << 30, slow).mode == "probe"
    assert cost.choose("auto", tiny, 16, slow, nonzeros=64).mode == "probe"  # memory decides
    assert cost.choose("probe", tiny, 1 << 30, slow).mode == "probe"  # asked for


@pytest.mark.parametrize("jobs", ["0", "2"])
@pytest.mark.parametrize("temp_name", ["tmp", "t" * 100])
def test_a_run_leaves_nothing_in_the_temp_folder(tmp_path: Path, jobs: str,
                                                 temp_name: str) -> None:
    """Importing from source once made a temporary pycache folder per process, which
    workers (ended without atexit) left behind: hundreds after a day of runs. A temp
    folder whose path is too long for the fork server's socket was an internal error."""
    _write(tmp_path / "ops.py", OPS)
    _write(tmp_path / "spec.yaml", SPEC)
    temp = tmp_path / temp_name
    temp.mkdir()
    doc = _run(tmp_path, "-j", jobs, "--no-cache", env={"TMPDIR": str(temp)})
    assert _seen(doc) == [("passed", False)]
    assert sorted(p.name for p in temp.iterdir()) == []


@pytest.mark.parametrize("jobs", ["0", "1"])
def test_an_environment_variable_the_op_reads_is_a_dependency(tmp_path: Path, jobs: str
                                                              ) -> None:
    """The backward's factor comes from an environment variable of the user's own name
    (not one torch reads): changing it must not leave a cached pass."""
    _write(tmp_path / "ops.py", OPS.replace("import torch", "import os\nimport torch").replace(
        "return 2 * x * g", 'return float(os.environ.get("MY_OP_FACTOR", "2")) * x * g'))
    _write(tmp_path / "spec.yaml", SPEC)
    assert _seen(_run(tmp_path, "-j", jobs)) == [("passed", False)]
    assert _seen(_run(tmp_path, "-j", jobs)) == [("passed", True)]
    assert _seen(_run(tmp_path, "-j", jobs, env={"MY_OP_FACTOR": "3"})) == [("failed", False)]
    assert _seen(_run(tmp_path, "-j", jobs, env={"MY_OP_FACTOR": "2"})) == [("passed", False)]
    assert _seen(_run(tmp_path, "-j", jobs, env={"MY_OP_FACTOR": "2"})) == [("passed", True)]


def test_upgrading_an_installed_package_the_op_uses_reruns_it(tmp_path: Path) -> None:
    """The op takes its factor from a package installed in the interpreter's own
    site-packages (a venv seeing this one's packages): a new version (new files, a new
    RECORD, as pip writes) must not leave a cached pass."""
    import sysconfig
    import venv

    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print("
                              "sysconfig.get_paths()['purelib'])"], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert purelib != sysconfig.get_paths()["purelib"]
    packages = Path(purelib)
    library = _write(packages / "factorlib" / "__init__.py", "FACTOR = 2\n")
    record = _write(packages / "factorlib-1.0.dist-info" / "RECORD",
                    "factorlib/__init__.py,sha256=one,11\n")
    _write(tmp_path / "ops.py", OPS.replace("import torch", "import torch\n"
                                            "from factorlib import FACTOR").replace(
        "return 2 * x * g", "return FACTOR * x * g"))
    _write(tmp_path / "spec.yaml", SPEC)

    def seen() -> list[tuple[str, bool]]:
        environ = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "home")}
        proc = subprocess.run(
            [str(python), "-m", "gradcheck_cli", "spec.yaml", "--format", "json", "-j", "0",
             "--device", "cpu", "--cache-dir", "cache", "--check", "gradcheck"],
            cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120)
        assert "Traceback" not in proc.stderr, proc.stderr
        return _seen(json.loads(proc.stdout))

    assert seen() == [("passed", False)]
    assert seen() == [("passed", True)]
    library.write_text("FACTOR = 3\n", encoding="utf-8")
    record.write_text("factorlib/__init__.py,sha256=two,11\n", encoding="utf-8")
    assert seen() == [("failed", False)]
