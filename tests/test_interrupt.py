"""Ctrl-C at any moment: what finished is reported, exit 2, no traceback on either stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

OPS = '''
import os
import time
from pathlib import Path

import torch


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        Path(os.environ["GRADCHECK_TEST_MARKER"]).write_text("started")
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return 2 * x * grad_output


class Slow(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        time.sleep(60)
        return x

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output
'''

SPEC = '''
module: ops.py
defaults: {devices: [cpu]}
functions:
  Square: {inputs: [{shape: [3]}]}
  Slow: {inputs: [{shape: [3]}]}
'''


def _restore_sigint() -> None:
    # Background jobs start with SIGINT ignored; a user's terminal delivers it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(folder: Path, when: float | str) -> tuple[int, str, str]:
    marker = folder / "marker"
    marker.unlink(missing_ok=True)
    env = {**os.environ, "GRADCHECK_TEST_MARKER": str(marker), "NO_COLOR": "1"}
    env.pop("PRE_COMMIT", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gradcheck_cli", "spec.yaml", "-j", "2", "--no-cache"],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_restore_sigint)
    try:
        if when == "mid-run":
            deadline = time.monotonic() + 90
            while not marker.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.5)  # Square's checks finish; Slow's forward is asleep
        else:
            assert isinstance(when, float)
            time.sleep(when)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or sys.platform == "win32",
                    reason="needs POSIX signals")
@pytest.mark.parametrize("when", [0.2, 1.0, "mid-run"])
def test_ctrl_c_at_any_moment_exits_2_without_a_traceback(tmp_path: Path,
                                                         when: float | str) -> None:
    (tmp_path / "ops.py").write_text(textwrap.dedent(OPS).lstrip(), encoding="utf-8")
    (tmp_path / "spec.yaml").write_text(textwrap.dedent(SPEC).lstrip(), encoding="utf-8")
    code, out, err = _interrupt(tmp_path, when)
    if isinstance(when, float) and "gradcheck_cli" not in err and (
            "<frozen site>" in err or "init_import_site" in err):
        # The signal landed in the interpreter's own start-up (site.py) on a slow machine,
        # before any code of ours ran: try again a little later.
        code, out, err = _interrupt(tmp_path, when + 0.3)
    assert code == 2, (out, err)
    assert "Traceback" not in out and "Traceback" not in err, (out, err)
    assert "Error" not in err, err
    if when == "mid-run":
        assert "Square" in out and "passed" in out
        assert "(interrupted)" in out.splitlines()[-1]


def test_ctrl_c_wrapped_by_python_is_still_an_interrupt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A KeyboardInterrupt raised inside a class body's __set_name__ (a dataclass being
    built while a module imports) reaches us as a RuntimeError: not an internal error."""
    from gradcheck_cli import api
    from gradcheck_cli.cli import main

    def wrapped(*args: object, **kwargs: object) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise RuntimeError("Error calling __set_name__ on 'Field' instance") from exc

    (tmp_path / "spec.yaml").write_text("module: ops.py\nfunctions: {}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(api, "collect", wrapped)
    assert main(["spec.yaml"]) == 2
    err = capsys.readouterr().err
    assert err == "interrupted\n"
    assert not (tmp_path / ".gradcheck_cache" / "gradcheck-cli.log").exists()
