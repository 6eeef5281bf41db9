"""-k/--function and --case: a name that matches nothing is a usage error with a suggestion."""

from __future__ import annotations

from typing import Any

import pytest

OPS = '''
import torch


class FLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, grad_output):
        x, w = ctx.saved_tensors
        return grad_output * w, grad_output * x
'''


@pytest.fixture
def spec(write_op: Any, write_spec: Any) -> None:
    write_op(OPS, "ops.py")
    write_spec({"module": "ops.py", "functions": {"FLinear": {
        "inputs": [{"shape": [3]}, {"shape": [3]}],
        "cases": [{"name": "wide", "inputs": [{"shape": [7]}, {"shape": [7]}]}]}}})


@pytest.mark.parametrize(("args", "message", "hint"), [
    (["-k", "FLiner"], "no Function named `FLiner` in the paths given",
     "did you mean `FLinear`?"),
    (["--case", "wdie"], "no case named `wdie` in the paths given", "did you mean `wide`?"),
    (["--case", "nosuch"], "no case named `nosuch` in the paths given",
     "found: `default`, `wide`"),
])
def test_a_typo_in_a_selection_exits_4_with_a_suggestion(
        spec: None, run_cli: Any, monkeypatch: pytest.MonkeyPatch, args: list[str],
        message: str, hint: str) -> None:
    monkeypatch.setenv("PRE_COMMIT", "1")  # nothing collected is fine there; a typo is not
    code, _, err = run_cli("spec.yaml", *args)
    assert code == 4
    assert f"gradcheck-cli: error: {message}\n  hint: {hint}" in err


def test_a_typo_in_a_bare_py_selection_is_found_after_discovery(
        write_op: Any, run_cli: Any) -> None:
    write_op(OPS, "ops.py")
    code, _, err = run_cli("ops.py", "-k", "Flinear", "--check", "gradcheck")
    assert code == 4
    assert "no Function named `Flinear` in the paths given\n  hint: did you mean `FLinear`?" \
        in err


def test_a_right_selection_runs(spec: None, run_json: Any) -> None:
    doc = run_json("spec.yaml", "-k", "FLinear", "--case", "wide", "--check", "gradcheck")
    assert [(r["function"], r["case"], r["status"]) for r in doc["results"]] == [
        ("FLinear", "wide", "passed")]
