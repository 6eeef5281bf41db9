"""--plot PNG heatmaps of failing inputs' Jacobians, and --show-jacobian in the terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, only

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"

OPS = '''
import torch
from torch.autograd import Function


class MulAddSwapped(Function):
    @staticmethod
    def forward(ctx, w, x, b):
        ctx.save_for_backward(w, x)
        return w * x + b

    @staticmethod
    def backward(ctx, g):
        w, x = ctx.saved_tensors
        return g * w, g * x, g


class Square(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class SquareHalf(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return x * g
'''

SPEC = '''
module: ops.py
functions:
  MulAddSwapped:
    inputs: [{shape: [2, 3], name: w}, {shape: [2, 3], name: x}, {shape: [2, 3], name: b}]
  Square: {inputs: [{shape: [4]}]}
  SquareHalf:
    inputs: [{shape: [4]}]
    cases:
      - {name: big, inputs: [{shape: [7, 7]}]}
      - {name: huge, inputs: [{shape: [90]}]}
'''


@pytest.fixture
def project(write_op, write_spec, tmp_path: Path) -> Path:
    write_op(OPS)
    write_spec(SPEC)
    return tmp_path


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data.startswith(PNG) and len(data) > 10_000


def test_plot_writes_one_png_per_failing_input(project, run_json):
    doc = run_json("spec.yaml", "-k", "MulAddSwapped", "-k", "Square", "--plot", "plots")
    assert doc["_exit_code"] == 1
    written = sorted(p.name for p in (project / "plots").iterdir())
    # w and x are wrong, b is right; Square passes; gradgradcheck passes.
    assert written == ["MulAddSwapped_default_cpu_gradcheck_w.png",
                       "MulAddSwapped_default_cpu_gradcheck_x.png"]
    for name in written:
        assert _is_png(project / "plots" / name), name
    assert "wrote plots" in doc["_stderr"]
    assert only(doc, function="MulAddSwapped", check="gradcheck")["status"] == "failed"


def test_plot_of_a_downsampled_jacobian(project, run_json):
    doc = run_json("spec.yaml", "-k", "SquareHalf", "--case", "huge", "--check", "gradcheck",
                   "--plot", "plots")
    assert only(doc, check="gradcheck")["status"] == "failed"
    path = project / "plots" / "SquareHalf_huge_cpu_gradcheck_x.png"
    assert _is_png(path)


def test_plot_folder_is_created_and_nothing_written_when_all_pass(project, run_json):
    doc = run_json("spec.yaml", "-k", "Square", "--plot", "plots")
    assert doc["_exit_code"] == 0
    assert not (project / "plots").exists() or not any((project / "plots").iterdir())


def test_plot_without_matplotlib_is_a_usage_error(project):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from gradcheck_cli.cli import main\n"
            "sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run(
        [sys.executable, "-c", code, "spec.yaml", "-k", "MulAddSwapped", "--plot", "plots",
         "--device", "cpu", "--jobs", "0", "--no-cache"],
        cwd=project, capture_output=True, text=True, timeout=120,
        env={**_env(), "NO_COLOR": "1"})
    assert proc.returncode == 4, (proc.stdout, proc.stderr)
    assert "pip install 'gradcheck-cli[plot]'" in proc.stderr
    assert "matplotlib" in proc.stderr
    assert proc.stdout == ""  # no check ran
    assert not (project / "plots").exists()


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def _heatmap(out: str, name: str) -> list[str]:
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines)
                if f"analytical − numerical for `{name}`" in line)
    block = []
    for line in lines[head + 1:]:
        if not line.startswith("  │"):
            break
        block.append(line)
    return block


def test_show_jacobian_prints_a_text_heatmap(project, run_cli, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = run_cli("spec.yaml", "-k", "SquareHalf", "--case", "default", "--check",
                           "gradcheck", "--show-jacobian")
    assert code == 1
    block = _heatmap(out, "x")
    # 4 outputs x 4 elements of x; the difference x - 2x = -x is on the diagonal only.
    assert len(block) == 4
    cells = [line[len("  │"):].rstrip()[:-1] for line in block]
    assert all(len(row) == 4 for row in cells), cells
    for i, row in enumerate(cells):
        assert all(ch == " " for j, ch in enumerate(row) if j != i), cells
    assert "@" in [row[i] for i, row in enumerate(cells)]  # the largest difference
    assert "\x1b[" not in out


def test_show_jacobian_for_each_failing_input_only(project, run_cli, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = run_cli("spec.yaml", "-k", "MulAddSwapped", "--check", "gradcheck",
                           "--show-jacobian")
    assert code == 1
    assert len(_heatmap(out, "w")) == 6 and len(_heatmap(out, "x")) == 6
    assert "analytical − numerical for `b`" not in out


def test_show_jacobian_too_large_points_to_plot(project, run_cli, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = run_cli("spec.yaml", "-k", "SquareHalf", "--case", "big", "--check",
                           "gradcheck", "--show-jacobian")
    assert code == 1
    assert "too large to draw here; use --plot DIR" in " ".join(out.split())


def test_no_heatmap_without_the_flag(project, run_cli, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = run_cli("spec.yaml", "-k", "SquareHalf", "--case", "default", "--check",
                           "gradcheck")
    assert code == 1
    assert "analytical − numerical" not in out
