"""Batch runs in worker processes: one result per item whatever the user's code does.

A folder holding every kind of trouble (issue 3's "done when"), checked in one run:
hangs time out, crashes and killed workers are reported and replaced, Ctrl-C stops cleanly.
These tests run real worker processes (spawned), so each costs a few seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

GOOD = '''
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

HANG = '''
import time

import torch


class Hang(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        while True:
            time.sleep(1)

    @staticmethod
    def backward(ctx, g):
        return g
'''

ABORT = '''
import os

import torch


class Abort(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        os.abort()
'''

SYNTAX_ERROR = '''
import torch


class Broken(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x *
'''

RAISES = '''
import torch

raise RuntimeError("boom at import")
'''

MATMUL = '''
import torch


class MatMul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return g @ b.T, a.T @ g
'''


def _spec(module: str, function: str, inputs: str = "[{shape: [3]}]") -> str:
    return f"module: ../ops/{module}\nfunctions:\n  {function}:\n    inputs: {inputs}\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


@pytest.fixture
def trouble(tmp_path: Path) -> Path:
    """specs/ with one item of each kind of trouble (and one good spec), ops/ beside it."""
    ops = tmp_path / "ops"
    for name, source in (("good.py", GOOD), ("hang.py", HANG), ("abort.py", ABORT),
                         ("syntax_error.py", SYNTAX_ERROR), ("raises.py", RAISES),
                         ("matmul.py", MATMUL)):
        _write(ops / name, source)
    specs = tmp_path / "specs"
    _write(specs / "good.yaml", _spec("good.py", "Square"))
    _write(specs / "yaml_error.yaml",
           "module: ../ops/good.py\nfunctions:\n  Square:\n    inputs: [{shape: [3]}\n")
    _write(specs / "missing_module.yaml", _spec("nowhere.py", "Square"))
    _write(specs / "missing_function.yaml", _spec("good.py", "Sqaure"))
    _write(specs / "syntax_error.yaml", _spec("syntax_error.py", "Broken"))
    _write(specs / "raises.yaml", _spec("raises.py", "Anything"))
    # Last in the plan, so that the one worker of `-j 1` is replaced as seldom as possible.
    _write(specs / "zz_abort.yaml", _spec("abort.py", "Abort"))
    _write(specs / "zz_hang.yaml", _spec("hang.py", "Hang"))
    _write(specs / "shapes.yaml",
           _spec("matmul.py", "MatMul", "[{shape: [2, 3]}, {shape: [2, 3]}]"))
    return tmp_path


ITEMS = ("good", "yaml_error", "missing_module", "missing_function", "syntax_error", "raises",
         "zz_hang", "zz_abort", "shapes")


def _by_spec(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for result in doc["results"]:
        found.setdefault(result["spec"], []).append(result)
    return found


def _check_trouble(doc: dict[str, Any], timeout: int,
                   crash_checks: tuple[str, ...] = ("gradcheck", "gradgradcheck")) -> None:
    assert doc["_exit_code"] == 1
    by_spec = _by_spec(doc)
    assert set(by_spec) == {f"specs/{item}.yaml" for item in ITEMS}
    keys = [(r["spec"], r["function"], r["case"], r["device"], r["check"])
            for r in doc["results"]]
    assert len(keys) == len(set(keys)), "a result is reported twice"

    good = by_spec["specs/good.yaml"]
    assert [(r["function"], r["check"], r["status"]) for r in good] == [
        ("Square", "gradcheck", "passed"), ("Square", "gradgradcheck", "passed")]

    def one(item: str) -> dict[str, Any]:
        results = by_spec[f"specs/{item}.yaml"]
        assert len(results) == 1, [(r["function"], r["check"], r["message"]) for r in results]
        (result,) = results
        assert result["status"] == "error"
        assert result["check"] == "-"
        return result

    yaml_error = one("yaml_error")
    assert yaml_error["function"] is None
    assert yaml_error["location"].startswith("specs/yaml_error.yaml:")
    assert "YAML syntax error" in yaml_error["message"]

    missing_module = one("missing_module")
    assert missing_module["function"] is None
    assert "ops/nowhere.py" in missing_module["message"]
    assert "not found" in missing_module["message"]

    missing_function = one("missing_function")
    assert missing_function["function"] == "Sqaure"
    assert missing_function["location"] == "specs/missing_function.yaml:3"
    assert "`Sqaure` is not defined in ops/good.py" in missing_function["message"]
    assert "did you mean `Square`?" in missing_function["message"]

    syntax = one("syntax_error")
    assert syntax["function"] is None
    assert syntax["line"] == 7
    assert syntax["location"].startswith("ops/syntax_error.py:7")
    assert "syntax error" in syntax["message"]

    raises = one("raises")
    assert raises["function"] is None
    assert raises["location"] == "ops/raises.py:3"
    assert "importing the module raised RuntimeError: boom at import" in raises["message"]

    for item, function, reason, checks in (
            ("zz_hang", "Hang", f"timed out after {timeout}s", crash_checks),
            ("zz_abort", "Abort", "worker crashed (SIGABRT)", crash_checks),
            ("shapes", "MatMul", "shapes cannot be multiplied", ("gradcheck", "gradgradcheck"))):
        results = by_spec[f"specs/{item}.yaml"]
        assert [(r["function"], r["check"]) for r in results] == [
            (function, check) for check in checks], item
        for result in results:
            assert result["status"] == "error", (item, result["message"])
            assert reason in result["message"], (item, result["message"])
            assert result["reproduce"], item

    summary = doc["summary"]
    assert (summary["passed"], summary["failed"], summary["skipped"]) == (2, 0, 0)
    assert summary["error"] == len(doc["results"]) - 2


def test_done_when_folder_in_two_workers(trouble: Path, run_json: Any) -> None:
    started = time.monotonic()
    doc = run_json("specs", "--timeout", "10", "-j", "2", "--cache-dir", "cache", cwd=trouble,
                   in_process=False)
    elapsed = time.monotonic() - started
    _check_trouble(doc, timeout=10)
    assert elapsed < 50, f"took {elapsed:.1f}s"
    # The workers recorded the good spec's passes for the cache, and nothing else.
    entries = [json.loads(p.read_text()) for p in (trouble / "cache").rglob("*.json")
               if p.name != "durations.json"]  # what --shard weighs checks by
    assert sorted(e["result"]["check"] for e in entries) == ["gradcheck", "gradgradcheck"]
    assert {e["result"]["spec"] for e in entries} == {"specs/good.yaml"}
    assert all(str((trouble / "ops" / "good.py").resolve()) in e["deps"] for e in entries)
    # Not a terminal: no progress bar in the log.
    assert "checking" not in doc["_stderr"]


def test_done_when_folder_in_one_worker(trouble: Path, run_json: Any) -> None:
    # Serially every replacement worker costs a torch import: check the hang and the
    # abort once each here (their second check, requeued, is covered above).
    for name, function in (("hang", "Hang"), ("abort", "Abort")):
        _write(trouble / "specs" / f"zz_{name}.yaml",
               _spec(f"{name}.py", function) + "    checks: [gradcheck]\n")
    started = time.monotonic()
    doc = run_json("specs", "--timeout", "3", "-j", "1", "--no-cache", cwd=trouble,
                   in_process=False)
    elapsed = time.monotonic() - started
    _check_trouble(doc, timeout=3, crash_checks=("gradcheck",))
    assert elapsed < 50, f"took {elapsed:.1f}s"


def test_done_when_folder_table_names_every_reason(trouble: Path, run_cli: Any) -> None:
    # Only the quick items: the table must carry the same reasons as the JSON.
    for slow in ("zz_hang", "zz_abort"):
        (trouble / "specs" / f"{slow}.yaml").unlink()
    code, out, _ = run_cli("specs", cwd=trouble)
    assert code == 1
    assert "ERROR specs/missing_function.yaml::Sqaure" in out
    assert "did you mean `Square`?" in out
    assert "ops/raises.py:3: importing the module raised RuntimeError: boom at import" in out
    assert "ops/syntax_error.py:7" in out
    assert out.splitlines()[-1].startswith("2 passed, 7 error in ")


KILLERS = '''
import os

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


class Killed(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        os.kill(os.getpid(), 9)


class Exits(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        os._exit(3)
'''

KILLERS_SPEC = '''
module: killers.py
defaults:
  checks: [gradcheck]
functions:
  Square:
    inputs: [{shape: [3]}]
  Killed:
    inputs: [{shape: [3]}]
  Exits:
    inputs: [{shape: [3]}]
  After:
    inputs: [{shape: [3]}]
'''


def test_killed_and_exiting_workers_are_reported_and_replaced(tmp_path: Path,
                                                              run_json: Any) -> None:
    _write(tmp_path / "killers.py", KILLERS + "\n\nclass After(Square):\n    pass\n")
    _write(tmp_path / "spec.yaml", KILLERS_SPEC)
    doc = run_json("spec.yaml", "-j", "1", "--timeout", "60", "--no-cache", in_process=False)
    assert doc["_exit_code"] == 1
    got = [(r["function"], r["case"], r["check"], r["status"]) for r in doc["results"]]
    assert got == [
        ("Square", "default", "gradcheck", "passed"),
        ("Killed", "default", "gradcheck", "error"),
        ("Exits", "default", "gradcheck", "error"),
        ("After", "default", "gradcheck", "passed"),
    ]
    killed, exits = doc["results"][1:3]
    assert "worker crashed (SIGKILL)" in killed["message"]
    assert "worker exited with code 3" in exits["message"]
    assert killed["reproduce"] and exits["reproduce"]


# --- Ctrl-C -------------------------------------------------------------------------------

MARKED = '''
import os
from pathlib import Path

import torch


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        Path(os.environ["GRADCHECK_TEST_MARKER"]).write_text("started")
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g
'''


def _children(pid: int) -> set[int]:
    """Every live descendant of `pid`, from /proc (psutil is not a dependency)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _restore_sigint() -> None:
    # Background jobs start with SIGINT ignored; a user's terminal delivers it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_ctrl_c_reports_what_finished_and_leaves_no_workers(tmp_path: Path) -> None:
    _write(tmp_path / "ops" / "good.py", MARKED)
    _write(tmp_path / "ops" / "hang.py", HANG)
    _write(tmp_path / "specs" / "a_good.yaml", _spec("good.py", "Square"))
    _write(tmp_path / "specs" / "b_hang.yaml", _spec("hang.py", "Hang"))
    marker = tmp_path / "marker"
    env = {**os.environ, "GRADCHECK_TEST_MARKER": str(marker), "NO_COLOR": "1"}
    env.pop("PRE_COMMIT", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gradcheck_cli", "specs", "--format", "json", "-j", "2",
         "--timeout", "120", "--no-cache", "--device", "cpu"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_restore_sigint)
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the good op never ran"
            time.sleep(0.2)
        time.sleep(4)  # the good spec's two checks take well under a second
        workers = _children(proc.pid)
        assert workers, "no worker processes were running"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2, err
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)], "worker processes left behind"
    doc = json.loads(out)  # one valid document, though cut short
    # The checks that did not finish are listed as not run, so a report names them.
    got = [(r["spec"], r["function"], r["check"], r["status"]) for r in doc["results"]]
    assert got[:2] == [("specs/a_good.yaml", "Square", "gradcheck", "passed"),
                       ("specs/a_good.yaml", "Square", "gradgradcheck", "passed")]
    assert all(status == "skipped" for *_, status in got[2:]) and got[2:]
    assert {r["message"] for r in doc["results"][2:]} == {
        "not run: the run was interrupted (Ctrl-C)"}
    assert doc["summary"]["passed"] == 2
    assert doc["summary"]["error"] == 0
    assert doc["summary"]["exit_code"] == 2



