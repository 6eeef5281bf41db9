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


BUGGY = GOOD.replace("return 2 * x * g", "return 3 * x * g")


def _commit(repo: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`git commit` with the hook installed, as a user commits."""
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pc-home")}
    env.pop("PRE_COMMIT", None)
    return subprocess.run(["git", "commit", "-q", "-m", "add op"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)


def test_a_flat_repository_commits_a_correct_op_with_its_init_spec_and_blocks_a_buggy_one(
        tmp_path: Path) -> None:
    """No specs/ folder: `init op.py` writes op.yaml beside it, the hook given op.py uses that
    spec; a correct op commits, a buggy one is blocked."""
    repo = tmp_path / "flat"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.invalid")
    _git(repo, "config", "user.name", "t")
    (repo / ".pre-commit-config.yaml").write_text(LOCAL_HOOK)
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pc-home")}
    subprocess.run(["pre-commit", "install"], cwd=repo, env=env, check=True,
                   capture_output=True)
    (repo / "op.py").write_text(GOOD)
    init = subprocess.run([sys.executable, "-m", "gradcheck_cli", "init", "op.py"], cwd=repo,
                          capture_output=True, text=True, timeout=300)
    assert init.returncode == 0, init.stderr
    assert (repo / "op.yaml").is_file()
    _git(repo, "add", "-A")
    good = _commit(repo, tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr

    (repo / "op.py").write_text(BUGGY)
    _git(repo, "add", "op.py")
    bad = _commit(repo, tmp_path)
    assert bad.returncode != 0
    assert "op.yaml::Square[cpu-gradcheck]" in bad.stdout + bad.stderr
