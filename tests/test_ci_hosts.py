"""CI output that fits each host: GitHub's annotation cap and job summary, -q/-qq,
FORCE_COLOR on a pipe, and -j 0 with one torch thread."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gradcheck_cli.report import github
from gradcheck_cli.results import CheckResult, Status

OPS = '''
import os

import torch


def _note_threads():
    path = os.environ.get("GRADCHECK_TEST_THREADS")
    if path:
        with open(path, "a") as out:
            out.write(f"{torch.get_num_threads()}\\n")


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        _note_threads()
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class Wrong(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * g
'''

SPEC = '''
module: ops.py
defaults: {devices: [cpu], checks: [gradcheck]}
functions:
  Square:
    inputs: [{shape: [3], name: a_rather_long_input_name_for_a_wide_table_row}]
  Wrong:
    inputs: [{shape: [3]}]
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("PRE_COMMIT", raising=False)
    (tmp_path / "ops.py").write_text(textwrap.dedent(OPS).lstrip(), encoding="utf-8")
    (tmp_path / "spec.yaml").write_text(textwrap.dedent(SPEC).lstrip(), encoding="utf-8")
    return tmp_path


def _failed(i: int) -> CheckResult:
    return CheckResult(module="ops.py", spec=f"specs/op{i:02d}.yaml", function=f"Op{i:02d}",
                       case="default", device="cpu", check="gradcheck", status=Status.FAILED,
                       message="gradient of `x` is wrong", line=3)


def test_github_shows_ten_annotations_per_level_the_rest_in_one() -> None:
    assert len(github.annotations([_failed(i) for i in range(10)])) == 10
    commands = github.annotations([_failed(i) for i in range(25)]
                                  + [CheckResult(module="ops.py", spec=None, function="Ok",
                                                 case="default", device="cpu",
                                                 check="gradcheck", status=Status.PASSED)])
    assert len(commands) == github.LIMIT == 10
    assert all(c.startswith("::error file=ops.py,line=3,") for c in commands[:9])
    assert "Op08" in commands[8]
    rest = commands[9]
    assert rest.startswith("::error title=gradcheck-cli%3A 16 more::16 more failed or errored "
                           "checks, not annotated (GitHub shows 10 per step): "
                           "specs/op09.yaml::Op09[cpu-gradcheck], ")
    assert rest.endswith("specs/op24.yaml::Op24[cpu-gradcheck]%0Athe log and the job summary "
                         "have them all")
    many = github.annotations([_failed(i) for i in range(50)])
    assert many[-1].count("::Op") == github.LISTED and "and 11 more" in many[-1]


def test_the_job_summary_has_the_failures_and_their_reproduce_commands(
        project: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = project / "step_summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, err = run_cli("spec.yaml", "--format", "github")
    assert code == 1, err
    assert "::error file=ops.py," in out
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n### gradcheck-cli: 1 passed, 1 failed in ")
    assert "| spec.yaml | Wrong | default | cpu | gradcheck | ❌ failed" in text
    assert "| Square |" not in text  # failures only
    assert ("gradcheck-cli spec.yaml --function Wrong --case default --device cpu "
            "--check gradcheck --seed 0") in text
    # Other formats leave it alone; a summary that cannot be written is a warning.
    run_cli("spec.yaml", "--format", "table")
    assert summary.read_text(encoding="utf-8") == text
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(project / "missing" / "summary.md"))
    code, out, err = run_cli("spec.yaml", "--format", "github")
    assert code == 1 and "::error" in out
    assert "warning: cannot write the job summary to" in err


def test_quiet_shows_only_failures_and_the_summary_line(project: Path, run_cli: Any) -> None:
    code, full, _ = run_cli("spec.yaml")
    code_q, quiet, _ = run_cli("spec.yaml", "-q")
    code_qq, quieter, _ = run_cli("spec.yaml", "-qq")
    assert code == code_q == code_qq == 1
    assert "Square" in full and "Square" not in quiet
    assert "FAILED spec.yaml::Wrong[cpu-gradcheck] (seed 0)" in quiet
    rows = [line for line in quiet.splitlines() if line.startswith("spec.yaml")]
    assert len(rows) == 1 and " Wrong " in rows[0]
    assert quiet.splitlines()[-1].startswith("1 passed, 1 failed in ")
    assert len(quieter.splitlines()) == 1
    assert re.fullmatch(r"1 passed, 1 failed in \d+\.\d\ds\n", quieter)
    # A passing run under -q is its summary line alone.
    code, out, _ = run_cli("spec.yaml", "-k", "Square", "-q")
    assert code == 0 and re.fullmatch(r"1 passed in \d+\.\d\ds\n", out)


def _plain_cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("COLUMNS", "NO_COLOR", "GITHUB_STEP_SUMMARY")}
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "gradcheck_cli", *args], cwd=cwd,
                          env=environ, capture_output=True, text=True, timeout=300,
                          check=False)


def test_force_color_on_a_pipe_keeps_the_width(project: Path) -> None:
    done = _plain_cli(project, "spec.yaml", "-j", "0", "--no-cache", "--device", "cpu",
                      FORCE_COLOR="1", TERM="xterm-256color")
    assert done.returncode == 1, done.stderr
    assert "\x1b[" in done.stdout
    plain = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)
    row = next(line for line in plain.splitlines() if "a_rather_long_input_name" in line)
    assert len(row) > 80 and "Square" in row  # one row, as at 120 columns, not cut to 80


def test_in_process_runs_use_one_torch_thread_and_put_the_count_back(
        project: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    notes = project / "threads"
    done = _plain_cli(project, "spec.yaml", "-k", "Square", "-j", "0", "--no-cache",
                      GRADCHECK_TEST_THREADS=str(notes), OMP_NUM_THREADS="2")
    assert done.returncode == 0, done.stderr
    assert set(notes.read_text().split()) == {"1"}
    # In this process: the caller's count is put back after the run.
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        code, _, err = run_cli("spec.yaml", "-k", "Square")
        assert code == 0, err
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_json_reports_carry_the_schema(project: Path, run_json: Any) -> None:
    doc = run_json("spec.yaml")
    assert (doc["schema"], doc["shard"]) == (1, None)
    assert {k: doc["summary"][k] for k in ("interrupted", "signal", "selection_error",
                                           "merged")} == {
        "interrupted": False, "signal": None, "selection_error": None, "merged": 0}
    json.dumps(doc)