HANG_AT_IMPORT = '''
# torch.autograd.Function ops, once this import finishes
import time

while True:
    time.sleep(1)
'''


def test_a_py_file_that_hangs_at_import_times_out(tmp_path: Path) -> None:
    """A bare .py (no spec: its Functions are found by importing it in a worker) that hangs.

    BUG: the run never ends. `worker.run_job_here` sends no Importing message before a
    discovery import, so `WorkerPool` sets no deadline for that job and `--timeout` never
    fires. (A spec naming the same module times out as it should.)
    """
    _write(tmp_path / "hang_import.py", HANG_AT_IMPORT)
    _write(tmp_path / "ops" / "good.py", GOOD)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gradcheck_cli", "hang_import.py", "ops/good.py", "--timeout",
         "2", "-j", "2", "--no-cache", "--device", "cpu", "--format", "json"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("still running after 30s with --timeout 2: the import hang never timed out")
    assert proc.returncode == 1, err
    doc = json.loads(out)
    assert [(r["module"], r["function"], r["status"]) for r in doc["results"]] == [
        ("hang_import.py", None, "error"), ("ops/good.py", "Square", "passed"),
        ("ops/good.py", "Square", "passed")]
    assert "timed out after 2s while importing" in doc["results"][0]["message"]


def test_the_fork_servers_quick_exit_is_only_the_fork_servers() -> None:
    """preload skips the interpreter's teardown in the fork server only: imported anywhere
    else, the process keeps its own exit status."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys, gradcheck_cli.preload; sys.exit(3)"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr


def test_the_worker_server_starts_before_the_cuda_question_imports_torch(
        tmp_path: Path, write_op: Any, write_spec: Any, run_json: Any,
        monkeypatch: Any) -> None:
    """Where /dev cannot tell whether CUDA is there, planning imports torch to ask: the
    workers' fork server is started first, so that both imports of torch overlap. Where
    nothing needs to run (all cached), it is never started."""
    import torch

    from gradcheck_cli.execution import plan, pool

    write_op(GOOD, "ok.py")
    write_spec({"module": "ok.py", "functions": {"Square": {"inputs": [{"shape": [3]}]}}})
    events: list[str] = []
    real_start = pool.start_server
    real_available = torch.cuda.is_available
    monkeypatch.setattr(pool, "start_server", lambda: (events.append("server"), real_start()))
    monkeypatch.setattr(torch.cuda, "is_available",
                        lambda: (events.append("cuda asked"), real_available())[1])
    # A machine where /dev cannot tell, so torch must be asked.
    monkeypatch.setattr(plan, "nvidia_nodes_absent", lambda: False)
    plan.forget_cuda_answer()
    try:
        doc = run_json("spec.yaml", "-j", "1", "--cache-dir", str(tmp_path / "cache"),
                       cpu_only=False, in_process=False)
        assert events[:2] == ["server", "cuda asked"]
        statuses = {(r["device"], r["check"]): r["status"] for r in doc["results"]}
        assert statuses[("cpu", "gradcheck")] == "passed"
        # The default devices are the ones torch's answer allows.
        assert (("cuda", "gradcheck") in statuses) == torch_cuda()
        events.clear()
        plan.forget_cuda_answer()
        again = run_json("spec.yaml", "--device", "cpu", "-j", "1", "--cache-dir",
                         str(tmp_path / "cache"), cpu_only=False, in_process=False)
        assert {r["status"] for r in again["results"]} == {"passed"}
        assert all(r.get("cached") for r in again["results"])
        assert events == []
    finally:
        plan.forget_cuda_answer()


def torch_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def test_progress_total_of_a_bare_py_is_its_checks(tmp_path: Path) -> None:
    """A .py whose Functions are found first counts once until found, then as its checks:
    the progress bar ends at the number of results (it stops when done reaches the total)."""
    from gradcheck_cli.execution.runner import run
    from gradcheck_cli.settings import RunOptions
    from gradcheck_cli.specs.collect import collect

    (tmp_path / "ops.py").write_text(GOOD)
    seen: list[tuple[int, int]] = []
    options = RunOptions(devices=("cpu",), jobs=0, cache_dir=None)
    items, _ = collect([str(tmp_path / "ops.py")])
    outcome = run(items, options,
                  on_result=lambda result, done, total: seen.append((done, total)))
    assert len(outcome.results) == 2
    assert seen[-1] == (2, 2)
