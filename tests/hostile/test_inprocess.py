"""In-process runs (-j 0, init's trial): the user's exits and interrupts are that check's error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

OPS = '''import sys

import torch


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 2 * x


class ExitsInForward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        sys.exit(0)

    @staticmethod
    def backward(ctx, grad):
        return grad


class ExitsInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1

    @staticmethod
    def backward(ctx, grad):
        raise SystemExit(3)


class GeneratorExitInForward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        raise GeneratorExit

    @staticmethod
    def backward(ctx, grad):
        return grad


class InterruptsInForward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        raise KeyboardInterrupt("from forward")

    @staticmethod
    def backward(ctx, grad):
        return grad


class InterruptsInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1

    @staticmethod
    def backward(ctx, grad):
        raise KeyboardInterrupt
'''

NAMES = ["ExitsInForward", "ExitsInBackward", "GeneratorExitInForward", "InterruptsInForward",
         "InterruptsInBackward", "Square"]
RAISED = {
    "ExitsInForward": ("SystemExit(0)", "sys.exit(0)"),
    "ExitsInBackward": ("SystemExit(3)", "raise SystemExit(3)"),
    "GeneratorExitInForward": ("GeneratorExit()", "raise GeneratorExit"),
    "InterruptsInForward": ("KeyboardInterrupt('from forward')",
                            'raise KeyboardInterrupt("from forward")'),
    "InterruptsInBackward": ("KeyboardInterrupt()", "raise KeyboardInterrupt"),
}


def _line_of(source: str, text: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if line.strip() == text)


def _project(tmp_path: Path) -> None:
    (tmp_path / "ops.py").write_text(OPS)
    functions = "".join(f"  {name}: {{inputs: [{{shape: [3]}}], checks: [gradcheck]}}\n"
                        for name in NAMES)
    (tmp_path / "ops.yaml").write_text("module: ops.py\nfunctions:\n" + functions)


@pytest.mark.parametrize("jobs", ["0", "1"])
def test_exits_and_interrupts_from_user_code_are_errors(tmp_path: Path, run_json: Any,
                                                       jobs: str) -> None:
    _project(tmp_path)
    doc = run_json("ops.yaml", "-j", jobs, in_process=jobs == "0")
    assert doc["_exit_code"] == 1
    got = [(r["function"], r["status"]) for r in doc["results"]]
    assert got == [(name, "error") for name in NAMES[:-1]] + [("Square", "passed")]
    for result in doc["results"][:-1]:
        raised, text = RAISED[result["function"]]
        line = _line_of(OPS, text)
        assert result["message"].startswith(
            f"ops.py:{line}: the user's code raised {raised}: "), result["message"]
        assert result["location"] == f"ops.py:{line}", result["location"]


@pytest.mark.parametrize("raised", ["sys.exit(0)", "raise KeyboardInterrupt",
                                    "raise GeneratorExit"])
def test_exit_at_import_is_that_modules_error(tmp_path: Path, run_json: Any,
                                              raised: str) -> None:
    _project(tmp_path)
    (tmp_path / "bad.py").write_text(f"import sys\n\n{raised}\n")
    (tmp_path / "bad.yaml").write_text(
        "module: bad.py\nfunctions:\n  Square: {inputs: [{shape: [2]}]}\n")
    doc = run_json("bad.yaml", "ops.yaml", "-k", "Square", "-j", "0")
    bad, *rest = doc["results"]
    assert bad["status"] == "error"
    assert bad["location"] == "bad.py:3", bad
    assert [(r["function"], r["check"], r["status"]) for r in rest] == [
        ("Square", "gradcheck", "passed")]


LOOP = '''import torch


class Loop(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        while True:
            try:
                x = x + 0
            except Exception:
                pass

    @staticmethod
    def backward(ctx, grad):
        return grad
'''


def test_real_ctrl_c_in_a_looping_forward_still_stops_the_run(tmp_path: Path) -> None:
    """The interrupt lands in the user's own loop: it is still Ctrl-C (exit 2)."""
    (tmp_path / "loop.py").write_text(LOOP)
    (tmp_path / "loop.yaml").write_text(
        "module: loop.py\nfunctions:\n  Loop: {inputs: [{shape: [2]}]}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gradcheck_cli", "loop.yaml", "-j", "0", "--no-cache",
         "--device", "cpu"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    time.sleep(6)  # torch imported, the check spinning in forward
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("Ctrl-C did not stop the run")
    assert proc.returncode == 2, (out, err)
    assert "Traceback" not in err


def test_init_trial_of_a_looping_forward_times_out(tmp_path: Path) -> None:
    (tmp_path / "loop.py").write_text(LOOP)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gradcheck_cli", "init", "loop.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 60
    spec = (tmp_path / "loop.yaml").read_text()
    assert ("# TODO: with these shapes forward/backward raised TimeoutError: forward/backward "
            "still running after 20s, the limit for a trial run (a loop that never ends?)"
            ) in spec


def test_pytest_plugin_items_that_exit_fail_and_the_session_goes_on(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plugin runs checks in pytest's own process: sys.exit(0) in forward is that
    item's failure, not the end of the session (nor a passing exit 0)."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makefile(".py", ops=OPS)
    functions = "".join(f"  {name}: {{inputs: [{{shape: [3]}}], checks: [gradcheck]}}\n"
                        for name in NAMES)
    pytester.makefile(".yaml", gradcheck_ops="module: ops.py\nfunctions:\n" + functions)
    result = pytester.runpytest_subprocess("--gradcheck-device", "cpu", "-rf")
    result.assert_outcomes(passed=1, failed=5)
    out = result.stdout.str()
    assert "the user's code raised SystemExit(0)" in out
    assert "the user's code raised KeyboardInterrupt('from forward')" in out
