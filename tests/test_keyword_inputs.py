"""Specs with `kwargs:` and list inputs: every mistake named at its line, with the fix."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import only

OPS = '''
import torch


class Affine(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale=1.0, *, bias):
        ctx.scale = scale
        return x * scale + bias

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def pairwise(xs, weight=None):
    return xs[0] * xs[1] * (1 if weight is None else weight)


def anything(x, **options):
    return x * options.get("factor", 1.0)
'''


@pytest.fixture
def ops(write_op: Any) -> None:
    write_op(OPS)


@pytest.mark.parametrize(("body", "message"), [
    ("kwargs: [1, 2]", "spec.yaml:5:13: `kwargs` must be a mapping of argument names to inputs"),
    ("kwargs: {weight: {list: 3}}", "spec.yaml:5:29: `list` must be a list of inputs"),
    ("kwargs: {weight: {list: [{list: [1]}]}}",
     "spec.yaml:5:30: a list inside a list is not supported"),
    ("kwargs: {weight: {list: [1], shape: [2]}}",
     "spec.yaml:5:34: unknown key `shape` in a list input"),
    ("kwargs: {weight: {shape: [2], name: w}}",
     "spec.yaml:5:22: keyword argument `weight` has its name already; remove `name: w`"),
])
def test_malformed_kwargs_and_lists_are_located(ops: None, write_spec: Any, run_json: Any,
                                                body: str, message: str) -> None:
    write_spec(f'''
        module: ops.py
        functions:
          pairwise:
            inputs: [{{list: [{{shape: [2]}}, {{shape: [2]}}]}}]
            {body}
    ''')
    doc = run_json("spec.yaml", "--check", "gradcheck")
    result = only(doc, function="pairwise")
    assert result["status"] == "error"
    assert result["message"].startswith(message), result["message"]


def test_unknown_keyword_repeated_and_missing_arguments(ops: None, write_spec: Any,
                                                       run_json: Any) -> None:
    write_spec('''
        module: ops.py
        functions:
          Affine:
            inputs: [{shape: [3]}]
            kwargs: {scael: 2.0, bias: {shape: [3]}}
          pairwise:
            inputs: [{list: [{shape: [2]}, {shape: [2]}]}]
            kwargs: {xs: 1.0}
          anything:
            inputs: [{shape: [3]}]
            kwargs: {factor: 2.0}
        ''')
    doc = run_json("spec.yaml", "--check", "gradcheck")
    affine = only(doc, function="Affine")
    assert affine["status"] == "error"
    assert affine["message"] == ("spec.yaml:5: Affine has no parameter `scael`\n"
                                 "  hint: did you mean `scale`?")
    twice = only(doc, function="pairwise")
    assert twice["status"] == "error"
    assert twice["message"].startswith(
        "spec.yaml:8: `xs` is given twice: under `inputs` and under `kwargs`")
    # **options takes any name.
    assert only(doc, function="anything")["status"] == "passed"


def test_a_required_keyword_only_argument_left_out_is_named(ops: None, write_spec: Any,
                                                           run_json: Any) -> None:
    write_spec('''
        module: ops.py
        functions:
          Affine:
            inputs: [{shape: [3]}]
            kwargs: {scale: 2.0}
        ''')
    result = only(run_json("spec.yaml", "--check", "gradcheck"), function="Affine")
    assert result["status"] == "error"
    assert result["message"].startswith(
        "spec.yaml:3: Affine needs `bias`, which the spec does not give\n"
        "  hint: add them under `inputs` (in order) or `kwargs` (by name)")


def test_cases_inherit_and_override_kwargs(ops: None, write_spec: Any, run_json: Any) -> None:
    write_spec('''
        module: ops.py
        functions:
          pairwise:
            inputs: [{list: [{shape: [2]}, {shape: [2]}]}]
            kwargs: {weight: {shape: [2]}}
            cases:
              - {name: scalar_weight, kwargs: {weight: 3.0}}
              - {name: same}
        ''')
    doc = run_json("spec.yaml", "--check", "gradcheck")
    names = {r["case"]: [i["name"] for i in r["inputs"]] for r in doc["results"]}
    assert names == {"default": ["xs[0]", "xs[1]", "weight"],
                     "scalar_weight": ["xs[0]", "xs[1]"],
                     "same": ["xs[0]", "xs[1]", "weight"]}
    assert {r["status"] for r in doc["results"]} == {"passed"}


KEYWORD_ONLY = '''
import torch


class _Mul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        return grad * w, grad * x


def scaled(x, *, weight, bias=None):
    out = _Mul.apply(x, weight)
    return out if bias is None else out + bias
'''


def test_zero_config_fills_required_keyword_only_arguments(write_op: Any, run_json: Any) -> None:
    write_op(KEYWORD_ONLY)
    doc = run_json("ops.py", "--check", "gradcheck")
    result = only(doc, function="scaled")
    assert result["status"] == "passed"
    assert [i["name"] for i in result["inputs"]] == ["x", "weight"]
    assert result["inputs_inferred"] == "x (3, 4), weight (3, 4)"
