"""The float32 consistency check (--float32, or `float32: true` in a spec)."""

from __future__ import annotations

from conftest import only

OPS = '''
import torch
from torch.autograd import Function


class Square(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class MulAdd(Function):
    @staticmethod
    def forward(ctx, w, x, b):
        ctx.save_for_backward(w, x)
        return w * x + b

    @staticmethod
    def backward(ctx, g):
        w, x = ctx.saved_tensors
        big = x * 1e4
        # Right in exact arithmetic, but in float32 the small term is lost next to 1e4·x.
        grad_w = (big + g * x) - big
        return grad_w, g * w, g


class OnlyFloat64(Function):
    @staticmethod
    def forward(ctx, x):
        if x.dtype != torch.float64:
            raise TypeError("OnlyFloat64 needs float64 inputs")
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2
'''

SPEC = '''
module: ops.py
functions:
  Square: {inputs: [{shape: [3, 4]}]}
  MulAdd: {inputs: [{shape: [3, 4], name: w}, {shape: [3, 4], name: x}, {shape: [4], name: b}]}
  OnlyFloat64: {inputs: [{shape: [3]}]}
'''


def test_float32_flag_adds_a_float32_check(write_op, write_spec, run_json):
    write_op(OPS)
    write_spec(SPEC)
    doc = run_json("spec.yaml", "-k", "Square", "--float32")
    assert [r["check"] for r in doc["results"]] == ["gradcheck", "gradgradcheck", "float32"]
    result = only(doc, check="float32")
    assert result["status"] == "passed", result["message"]
    assert [e["name"] for e in result["inputs"]] == ["x"]
    entry = result["inputs"][0]
    assert entry["passed"] and entry["diagnosis"] is None
    # float32 rounding, far below the float32 tolerance
    assert 0 <= entry["max_abs_error"] < 1e-5
    assert doc["_exit_code"] == 0


def test_without_the_flag_no_float32_check(write_op, write_spec, run_json):
    write_op(OPS)
    write_spec(SPEC)
    doc = run_json("spec.yaml", "-k", "Square")
    assert {r["check"] for r in doc["results"]} == {"gradcheck", "gradgradcheck"}


def test_spec_float32_true_adds_the_check(write_op, write_spec, run_json):
    write_op(OPS)
    write_spec("""
        module: ops.py
        functions:
          Square:
            float32: true
            inputs: [{shape: [3, 4]}]
          MulAdd:
            inputs: [{shape: [3, 4]}, {shape: [3, 4]}, {shape: [4]}]
        """)
    doc = run_json("spec.yaml")
    checks = {(r["function"], r["check"]) for r in doc["results"]}
    assert ("Square", "float32") in checks
    assert ("MulAdd", "float32") not in checks  # only where the spec asks
    assert only(doc, function="Square", check="float32")["status"] == "passed"


def test_spec_defaults_float32_and_explicit_checks(write_op, write_spec, run_json):
    write_op(OPS)
    write_spec("""
        module: ops.py
        defaults: {float32: true, checks: [gradcheck]}
        functions:
          Square: {inputs: [{shape: [3, 4]}]}
        """)
    doc = run_json("spec.yaml")
    assert [r["check"] for r in doc["results"]] == ["gradcheck", "float32"]


def test_cancellation_in_backward_fails_in_float32_naming_the_input(write_op, write_spec,
                                                                    run_json):
    write_op(OPS)
    write_spec(SPEC)
    doc = run_json("spec.yaml", "-k", "MulAdd", "--float32")
    # In float64 the gradients are right: gradcheck and gradgradcheck pass.
    assert only(doc, check="gradcheck")["status"] == "passed"
    assert only(doc, check="gradgradcheck")["status"] == "passed"
    result = only(doc, check="float32")
    assert result["status"] == "failed"
    by_name = {e["name"]: e for e in result["inputs"]}
    assert set(by_name) == {"w", "x", "b"}
    assert not by_name["w"]["passed"]
    assert by_name["w"]["max_abs_error"] > 1e-5
    assert by_name["x"]["passed"] and by_name["b"]["passed"]
    assert "`w`" in result["message"]
    assert "`x`" not in result["message"] and "`b`" not in result["message"]
    assert "float32 gradient differs from float64" in result["message"]
    assert result["location"].startswith("ops.py:")
    assert result["reproduce"].endswith("--check float32 --seed 0")
    assert doc["_exit_code"] == 1


def test_float32_failure_in_the_table(write_op, write_spec, run_cli, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    write_op(OPS)
    write_spec(SPEC)
    code, out, _ = run_cli("spec.yaml", "-k", "MulAdd", "--float32")
    assert code == 1
    assert "FAILED spec.yaml::MulAdd[cpu-float32]" in out
    assert "`w`: float32 gradient differs from float64" in " ".join(out.split())


def test_a_function_that_refuses_float32_is_an_error(write_op, write_spec, run_json):
    write_op(OPS)
    write_spec(SPEC)
    doc = run_json("spec.yaml", "-k", "OnlyFloat64", "--float32")
    assert only(doc, check="gradcheck")["status"] == "passed"
    result = only(doc, check="float32")
    assert result["status"] == "error"
    assert "fails in float32" in result["message"]
    assert "OnlyFloat64 needs float64 inputs" in result["message"]
