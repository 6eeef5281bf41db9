"""The Python API and the one error path: what `gradcheck_cli` offers to code, and exit 3."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gradcheck_cli.cli import main
from gradcheck_cli.errors import ExitCode

GOOD = '''
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


class Wrong(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return 3 * x * grad_output
'''


def test_importing_the_package_does_not_import_torch() -> None:
    code = ("import sys, gradcheck_cli; gradcheck_cli.make_settings; "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "False"


def test_run_checks_paths_and_returns_the_report(tmp_path: Path, write_op: Any,
                                                  write_spec: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import gradcheck_cli

    write_op(GOOD, "ops.py")
    write_spec({"module": "ops.py", "functions": {"Square": {"inputs": [{"shape": [3]}]},
                                                   "Wrong": {"inputs": [{"shape": [3]}]}}})
    monkeypatch.chdir(tmp_path)
    settings = gradcheck_cli.make_settings(devices=("cpu",), checks=("gradcheck",), jobs=0,
                                           cache=False)
    report = gradcheck_cli.run(["spec.yaml"], settings)
    statuses = {(r.function, r.check): r.status.value for r in report.results}
    assert statuses == {("Square", "gradcheck"): "passed", ("Wrong", "gradcheck"): "failed"}
    assert report.exit_code is ExitCode.FAILED
    wrong = next(r for r in report.results if r.function == "Wrong")
    assert [e.name for e in wrong.inputs if not e.passed] == ["x"]


def test_api_nothing_collected_is_exit_5_unless_allowed(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import gradcheck_cli

    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PRE_COMMIT", raising=False)
    report = gradcheck_cli.run(["empty"], gradcheck_cli.make_settings(jobs=0, cache=False))
    assert report.exit_code is ExitCode.NO_CHECKS
    allowed = gradcheck_cli.make_settings(jobs=0, cache=False, allow_empty=True)
    assert gradcheck_cli.run(["empty"], allowed).exit_code is ExitCode.OK


def test_an_internal_error_writes_a_crash_log_and_exits_3(
        tmp_path: Path, write_op: Any, write_spec: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from gradcheck_cli import api

    write_op(GOOD, "ops.py")
    write_spec({"module": "ops.py", "functions": {"Square": {"inputs": [{"shape": [3]}]}}})
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(api, "run_items", broken)
    code = main(["spec.yaml", "--device", "cpu", "-j", "0", "--no-cache"])
    err = capsys.readouterr().err
    assert code == ExitCode.INTERNAL_ERROR == 3
    log = tmp_path / ".gradcheck_cache" / "gradcheck-cli.log"
    assert "unexpected error: RuntimeError: a bug of ours" in err
    assert f"the details are in {log}" in err
    text = log.read_text(encoding="utf-8")
    assert "gradcheck-cli: 0." in text and "python: 3." in text and "torch: " in text
    assert "command: gradcheck-cli spec.yaml --device cpu -j 0 --no-cache" in text
    assert "Traceback (most recent call last)" in text and "RuntimeError: a bug of ours" in text


def test_exit_codes_are_one_enum() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 5, 129, 143]


@pytest.mark.parametrize(("flag", "value"), [("--atol", "nan"), ("--rtol", "inf"),
                                             ("--eps", "nan")])
def test_non_finite_tolerances_on_the_command_line_are_usage_errors(
        flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    """NaN accepts every error and inf everything: neither can mean a pass."""
    assert main(["specs/", flag, value]) == ExitCode.USAGE_ERROR
    assert f"`{flag[2:]}` must be a finite number, not {value}" in capsys.readouterr().err


def test_a_seed_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """torch cannot seed with it: every check would be an error blamed on nothing."""
    assert main(["specs/", "--seed", str(1 << 70)]) == ExitCode.USAGE_ERROR
    assert f"`seed` {1 << 70} is out of range" in capsys.readouterr().err
