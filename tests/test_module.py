"""nn.Module specs: gradients with respect to the inputs and every parameter, by name."""

from __future__ import annotations

from conftest import only

OPS = '''
import torch
from torch import nn
from torch.autograd import Function


class LinearFn(Function):
    """y = x @ W.T + b, as torch.nn.functional.linear."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return x @ weight.T + bias

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        return g @ weight, g.T @ x, g.sum(dim=0)


class LinearFnDoubleWeight(Function):
    """The same, with the weight's gradient twice too large."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return x @ weight.T + bias

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        return g @ weight, 2 * (g.T @ x), g.sum(dim=0)


class LinearFnNoBias(Function):
    """The same, with no gradient for the bias."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return x @ weight.T + bias

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        return g @ weight, g.T @ x, None


class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, fn=LinearFn):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.randn(out_features))
        self.fn = fn

    def forward(self, x):
        return self.fn.apply(x, self.weight, self.bias)


SECOND = {"right": LinearFn, "double_weight": LinearFnDoubleWeight,
          "no_bias": LinearFnNoBias}


class TwoLayer(nn.Module):
    def __init__(self, in_features, hidden, out_features, second="right", freeze_fc1=False):
        super().__init__()
        self.fc1 = MyLinear(in_features, hidden)
        self.fc2 = MyLinear(hidden, out_features, SECOND[second])
        self.register_buffer("scale", torch.ones(()))
        if freeze_fc1:
            self.fc1.weight.requires_grad_(False)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x))) * self.scale


class Broken(nn.Module):
    def __init__(self, size):
        super().__init__()
        raise ValueError(f"no layer of size {size}")

    def forward(self, x):
        return x
'''

SPEC = '''
module: ops.py
functions:
  TwoLayer:
    init: {in_features: 3, hidden: 4, out_features: 2}
    inputs: [{shape: [5, 3], name: x}]
    cases:
      - {name: double_weight, init: {in_features: 3, hidden: 4, out_features: 2,
                                     second: double_weight}, inputs: [{shape: [5, 3], name: x}]}
      - {name: no_bias, init: {in_features: 3, hidden: 4, out_features: 2, second: no_bias},
         inputs: [{shape: [5, 3], name: x}]}
      - {name: frozen, init: {in_features: 3, hidden: 4, out_features: 2, freeze_fc1: true},
         inputs: [{shape: [5, 3], name: x}]}
  Broken:
    init: {size: 7}
    inputs: [{shape: [2]}]
'''

