"""The pre-commit hook, run for real by pre-commit in a scratch git repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("pre-commit") is None or shutil.which("git") is None,
                                reason="pre-commit and git are needed")

GOOD = textwrap.dedent("""
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
""")

LOCAL_HOOK = textwrap.dedent(f"""
    repos:
      - repo: local
        hooks:
          - id: gradcheck
            name: gradcheck
            entry: {sys.executable} -m gradcheck_cli
            language: system
            types_or: [python, yaml]
            require_serial: true
""")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "specs").mkdir(parents=True)
    (repo / "ops").mkdir()
    (repo / "ops" / "square.py").write_text(GOOD)
    (repo / "specs" / "square.yaml").write_text(
        "module: ../ops/square.py\nfunctions:\n  Square:\n    inputs:\n      - {shape: [3]}\n")
    (repo / "notes.yaml").write_text("title: not a spec\nitems: [1, 2]\n")
    (repo / "script.py").write_text("print('no Functions here')\n")
    (repo / ".pre-commit-config.yaml").write_text(LOCAL_HOOK)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.invalid")
    _git(repo, "config", "user.name", "t")
    _git(repo, "add", "-A")
    return repo


def _pre_commit(repo: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pc-home"),
           "GRADCHECK_CLI_TEST": "1"}
    return subprocess.run(["pre-commit", "run", "--all-files"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)


def test_local_hook_passes_on_a_correct_op(repo: Path, tmp_path: Path) -> None:
    proc = _pre_commit(repo, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "gradcheck" in proc.stdout and "Passed" in proc.stdout


def test_local_hook_fails_on_a_broken_backward(repo: Path, tmp_path: Path) -> None:
    (repo / "ops" / "square.py").write_text(GOOD.replace("2 * x * g", "x * g"))
    _git(repo, "add", "-A")
    proc = _pre_commit(repo, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Failed" in proc.stdout
    assert "Square" in proc.stdout and "gradcheck" in proc.stdout
    assert "x: scale" in proc.stdout  # the diagnosis reaches the hook's output


def test_hook_with_nothing_to_check_passes(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    (repo / "script.py").write_text("print('hello')\n")
    (repo / ".pre-commit-config.yaml").write_text(LOCAL_HOOK)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    proc = _pre_commit(repo, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
