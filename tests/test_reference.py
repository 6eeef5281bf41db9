"""Reference mode: backward against autograd through forward, through the real command line.

It is auto mode's first choice for an autograd Function; it must agree with exact mode on
the whole case corpus, find and name the planted bugs at 10⁶ elements alone, and never
pass (or fail) a Function on autograd's word where forward hides things from autograd.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import only

from gradcheck_cli.engine.checks.gradcheck import gradcheck
from gradcheck_cli.engine.checks.gradgradcheck import gradgradcheck
from gradcheck_cli.engine.outcome import Tolerances
from gradcheck_cli.target.discovery import import_file, resolve

CASES = Path(__file__).resolve().parent / "cases"
PLANTED = Path(__file__).resolve().parent / "data" / "reference" / "planted.py"
DIAGNOSE = Path(__file__).resolve().parent / "data" / "diagnose"

FORMS = '''
import torch
from torch.autograd import Function


class SetupContext(Function):
    """A new-style Function: forward without ctx, setup_context saves and sets attributes."""

    @staticmethod
    def forward(x, scale):
        return torch.exp(x) * scale

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)
        ctx.scale = inputs[1]

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y, None


class SortWithIndices(Function):
    """A non-differentiable second output, marked so; needs_input_grad read in forward."""

    @staticmethod
    def forward(ctx, x):
        ctx.wanted = ctx.needs_input_grad[0]
        values, indices = torch.sort(x, dim=-1)
        ctx.mark_non_differentiable(indices)
        ctx.save_for_backward(indices)
        ctx.set_materialize_grads(True)
        return values, indices

    @staticmethod
    def backward(ctx, g, _):
        (indices,) = ctx.saved_tensors
        return torch.zeros_like(g).scatter(-1, indices, g) if ctx.wanted else None


class Helper(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


class CallsAnotherFunction(Function):
    @staticmethod
    def forward(ctx, x):
        return Helper.apply(x) + 1

    @staticmethod
    def backward(ctx, g):
        return g * 2


class Wrong(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return x * g


def composite(x):
    return Wrong.apply(x) * 2
'''

SPEC = '''
module: ops.py
functions:
  SetupContext: {inputs: [{shape: [3, 4]}, {value: 2.0}]}
  SortWithIndices: {inputs: [{shape: [3, 5]}]}
  CallsAnotherFunction: {inputs: [{shape: [4]}], checks: [gradcheck]}
  Wrong: {inputs: [{shape: [4]}], checks: [gradcheck]}
  composite: {inputs: [{shape: [4]}], checks: [gradcheck]}
'''


@pytest.fixture
def forms(write_op: Any, write_spec: Any, tmp_path: Path) -> Path:
    write_op(FORMS)
    write_spec(SPEC)
    return tmp_path


def test_auto_mode_takes_reference_mode_for_functions(forms: Path, run_json: Any,
                                                      run_cli: Any) -> None:
    doc = run_json("spec.yaml", cwd=forms)
    for function in ("SetupContext", "SortWithIndices"):
        for result in (r for r in doc["results"] if r["function"] == function
                       and r["check"] in ("gradcheck", "gradgradcheck")):
            assert (result["status"], result["mode"]) == ("passed", "reference"), result
            assert result["mode_reason"].startswith("autograd through "), result
            assert "confirmed by 3 finite-difference probes per input" in result["mode_reason"]
    wrong = only(doc, function="Wrong")
    assert (wrong["status"], wrong["mode"]) == ("failed", "reference")
    assert wrong["inputs"][0]["diagnosis"]["kind"] == "scale"
    assert wrong["message"].startswith("gradient of `x` is wrong at 4 of 16 Jacobian entries")
    assert "(backward " in wrong["message"] and ", autograd " in wrong["message"]
    # A plain callable's gradient is autograd's own: auto mode says nothing, exact mode runs.
    composite = only(doc, function="composite")
    assert (composite["status"], composite["mode"], composite["mode_reason"]) == (
        "failed", "exact", "")
    code, out, _ = run_cli("spec.yaml", "-k", "SetupContext", cwd=forms)
    assert code == 0
    assert "passed (reference)" in out
    assert "reference mode:" not in out  # a pass's evidence is JSON's, not a note


def test_where_reference_mode_does_not_apply_it_says_why(forms: Path, run_json: Any) -> None:
    doc = run_json("spec.yaml", "--mode", "reference", cwd=forms)
    calls = only(doc, function="CallsAnotherFunction")
    assert (calls["status"], calls["mode"]) == ("passed", "exact")
    assert calls["mode_reason"] == (
        "reference mode does not apply: forward calls the autograd Function Helper, whose "
        "backward is hand-written, not autograd's")
    composite = only(doc, function="composite")
    assert composite["mode"] == "exact"
    assert composite["mode_reason"].startswith(
        "reference mode does not apply: not an autograd Function")


def test_graph_breaking_forwards_get_the_finite_difference_verdict(tmp_path: Path,
                                                                   run_json: Any) -> None:
    """The statuses are the case's (tests/cases/graph_breaks.yaml); here, that each says
    which graph break made it fall back."""
    shutil.copy(CASES / "graph_breaks.py", tmp_path)
    case = yaml.safe_load((CASES / "graph_breaks.yaml").read_text(encoding="utf-8"))
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(
        {"module": "graph_breaks.py", **case["spec"]}), encoding="utf-8")
    doc = run_json("spec.yaml", cwd=tmp_path)
    reasons = {r["function"]: (r["mode"], r["mode_reason"]) for r in doc["results"]}
    breaks_at_x = "reference mode does not apply: forward breaks the graph at `x`: autograd "
    for function in ("DetachRight", "DetachWrong", "NoGradRight", "NoGradWrong"):
        mode, reason = reasons[function]
        assert mode == "exact" and reason.startswith(
            breaks_at_x + "through it disagrees with finite differences there"), reason
    for function in ("NumpyRight", "NumpyWrong"):
        mode, reason = reasons[function]
        assert mode == "exact" and reason.startswith(
            breaks_at_x + "through it does not reach it"), reason
    for function in ("DataRight", "DataWrong"):
        mode, reason = reasons[function]
        assert mode == "exact" and reason.startswith(
            "reference mode does not apply: forward breaks the graph: autograd through it "
            "does not reach output 0"), reason


def _corpus() -> list[str]:
    names = []
    for path in sorted(CASES.glob("*.yaml")):
        case = yaml.safe_load(path.read_text(encoding="utf-8"))
        if "spec" in case:
            names.append(path.stem)
    return names


def _verdicts(doc: dict[str, Any]) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    return {(r["function"], r["case"], r["check"]): (
        r["status"], [i["name"] for i in r["inputs"] if not i["passed"]],
        {i["name"]: i["diagnosis"]["kind"] for i in r["inputs"] if i["diagnosis"]})
        for r in doc["results"]}


@pytest.mark.parametrize("name", _corpus())
def test_exact_and_reference_mode_agree_on_the_corpus(name: str, tmp_path: Path,
                                                      run_json: Any) -> None:
    """Every case of tests/cases with a spec, in both modes: the same statuses, the same
    inputs wrong and the same diagnoses (where reference mode does not apply it falls back
    to exact mode, which agrees with itself)."""
    case = yaml.safe_load((CASES / f"{name}.yaml").read_text(encoding="utf-8"))
    shutil.copy(CASES / f"{name}.py", tmp_path)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({"module": f"{name}.py",
                                                        **case["spec"]}), encoding="utf-8")
    extra = case.get("args", [])
    exact = _verdicts(run_json("spec.yaml", *extra, "--mode", "exact", cwd=tmp_path))
    reference = _verdicts(run_json("spec.yaml", *extra, "--mode", "reference", cwd=tmp_path))
    assert reference == exact


def _target(name: str) -> Any:
    found = resolve(import_file(PLANTED), PLANTED.resolve(), name)
    assert found is not None
    return found


def _uniform(seed: int, *shape: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=generator, dtype=torch.float64) * 2 - 1
            ).requires_grad_()


# (Function, inputs, check, the diagnosis of each wrong input)
MILLION = [
    ("OneWrongElement", 1, "gradcheck", {"x": "partial"}),
    ("Swapped", 3, "gradcheck", {"w": "swapped", "x": "swapped"}),
    ("Sign", 1, "gradcheck", {"x": "sign"}),
    ("Scale", 1, "gradcheck", {"x": "scale"}),
    ("Transposed", 2, "gradcheck", {"x": "transposed"}),
    ("PartialMask", 1, "gradcheck", {"x": "partial"}),
    ("SecondOrderOnly", 1, "gradgradcheck", {"x": "second-order"}),
]


@pytest.mark.parametrize(("function", "count", "check", "diagnosed"), MILLION)
def test_planted_bugs_at_a_million_elements(function: str, count: int, check: str,
                                            diagnosed: dict[str, str]) -> None:
    names = ["w", "x", "b"] if count == 3 else ["x", "c"][:count]
    args = [_uniform(seed, 1000, 1000) for seed in range(count)]
    if function == "Transposed":
        args[1] = args[1].detach()  # a constant
    if check == "gradcheck":
        outcome = gradcheck(_target(function), args, names, Tolerances(), 1 << 26,
                            mode="reference")
    else:
        outcome = gradgradcheck(_target(function), args, names, Tolerances(), 1 << 26, 0,
                                mode="reference")
    assert (outcome.status.value, outcome.mode) == ("failed", "reference"), outcome.message
    found = {e.name: e.diagnosis.kind for e in outcome.inputs if e.diagnosis is not None}
    assert found == diagnosed
    if function == "OneWrongElement":
        (entry,) = outcome.inputs
        assert entry.wrong_elements == 1
        assert entry.worst is not None and entry.worst.input_index == [123, 457]
        assert entry.worst.output_index == [123, 457]
        assert outcome.message.startswith("gradient of `x` is wrong at 1 of 1000000 elements")


@pytest.mark.parametrize("shape", [(10, 100), (100, 100), (1000, 1000)])
def test_no_false_alarm_on_a_right_function(shape: tuple[int, int]) -> None:
    for seed in range(2):
        outcome = gradcheck(_target("Right"), [_uniform(seed, *shape)], ["x"], Tolerances(),
                            1 << 26, mode="reference", seed=seed)
        assert (outcome.status.value, outcome.mode) == ("passed", "reference"), (
            outcome.message, outcome.mode_reason)


def test_no_finite_difference_noise_in_reference_mode(tmp_path: Path, run_json: Any) -> None:
    """What exact mode gets wrong from its step, a tight atol on a fast sine (its
    'precision' diagnosis, test_diagnose.py), is right in reference mode."""
    shutil.copytree(DIAGNOSE, tmp_path / "diagnose")
    doc = run_json("ops.yaml", "-k", "FastSine", "--case", "tight", "--check", "gradcheck",
                   cwd=tmp_path / "diagnose")
    assert (only(doc)["status"], only(doc)["mode"]) == ("passed", "reference")


def test_an_element_at_a_kink_is_left_to_finite_differences(tmp_path: Path,
                                                            run_json: Any) -> None:
    """relu with x[1] = 2.6e-8: every step straddles the kink, so the probes disagree with
    autograd at every step; exact mode decides (a kink, test_diagnose.py), and the reason
    says both what it may be."""
    shutil.copytree(DIAGNOSE, tmp_path / "diagnose")
    doc = run_json("ops.yaml", "-k", "Relu", "--case", "default", "--check", "gradcheck",
                   cwd=tmp_path / "diagnose")
    result = only(doc)
    assert (result["status"], result["mode"]) == ("failed", "exact")
    assert result["inputs"][0]["diagnosis"]["kind"] == "kink"
    assert "or a kink within the finite-difference step" in result["mode_reason"]


KERNEL = '''
import torch


@torch.library.custom_op("{ns}::fused_kernel", mutates_args=())
def fused_kernel(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(x)


class CallsAKernel(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return fused_kernel(x) * 2

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * torch.cos(x) * g
'''


def test_a_forward_calling_a_custom_kernel_falls_back_naming_it(write_op: Any, write_spec: Any,
                                                                tmp_path: Path,
                                                                run_json: Any) -> None:
    namespace = f"gcc_reference{id(tmp_path) % 100_000}"
    write_op(KERNEL.replace("{ns}", namespace))
    write_spec("module: ops.py\nfunctions:\n  CallsAKernel: {inputs: [{shape: [5]}]}\n")
    doc = run_json("spec.yaml")
    for result in doc["results"]:
        assert (result["status"], result["mode"]) == ("passed", "exact"), result
        assert result["mode_reason"] == (
            f"reference mode does not apply: forward calls a non-differentiable op "
            f"({namespace}::fused_kernel)")


@pytest.mark.parametrize(("function", "status"), [("DetachRight", "passed"),
                                                  ("DetachWrong", "failed")])
def test_a_graph_break_at_a_million_elements_is_left_to_the_probes(function: str,
                                                                   status: str) -> None:
    path = CASES / "graph_breaks.py"
    found = resolve(import_file(path), path.resolve(), function)
    assert found is not None
    outcome = gradcheck(found, [_uniform(0, 1000, 1000)], ["x"], Tolerances(), 1 << 26)
    assert (outcome.status.value, outcome.mode) == (status, "probe"), outcome.message
    assert "forward breaks the graph at `x`" in outcome.mode_reason
