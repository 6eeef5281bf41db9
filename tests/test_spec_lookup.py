"""A .py stands for the specs that name it, beside it or in the specs folder: what `init`
writes is what the next run uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gradcheck_cli.cli import main

OPS = '''
import torch


class Cube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return 3 * x ** 2 * grad_output
'''


def test_init_then_run_in_a_flat_repository_uses_the_written_spec(
        tmp_path: Path, write_op: Any, run_json: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    write_op(OPS, "op.py")
    monkeypatch.chdir(tmp_path)
    assert main(["init", "op.py"]) == 0
    spec = tmp_path / "op.yaml"
    assert spec.is_file()
    # Pin a shape the inference would not choose, so the run shows it used the spec.
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text.replace("functions:", "defaults:\n  seed: 7\nfunctions:", 1),
                    encoding="utf-8")
    doc = run_json("op.py")
    assert {(r["spec"], r["function"], r["status"], r["seed"]) for r in doc["results"]} == {
        ("op.yaml", "Cube", "passed", 7)}


def test_a_spec_beside_the_op_naming_another_module_is_not_used(
        tmp_path: Path, write_op: Any, write_spec: Any, run_json: Any) -> None:
    write_op(OPS, "op.py")
    write_op(OPS, "other.py")
    write_spec({"module": "other.py", "functions": {"Cube": {"inputs": [{"shape": [2]}]}}},
               "other.yaml")
    doc = run_json("op.py", "--check", "gradcheck")
    assert [(r["spec"], r["module"]) for r in doc["results"]] == [(None, "op.py")]