NAMES = ["x", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


def _passed(result):
    return {e["name"]: e["passed"] for e in result["inputs"]}


def test_right_module_passes_for_inputs_and_every_parameter(write_op, write_spec, run_json):
    write_op(OPS)
    write_spec(SPEC)
    doc = run_json("spec.yaml", "-k", "TwoLayer", "--case", "default")
    assert doc["_exit_code"] == 0, [r["message"] for r in doc["results"]]
    for check in ("gradcheck", "gradgradcheck"):
        result = only(doc, check=check)
        assert result["status"] == "passed", result["message"]
        names = [e["name"] for e in result["inputs"]]
        # the inputs, then the parameters as named_parameters() names them (no buffers)
        expected = NAMES if check == "gradcheck" else [*NAMES, "grad_output"]
        assert names == expected
        assert all(_passed(result).values())
        assert all(e["max_abs_error"] is not None and e["max_abs_error"] < 1e-6
                   for e in result["inputs"])


def test_wrong_weight_gradient_in_the_second_layer_fails_exactly_fc2_weight(
        write_op, write_spec, run_json):
    write_op(OPS)
    write_spec(SPEC)
    doc = run_json("spec.yaml", "-k", "TwoLayer", "--case", "double_weight", "--check",
                   "gradcheck")
    result = only(doc, check="gradcheck")
    assert result["status"] == "failed"
    assert _passed(result) == {"x": True, "fc1.weight": True, "fc1.bias": True,
                               "fc2.weight": False, "fc2.bias": True}
    wrong = next(e for e in result["inputs"] if e["name"] == "fc2.weight")
    assert wrong["wrong_elements"] > 0
    assert wrong["diagnosis"]["kind"] == "scale"
    assert "factor 2 " in wrong["diagnosis"]["detail"]
    assert "`fc2.weight`" in result["message"]
    for name in ("fc1.weight", "fc1.bias", "fc2.bias", "`x`"):
        assert f"`{name.strip('`')}`" not in result["message"], name
    assert doc["_exit_code"] == 1


def test_missing_bias_gradient_fails_exactly_fc2_bias(write_op, write_spec, run_json):
    write_op(OPS)
    write_spec(SPEC)
    doc = run_json("spec.yaml", "-k", "TwoLayer", "--case", "no_bias", "--check", "gradcheck")
    result = only(doc, check="gradcheck")
    assert result["status"] == "failed"
    assert _passed(result) == {"x": True, "fc1.weight": True, "fc1.bias": True,
                               "fc2.weight": True, "fc2.bias": False}
    wrong = next(e for e in result["inputs"] if e["name"] == "fc2.bias")
    assert wrong["diagnosis"]["kind"] == "zero"
    assert "`fc2.bias`" in wrong["diagnosis"]["detail"]


def test_frozen_parameters_are_not_checked(write_op, write_spec, run_json):
    write_op(OPS)
    write_spec(SPEC)
    doc = run_json("spec.yaml", "-k", "TwoLayer", "--case", "frozen", "--check", "gradcheck")
    result = only(doc, check="gradcheck")
    assert result["status"] == "passed", result["message"]
    assert [e["name"] for e in result["inputs"]] == ["x", "fc1.bias", "fc2.weight", "fc2.bias"]


def test_table_names_the_wrong_parameter(write_op, write_spec, run_cli, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    write_op(OPS)
    write_spec(SPEC)
    code, out, _ = run_cli("spec.yaml", "-k", "TwoLayer", "--case", "double_weight",
                           "--check", "gradcheck")
    assert code == 1
    assert "FAILED spec.yaml::TwoLayer[double_weight-cpu-gradcheck]" in out
    assert "fc2.weight: scale:" in " ".join(out.split())


def _raise_line(path) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1)
                if "raise ValueError" in line)


def test_constructor_that_raises_names_file_and_line(write_op, write_spec, run_json):
    path = write_op(OPS)
    write_spec(SPEC)
    line = _raise_line(path)
    doc = run_json("spec.yaml", "-k", "Broken")
    assert doc["results"], doc
    for result in doc["results"]:
        assert result["status"] == "error"
        assert result["location"].endswith(f"ops.py:{line}"), result["location"]
        assert "no layer of size 7" in result["message"]
        assert "constructing Broken" in result["message"]
        assert f"ops.py:{line}" in result["message"]
        assert "internal error" not in result["message"]
    assert doc["_exit_code"] == 1


def test_constructor_error_location_is_relative_like_every_other(write_op, write_spec,
                                                                 run_json):
    """Every other location is shown relative to the working directory (`ops.py:17`)."""
    path = write_op(OPS)
    write_spec(SPEC)
    line = _raise_line(path)
    doc = run_json("spec.yaml", "-k", "Broken", "--check", "gradcheck")
    result = only(doc, check="gradcheck")
    assert result["location"] == f"ops.py:{line}"
    assert str(path.parent) not in result["message"]


def test_missing_constructor_arguments_say_init(write_op, write_spec, run_json):
    write_op(OPS)
    write_spec("module: ops.py\nfunctions:\n  TwoLayer: {inputs: [{shape: [5, 3]}]}\n")
    doc = run_json("spec.yaml", "--check", "gradcheck")
    result = only(doc, check="gradcheck")
    assert result["status"] == "error"
    assert "init" in result["message"]
    assert "internal error" not in result["message"]
