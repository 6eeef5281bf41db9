"""The capability matrix (--capabilities): ok, fail (with the reason) or n/a, never confused."""

from __future__ import annotations

from typing import Any

import pytest
import torch
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


class SquareJvp(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g

    @staticmethod
    def jvp(ctx, x_t):
        (x,) = ctx.saved_tensors
        return 2 * x * x_t


class SquareWrongJvp(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g

    @staticmethod
    def jvp(ctx, x_t):
        (x,) = ctx.saved_tensors
        return x * x_t


class SquareVmap(Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class SinCos(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sin(x), torch.cos(x)

    @staticmethod
    def backward(ctx, gs, gc):
        (x,) = ctx.saved_tensors
        return gs * torch.cos(x) - gc * torch.sin(x)


class SquareBadVmap(Function):
    @staticmethod
    def forward(x):
        return x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g

    @staticmethod
    def vmap(info, in_dims, x):
        return 2 * x * x, in_dims[0]


class RawMemory(Function):
    # Reads x's memory as if it were contiguous, as a careless kernel does.

    @staticmethod
    def forward(ctx, x):
        flat = x.as_strided((x.numel(),), (1,))
        return (flat * 2).reshape(x.shape)

    @staticmethod
    def backward(ctx, g):
        return g * 2


class SinCosBadNone(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x)
        return torch.sin(x), torch.cos(x)

    @staticmethod
    def backward(ctx, gs, gc):
        (x,) = ctx.saved_tensors
        if gs is None:
            gs = torch.zeros_like(x)
        if gc is None:
            return 2 * gs * torch.cos(x)
        return gs * torch.cos(x) - gc * torch.sin(x)


def composite(x):
    return torch.sin(x) * x


def uses_square(x):
    return Square.apply(x) + 1
'''

SPEC = """
module: ops.py
functions:
  Square: {inputs: [{shape: [2, 3]}]}
  SquareJvp: {inputs: [{shape: [2, 3]}]}
  SquareWrongJvp: {inputs: [{shape: [2, 3]}]}
  SquareVmap: {inputs: [{shape: [2, 3]}]}
  SquareBadVmap: {inputs: [{shape: [2, 3]}]}
  SinCos: {inputs: [{shape: [4]}]}
  SinCosBadNone: {inputs: [{shape: [4]}]}
  RawMemory: {inputs: [{shape: [2, 3]}]}
  composite: {inputs: [{shape: [4]}]}
  uses_square: {inputs: [{shape: [4]}]}
"""

NAMES = ("first_order", "second_order", "forward_ad", "vmap", "undefined_grad",
         "non_contiguous", "cuda", "cpu_cuda_agreement")


@pytest.fixture
def matrix(write_op, write_spec, run_json):
    """run the capability matrix for some Functions -> (document, {function: matrix})."""
    write_op(OPS)
    write_spec(SPEC)

    def run(*functions: str) -> tuple[dict[str, Any], dict[str, dict[str, dict[str, str]]]]:
        args = [a for f in functions for a in ("-k", f)]
        doc = run_json("spec.yaml", "--capabilities", *args)
        by_function = {}
        for function in functions:
            result = only(doc, function=function, check="capabilities")
            assert result["capabilities"] is not None
            # The top-level section holds the same matrix, keyed spec::Function[case].
            assert doc["capabilities"][f"spec.yaml::{function}[default]"] == result["capabilities"]
            by_function[function] = result["capabilities"]
        return doc, by_function

    return run


def status(caps: dict[str, dict[str, str]]) -> dict[str, str]:
    return {name: cap["status"] for name, cap in caps.items()}


def test_every_capability_is_reported_with_a_status_and_reason(matrix):
    doc, found = matrix("Square")
    caps = found["Square"]
    assert set(caps) == set(NAMES)
    for cap in caps.values():
        assert cap["status"] in ("ok", "fail", "n/a")
        assert isinstance(cap["reason"], str)
    # One capabilities result per Function x case, beside the usual checks.
    assert [r["check"] for r in doc["results"]] == ["gradcheck", "gradgradcheck", "capabilities"]


def test_without_capabilities_flag_there_is_no_section(write_op, write_spec, run_json):
    write_op(OPS)
    write_spec(SPEC)
    doc = run_json("spec.yaml", "-k", "Square")
    assert "capabilities" not in doc
    assert all(r["capabilities"] is None for r in doc["results"])
    assert {r["check"] for r in doc["results"]} == {"gradcheck", "gradgradcheck"}


def test_plain_function_has_no_jvp_and_no_vmap_as_na_not_fail(matrix):
    doc, found = matrix("Square")
    caps = found["Square"]
    assert status(caps)["first_order"] == "ok"
    assert status(caps)["second_order"] == "ok"
    assert status(caps)["forward_ad"] == "n/a"
    assert "jvp" in caps["forward_ad"]["reason"]
    assert status(caps)["vmap"] == "n/a"
    assert "generate_vmap_rule" in caps["vmap"]["reason"]
    assert status(caps)["undefined_grad"] == "n/a"  # one output: nothing to leave undefined
    assert status(caps)["non_contiguous"] == "ok"
    assert only(doc, function="Square", check="capabilities")["status"] == "passed"
    assert doc["_exit_code"] == 0


def test_correct_jvp_is_ok_and_wrong_jvp_fails(matrix):
    doc, found = matrix("SquareJvp", "SquareWrongJvp")
    assert found["SquareJvp"]["forward_ad"] == {"status": "ok", "reason": ""}
    wrong = found["SquareWrongJvp"]["forward_ad"]
    assert wrong["status"] == "fail"
    assert "jvp" in wrong["reason"] and wrong["reason"]
    # A wrong jvp fails the capabilities result (and the run); backward itself is right.
    result = only(doc, function="SquareWrongJvp", check="capabilities")
    assert result["status"] == "failed"
    assert result["message"].startswith("forward_ad: ")
    assert only(doc, function="SquareWrongJvp", check="gradcheck")["status"] == "passed"
    assert only(doc, function="SquareJvp", check="capabilities")["status"] == "passed"
    assert doc["_exit_code"] == 1


def test_generate_vmap_rule_is_ok_and_a_wrong_vmap_rule_fails(matrix):
    _, found = matrix("SquareVmap", "SquareBadVmap")
    assert found["SquareVmap"]["vmap"]["status"] == "ok"
    assert found["SquareVmap"]["first_order"]["status"] == "ok"
    bad = found["SquareBadVmap"]["vmap"]
    assert bad["status"] == "fail" and "differs" in bad["reason"]


def test_multi_output_undefined_grad(matrix):
    _, found = matrix("SinCos", "SinCosBadNone")
    assert found["SinCos"]["undefined_grad"]["status"] == "ok"
    bad = found["SinCosBadNone"]["undefined_grad"]
    assert bad["status"] == "fail"
    assert "output 1" in bad["reason"] and "undefined" in bad["reason"]


def test_non_contiguous_inputs(matrix):
    _, found = matrix("RawMemory")
    caps = found["RawMemory"]
    assert caps["first_order"]["status"] == "ok"
    assert caps["non_contiguous"]["status"] == "fail"
    assert "non-contiguous" in caps["non_contiguous"]["reason"]


def test_plain_functions_composite_and_through_a_custom_function(matrix):
    _, found = matrix("composite", "uses_square")
    assert status(found["composite"])["forward_ad"] == "ok"
    assert status(found["composite"])["vmap"] == "ok"
    inner = found["uses_square"]
    assert status(inner)["forward_ad"] == "n/a"
    assert status(inner)["vmap"] == "n/a"
    assert "custom Function inside" in inner["forward_ad"]["reason"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_is_na_without_cuda(matrix):
    _, found = matrix("Square")
    caps = found["Square"]
    assert caps["cuda"] == {"status": "n/a", "reason": "CUDA not available"}
    assert caps["cpu_cuda_agreement"]["status"] == "n/a"


def test_table_has_a_capabilities_section(write_op, write_spec, run_cli, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    write_op(OPS)
    write_spec(SPEC)
    code, out, _ = run_cli("spec.yaml", "--capabilities", "-k", "Square", "-k",
                           "SquareWrongJvp")
    assert code == 1
    lines = out.splitlines()
    title = next(i for i, line in enumerate(lines) if line.strip() == "Capabilities")
    section = "\n".join(lines[title:])
    header = lines[title + 1]
    assert "forward ad" in header and "vmap" in header and "first order" in header
    square = next(line.split() for line in lines[title:] if line.split()[:1] == ["Square"])
    assert square[:4] == ["Square", "default", "ok", "ok"]  # first and second order
    assert square.count("n/a") >= 4  # forward ad, vmap, undefined grad, cuda...
    wrong = next(line.split() for line in lines[title:]
                 if line.split()[:1] == ["SquareWrongJvp"])
    assert "fail" in wrong
    assert "SquareWrongJvp [default] forward_ad: jvp disagrees" in section


def test_reproduce_command_of_a_capability_failure_runs(matrix, run_json):
    """Every failure prints the command that reproduces it: a capability failure too."""
    import shlex

    doc, _ = matrix("SquareWrongJvp")
    result = only(doc, function="SquareWrongJvp", check="capabilities")
    assert result["status"] == "failed"
    argv = shlex.split(result["reproduce"])
    assert argv[0] == "gradcheck-cli"
    again = run_json(*argv[1:])
    assert again["_exit_code"] == 1, again["_stderr"]
    rerun = only(again, function="SquareWrongJvp", check="capabilities")
    assert rerun["capabilities"]["forward_ad"]["status"] == "fail"
