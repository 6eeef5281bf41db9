"""Checks that turn on by themselves (16-bit inputs, declared vmap support) and what they say."""

from __future__ import annotations

from typing import Any

from conftest import only

OPS = '''
import torch


class Scale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, grad):
        return grad * 3
'''


def test_bfloat16_inputs_add_the_bfloat16_check_and_gradcheck_runs_in_float64(
        write_op: Any, write_spec: Any, run_json: Any) -> None:
    write_op(OPS)
    write_spec('''
        module: ops.py
        functions:
          Scale:
            inputs: [{shape: [4], dtype: bfloat16}]
            cases:
              - {name: wide, inputs: [{shape: [4]}]}
    ''')
    doc = run_json("spec.yaml")
    checks = [(r["case"], r["check"], r["status"]) for r in doc["results"]]
    assert checks == [("default", "gradcheck", "passed"), ("default", "gradgradcheck", "passed"),
                      ("default", "bfloat16", "passed"),
                      ("wide", "gradcheck", "passed"), ("wide", "gradgradcheck", "passed")]
    message = only(doc, case="default", check="gradcheck")["message"]
    assert "note: bfloat16 input(s) `x` checked in float64 on their bfloat16 values" in message
    # Chosen explicitly, the checks are the ones asked for.
    doc = run_json("spec.yaml", "--check", "gradcheck")
    assert [r["check"] for r in doc["results"]] == ["gradcheck", "gradcheck"]


OLD_STYLE = '''
import torch


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad
'''


def test_batched_grad_asked_of_a_function_without_vmap_support_says_what_it_lacks(
        write_op: Any, run_json: Any) -> None:
    write_op(OLD_STYLE)
    result = only(run_json("ops.py", "--check", "batched_grad"), check="batched_grad")
    assert result["status"] == "passed"
    assert result["message"] == (
        "3 grad_outputs at once (is_grads_batched) agree with single backwards; "
        "torch.func.jacrev not tried: the Function lacks a `setup_context` staticmethod "
        "(forward must not take ctx) and `generate_vmap_rule = True`.")


def test_dtype_flag_adds_the_16_bit_checks_to_the_default_ones(write_op: Any,
                                                               run_json: Any) -> None:
    write_op(OPS)
    doc = run_json("ops.py", "--dtype", "bfloat16", "--dtype", "float16")
    assert [(r["check"], r["status"]) for r in doc["results"]] == [
        ("gradcheck", "passed"), ("gradgradcheck", "passed"), ("bfloat16", "passed"),
        ("float16", "passed")]
