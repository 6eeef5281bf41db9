"""SIGTERM and SIGHUP (a CI cancel, `timeout`, a closed terminal) end a run as Ctrl-C does:
what finished is printed, the JUnit file lists the unfinished checks as skipped, the exit
code is 128 + the signal, and no process of the run is left behind, even one the op began."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

OPS = '''
import os
import subprocess
from pathlib import Path

import torch


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return 2 * x * grad_output


class Spins(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        subprocess.Popen(["sleep", "300"])
        Path(os.environ["GRADCHECK_TEST_MARKER"]).write_text("started")
        while True:
            pass

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output
'''

SPEC = '''
module: ops.py
defaults: {devices: [cpu]}
functions:
  Square: {inputs: [{shape: [3]}]}
  Spins: {inputs: [{shape: [3]}]}
'''


def _ours(marker: str) -> list[int]:
    """The processes whose environment carries this test's marker (the run's, the op's)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _wait_gone(marker: str, seconds: float = 10.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := _ours(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _output(folder: Path) -> tuple[str, str]:
    return ((folder / "out.txt").read_text(encoding="utf-8"),
            (folder / "err.txt").read_text(encoding="utf-8"))


def _start(tmp_path: Path, jobs: str) -> tuple[subprocess.Popen[str], Path, str]:
    (tmp_path / "ops.py").write_text(textwrap.dedent(OPS), encoding="utf-8")
    (tmp_path / "spec.yaml").write_text(textwrap.dedent(SPEC), encoding="utf-8")
    marker = tmp_path / "started"
    tag = f"GRADCHECK_SIGNAL_TEST_{os.getpid()}_{tmp_path.name}"
    env = {**os.environ, "GRADCHECK_TEST_MARKER": str(marker), tag: "1", "COLUMNS": "120"}
    # Files, not pipes: after a SIGKILL the op's `sleep` may hold them open.
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.Popen(
            # Exact mode: a status without "(reference)" leaves the skip reason one line.
            [sys.executable, "-m", "gradcheck_cli", "spec.yaml", "-j", jobs, "--no-cache",
             "--junit-xml", "report.xml", "--mode", "exact"],
            cwd=tmp_path, env=env, stdout=out, stderr=err, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, _output(tmp_path)
        assert time.monotonic() < deadline, "the op never started"
        time.sleep(0.05)
    return proc, tmp_path / "report.xml", f"{tag}=1"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("jobs", ["0", "1"])
@pytest.mark.parametrize(("signum", "code", "name"),
                         [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP")])
def test_a_signal_reports_what_finished_and_leaves_nothing(
        tmp_path: Path, jobs: str, signum: int, code: int, name: str) -> None:
    proc, junit, marker = _start(tmp_path, jobs)
    try:
        proc.send_signal(signum)
        proc.wait(timeout=30)
        out, err = _output(tmp_path)
    finally:
        left = _wait_gone(marker)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode == code, (out, err)
    assert "Traceback" not in out + err
    assert left == [], "processes of the run were left behind"
    rows = [line.split() for line in out.splitlines() if line.startswith("spec.yaml")]
    assert [(r[1], r[4], r[5]) for r in rows] == [
        ("Square", "gradcheck", "passed"), ("Square", "gradgradcheck", "passed"),
        ("Spins", "gradcheck", "skipped"), ("Spins", "gradgradcheck", "skipped")]
    assert f"not run: the run was interrupted ({name})" in out
    assert "2 passed, 2 skipped in" in out and f"(interrupted by {name})" in out
    cases = ET.parse(junit).getroot().iter("testcase")
    skipped = [case.find("skipped") for case in cases]
    assert [s.get("message") if s is not None else None for s in skipped] == [
        None, None, f"not run: the run was interrupted ({name})",
        f"not run: the run was interrupted ({name})"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and /proc")
def test_workers_and_the_fork_server_die_with_a_killed_run(tmp_path: Path) -> None:
    """SIGKILL (the OOM killer, `kill -9`) gives the run no chance to clean up: its fork
    server and its workers, stuck in the user's loop, must still go (a `sleep` the op
    started in the worker's group may stay: nothing is left to end it)."""
    proc, _, marker = _start(tmp_path, "1")
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    pythons: list[int] = []
    while time.monotonic() < deadline:
        pythons = [pid for pid in _ours(marker)
                   if b"python" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        if not pythons:
            break
        time.sleep(0.1)
    for pid in _ours(marker):
        os.kill(pid, signal.SIGKILL)
    assert pythons == [], "a worker, the fork server or the resource tracker outlived the run"


THREAD_OPS = '''
import threading
import time

import torch

threading.Thread(target=lambda: time.sleep(300)).start()


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return 2 * x * grad_output
'''


@pytest.mark.parametrize("jobs", ["0", "1"])
def test_a_thread_the_op_started_does_not_keep_the_run_alive(tmp_path: Path, jobs: str
                                                             ) -> None:
    """A non-daemon thread started at import kept an in-process run from exiting."""
    (tmp_path / "ops.py").write_text(THREAD_OPS, encoding="utf-8")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gradcheck_cli", "ops.py", "-j", jobs,
                           "--no-cache", "--device", "cpu"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "2 passed" in proc.stdout
    assert time.monotonic() - started < 60


def test_the_command_line_in_process_puts_the_callers_handlers_back() -> None:
    """A test (or a script) calling `main([...])` keeps its own SIGTERM and SIGHUP."""
    from gradcheck_cli.cli import main

    before = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)]
    assert main(["--version"]) == 0
    assert [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)] == before
