"""What one Function does never reaches beyond its check: torch's global state, child processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

OPS = '''
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


class WrongSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3 * x


class DetachedSquare(torch.autograd.Function):
    """Right first derivative, wrong second: backward detaches x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 2 * x.detach()
'''

POLLUTERS = {
    "grad_off": "torch.set_grad_enabled(False)",
    "dtype": "torch.set_default_dtype(torch.float16)",
    "grad_patched": ("torch.autograd.grad = lambda outputs, inputs, *a, **k: "
                     "tuple(torch.zeros_like(i) for i in inputs)"),
    "anomaly": "torch.autograd.set_detect_anomaly(True, check_nan=False)",
    "deterministic": "torch.use_deterministic_algorithms(True, warn_only=True)",
    "threads": "torch.set_num_threads(3)",
    "rng": "torch.manual_seed(1234)",
    # A method that torch.Tensor inherits from TensorBase, shadowed on torch.Tensor.
    "tensor_method": "torch.Tensor.__mul__ = lambda a, b: torch.add(a, b)",
}

POLLUTER = '''import torch

{line}


class Cube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3 * x ** 2
'''

EXPECTED = [
    ("Square", "gradcheck", "passed"),
    ("Square", "gradgradcheck", "passed"),
    ("WrongSquare", "gradcheck", "failed"),
    ("WrongSquare", "gradgradcheck", "passed"),
    ("DetachedSquare", "gradcheck", "passed"),
    ("DetachedSquare", "gradgradcheck", "failed"),
]


def _project(tmp_path: Path, line: str) -> Path:
    (tmp_path / "ops").mkdir()
    (tmp_path / "specs").mkdir()
    (tmp_path / "ops" / "ops.py").write_text(OPS)
    (tmp_path / "ops" / "polluter.py").write_text(POLLUTER.format(line=line))
    (tmp_path / "specs" / "a_polluter.yaml").write_text(
        "module: ../ops/polluter.py\nfunctions:\n  Cube: {inputs: [{shape: [3]}]}\n")
    functions = "".join(f"  {name}: {{inputs: [{{shape: [3]}}]}}\n"
                        for name in ("Square", "WrongSquare", "DetachedSquare"))
    (tmp_path / "specs" / "b_ops.yaml").write_text(
        "module: ../ops/ops.py\nfunctions:\n" + functions)
    return tmp_path


def _verdicts(doc: dict[str, Any], spec: str) -> list[tuple[str, str, str]]:
    return [(r["function"], r["check"], r["status"]) for r in doc["results"]
            if r["spec"] == spec]


# In process every kind; in one worker (slower) the three the issue names.
RUNS = [(kind, "0") for kind in sorted(POLLUTERS)] + [
    (kind, "1") for kind in ("grad_off", "grad_patched", "dtype", "tensor_method")]


@pytest.mark.parametrize(("kind", "jobs"), RUNS)
def test_state_changed_at_import_does_not_leak(tmp_path: Path, run_json: Any, kind: str,
                                               jobs: str) -> None:
    import torch

    threads = torch.get_num_threads()
    _project(tmp_path, POLLUTERS[kind])
    doc = run_json("specs", "-j", jobs, "--no-cache", in_process=jobs == "0")
    assert _verdicts(doc, "specs/b_ops.yaml") == EXPECTED, doc["results"]
    cube = [r for r in doc["results"] if r["spec"] == "specs/a_polluter.yaml"]
    assert [(r["function"], r["check"], r["status"]) for r in cube] == [
        ("Cube", "gradcheck", "passed"), ("Cube", "gradgradcheck", "passed")], cube
    if kind == "rng":
        # Every check seeds itself: a seed at import changes no verdict, and is not noted.
        assert all("warning" not in r["message"] for r in cube)
    else:
        for result in cube:
            assert "warning: importing ops/polluter.py changed torch's global state" in (
                result["message"]), result["message"]
            assert "(ops/polluter.py:3)" in result["message"], result["message"]
    # Nor does it leak into this process (the -j 0 run happened here).
    assert torch.is_grad_enabled()
    assert torch.get_default_dtype() is torch.float32
    assert torch.autograd.grad.__module__ == "torch.autograd"
    assert not torch.is_anomaly_enabled()
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads
    assert "__mul__" not in vars(torch.Tensor)


def test_warning_names_what_changed(tmp_path: Path, run_json: Any) -> None:
    _project(tmp_path, "torch.set_grad_enabled(False)\n"
                       "torch.autograd.grad = lambda *a, **k: None")
    doc = run_json("specs/a_polluter.yaml", "--check", "gradcheck")
    (cube,) = doc["results"]
    assert cube["status"] == "passed"
    assert cube["message"] == (
        "warning: importing ops/polluter.py changed torch's global state: grad mode on -> off "
        "(ops/polluter.py:3), torch.autograd.grad replaced (ops/polluter.py:4); gradcheck-cli "
        "put it back before each check, so these results do not depend on it, but code that "
        "imports this module does")


def test_inference_mode_left_on_retires_the_worker(tmp_path: Path, run_json: Any) -> None:
    """Inference mode entered at import cannot be turned off for good: each check runs
    under a guard, and the worker is not reused for another module."""
    _project(tmp_path, "torch.inference_mode().__enter__()")
    doc = run_json("specs", "-j", "1", "--no-cache", in_process=False)
    assert _verdicts(doc, "specs/b_ops.yaml") == EXPECTED, doc["results"]
    assert [r["status"] for r in doc["results"] if r["spec"] == "specs/a_polluter.yaml"] == [
        "passed", "passed"]


SPAWNER = '''import subprocess
from pathlib import Path

import torch


class Spawns(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        child = subprocess.Popen(["sleep", "300"])
        Path("child.pid").write_text(str(child.pid))
        {tail}

    @staticmethod
    def backward(ctx, grad):
        return grad
'''


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for its parent counts as gone.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


@pytest.mark.parametrize("tail", ["return x * 1", "while True: pass"])
def test_children_of_an_op_do_not_outlive_the_run(tmp_path: Path, tail: str) -> None:
    """Whether the check ends (the worker stops) or hangs (the time limit kills it), the
    `sleep 300` it started dies with its worker: the piped output closes, the run ends."""
    (tmp_path / "spawner.py").write_text(SPAWNER.format(tail=tail))
    (tmp_path / "spawner.yaml").write_text(
        "module: spawner.py\nfunctions:\n  Spawns: {inputs: [{shape: [2]}], "
        "checks: [gradcheck]}\n")
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gradcheck_cli", "spawner.yaml", "-j", "1", "--no-cache",
         "--device", "cpu", "--timeout", "5"], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=90)  # reads until every writer closed the pipe
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the run's output stayed open: the op's child outlived the run")
    assert time.monotonic() - started < 60, out
    pid = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the op's `sleep 300` is still running"
