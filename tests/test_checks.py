"""The checks agree with torch.autograd, and say which input is wrong and why."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import errors_by_name, line_of, only, statuses
from torch.autograd.gradcheck import GradcheckError

from gradcheck_cli.engine.inputs import build_inputs, make_grad_outputs
from gradcheck_cli.engine.jacobian import as_tuple, is_diff_tensor
from gradcheck_cli.specs.specfile import load_spec
from gradcheck_cli.target.discovery import import_file, resolve

CORPUS = Path(__file__).resolve().parent / "data" / "corpus"
CASES = Path(__file__).resolve().parent / "cases"


def corpus_line(function: str, text: str) -> int:
    """The line of corpus.py holding `text` in (or after) `class <function>`."""
    return line_of(CORPUS / "corpus.py", text, after=f"class {function}(")

# A passing result has no message but these notes.
PASS_NOTES = {
    ("IgnoresGradOutput", "gradgradcheck"):
        "no differentiable outputs; the numerical gradient is zero",
}

# name, gradcheck status, gradgradcheck status
CORRECT = [
    ("Square", "passed", "passed"),
    ("Sine", "passed", "passed"),
    ("MulAdd", "passed", "passed"),
    ("MatMul", "passed", "passed"),
    ("ExpSavesOutput", "passed", "passed"),
    ("SinCos", "passed", "passed"),
    ("ScaleBy", "passed", "passed"),
    ("ComplexSquare", "passed", "passed"),
    ("Softplus", "passed", "passed"),
    ("Tanh", "passed", "passed"),
    ("Gather", "passed", "passed"),
    ("Weighted", "passed", "passed"),
    ("smooth", "passed", "passed"),
]
BROKEN = [
    # The backward of these is wrong, but itself differentiable: its derivative is right.
    ("Swapped", "failed", "passed"),
    ("MissingFactor", "failed", "passed"),
    ("WrongSign", "failed", "passed"),
    ("TransposedMatMul", "failed", "passed"),
    ("NoneGrad", "failed", "passed"),
    ("ZeroGrad", "failed", "passed"),
    ("MaskOffByThreshold", "failed", "passed"),
    ("IgnoresGradOutput", "failed", "passed"),
    ("SinCosWrongSign", "failed", "passed"),
    ("ScaleIgnoresAlpha", "failed", "passed"),
    ("ComplexNoConj", "failed", "passed"),
    ("RandomBackward", "failed", "failed"),
    ("InfBackward", "failed", "failed"),
    # torch raises (not a GradcheckError): an error, not a wrong value.
    ("InplaceSaved", "error", "error"),
    ("WrongCount", "error", "error"),
    ("WrongShape", "error", "error"),
    ("SinCosNoMaterialize", "error", "passed"),
]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    shutil.copytree(CORPUS, folder)
    return folder


def torch_verdict(check) -> str:
    """torch's answer in our words: True passed, False failed, an exception error."""
    try:
        ok = check()
    except GradcheckError as exc:  # pragma: no cover - raise_exception=False never raises it
        raise AssertionError(f"torch raised GradcheckError: {exc}") from exc
    except Exception:
        return "error"
    return "passed" if ok else "failed"


def torch_statuses(folder: Path, name: str, seed: int = 0, **tolerances) -> dict[str, str]:
    """torch.autograd.gradcheck / gradgradcheck on the inputs the CLI builds for `name`."""
    spec = load_spec(folder / "corpus.yaml")
    assert spec.error is None
    function = next(f for f in spec.functions if f.name == name)
    specs = function.cases[0].inputs
    path = folder / "corpus.py"
    target = resolve(import_file(path), path.resolve(), name)
    assert target is not None

    def first() -> bool:
        args = build_inputs(target, specs, seed, "cpu").args
        torch.manual_seed(seed)
        return torch.autograd.gradcheck(target.call, tuple(args), raise_exception=False,
                                        **tolerances)

    def second() -> bool:
        args = build_inputs(target, specs, seed, "cpu").args
        outputs = [o for o in as_tuple(target.call(*args)) if is_diff_tensor(o)]
        grad_outputs = make_grad_outputs(tuple(outputs), seed)
        args = build_inputs(target, specs, seed, "cpu").args
        torch.manual_seed(seed)
        return torch.autograd.gradgradcheck(target.call, tuple(args), tuple(grad_outputs),
                                            raise_exception=False, **tolerances)

    return {"gradcheck": torch_verdict(first), "gradgradcheck": torch_verdict(second)}


@pytest.mark.parametrize(("name", "first", "second"), CORRECT + BROKEN,
                         ids=[c[0] for c in CORRECT + BROKEN])
def test_status_agrees_with_torch(corpus, run_json, name, first, second):
    doc = run_json("corpus.yaml", "-k", name, cwd=corpus)
    got = {r["check"]: r["status"] for r in doc["results"]}
    assert got == {"gradcheck": first, "gradgradcheck": second}, [
        r["message"] for r in doc["results"]]
    assert torch_statuses(corpus, name) == got
    for result in doc["results"]:
        assert result["function"] == name
        assert result["seed"] == 0
    # Each status has its own shape of result; `got` is the expected statuses by now.
    for check, status in got.items():
        result = only(doc, check=check)
        if status == "passed":
            assert result["message"] == PASS_NOTES.get((name, check), "")
            assert all(i["passed"] for i in result["inputs"])
        elif status == "failed":
            assert result["message"]
            assert result["reproduce"].startswith("gradcheck-cli corpus.yaml --function ")
        else:
            assert status == "error"
            assert result["message"]
            assert result["inputs"] == []


def test_whole_corpus_in_one_run(corpus, run_json):
    doc = run_json("corpus.yaml", cwd=corpus)
    expected = {}
    for name, first, second in CORRECT + BROKEN:
        expected[(name, "gradcheck")] = first
        expected[(name, "gradgradcheck")] = second
    assert statuses(doc) == expected
    counts = {s: list(expected.values()).count(s) for s in ("passed", "failed", "error")}
    summary = doc["summary"]
    assert {k: summary[k] for k in ("passed", "failed", "error", "skipped", "exit_code")} == {
        **counts, "skipped": 0, "exit_code": 1}


def test_swapped_gradients_name_the_wrong_inputs(corpus, run_json, run_cli):
    # Exact mode: its per-input errors (b's is finite-difference noise, not 0).
    doc = run_json("corpus.yaml", "-k", "Swapped", "--check", "gradcheck", "--mode", "exact",
                   cwd=corpus)
    result = only(doc, function="Swapped", check="gradcheck")
    assert result["status"] == "failed"
    assert [(i["index"], i["name"], i["passed"]) for i in result["inputs"]] == [
        (0, "w", False), (1, "x", False), (2, "b", True)]
    errors = errors_by_name(result)
    assert errors["w"] > 0.1 and errors["x"] > 0.1
    assert errors["b"] < 1e-6
    assert result["inputs"][2]["max_rel_error"] < 1e-6
    assert result["inputs"][0]["wrong_elements"] == 6
    backward = f"corpus.py:{corpus_line('Swapped', 'def backward')}"
    assert result["location"] == backward
    lines = result["message"].splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("gradient of `w` is wrong at 6 of 36 Jacobian entries, "
                               "max abs error ")
    assert lines[1].startswith("gradient of `x` is wrong at 6 of 36 Jacobian entries, ")
    assert "`b`" not in result["message"]

    code, out, _ = run_cli("corpus.yaml", "-k", "Swapped", "--check", "gradcheck", "--mode",
                           "exact", cwd=corpus)
    assert code == 1
    row = next(line for line in out.splitlines() if line.startswith("corpus.yaml"))
    # w and x marked wrong with their (large) errors; b with a tiny error and no mark.
    assert re.search(r"\bw=\d\S*\(wrong\)\s+x=\d\S*\(wrong\)\s+b=\d(\.\d)?e-\d\d\s", row), row
    assert not re.search(r"b=\S+\(wrong\)", row)
    assert "FAILED corpus.yaml::Swapped[cpu-gradcheck] (seed 0)" in out
    assert f"at {backward}" in out
    # The per-input table under the failure: input, max abs, max rel, wrong entries, worst at.
    details = {line.split()[0]: line.split() for line in out.splitlines()
               if line.strip() and line.split()[0] in ("w", "x", "b")}
    assert float(details["w"][1]) > 0.1 and details["w"][3] == "6" and details["w"][4] == "w[0,"
    assert float(details["x"][1]) > 0.1 and details["x"][3] == "6"
    assert float(details["b"][1]) < 1e-6 and details["b"][3] == "0" and len(details["b"]) == 4
    assert "reproduce: gradcheck-cli corpus.yaml --function Swapped --case default --device " \
           "cpu --check gradcheck --seed 0" in out


def test_inplace_change_of_saved_tensor_is_an_error(corpus, run_json):
    doc = run_json("corpus.yaml", "-k", "InplaceSaved", cwd=corpus)
    for result in doc["results"]:
        assert result["status"] == "error"
        assert "saved for backward was modified in place" in result["message"]
        assert "in-place" in result["message"]
        assert "wrong at" not in result["message"]  # not reported as a value mismatch
        assert result["inputs"] == []
        # where backward unpacks the saved y
        assert result["location"] == \
            f"corpus.py:{corpus_line('InplaceSaved', '(y,) = ctx.saved_tensors')}"


def test_messages_of_other_broken_functions(corpus, run_json):
    doc = run_json("corpus.yaml", "--check", "gradcheck", "--mode", "exact", cwd=corpus)

    def message(name):
        return only(doc, function=name)["message"]

    assert message("RandomBackward").startswith(
        "backward is nondeterministic: running it twice on the same input and grad_output "
        "gave different gradients for `x` (by up to ")
    assert "set `nondet_tol` (now 0)" in message("RandomBackward")
    assert message("IgnoresGradOutput") == (
        "backward is not multiplied by grad_output: with grad_output = 0 it still returned a "
        "non-zero gradient for `x`")
    assert message("WrongCount").startswith(
        "backward returned 1 gradient(s) but forward takes 2 input(s).")
    assert only(doc, function="WrongCount")["location"] == \
        f"corpus.py:{corpus_line('WrongCount', 'def backward')}"
    assert message("WrongShape").startswith(
        "backward's gradient 0 (for input `x`) has shape () but the input has shape (3).")
    assert "-> output 1[" in message("SinCosWrongSign")  # the cos output is the wrong one
    assert "max abs error 3 at x[0] -> output 0[0] (analytical 0, numerical 3)" in \
        message("NoneGrad")
    assert errors_by_name(only(doc, function="NoneGrad")) == pytest.approx(
        {"x": 3.0, "z": 0.0}, abs=1e-6)
    mask = only(doc, function="MaskOffByThreshold")["inputs"][0]
    assert 0 < mask["wrong_elements"] < 12  # only the elements between 0 and 0.5
    assert mask["worst"]["analytical"] == 0.0
    assert mask["worst"]["numerical"] == pytest.approx(1.0)
    matmul = only(doc, function="TransposedMatMul")
    assert [i["passed"] for i in matmul["inputs"]] == [False, True]
    complex_result = only(doc, function="ComplexNoConj")
    assert complex_result["inputs"][0]["worst"]["analytical"] == pytest.approx(
        [-complex_result["inputs"][0]["worst"]["numerical"][0],
         complex_result["inputs"][0]["worst"]["numerical"][1]], abs=1e-6)


def test_non_finite_gradient_from_backward(corpus, run_json):
    doc = run_json("corpus.yaml", "-k", "InfBackward", cwd=corpus)
    first = only(doc, check="gradcheck")
    assert first["status"] == "failed"
    assert first["message"] == (
        "backward returned non-finite values for `x` (9 elements, first at x[0])")
    [x] = first["inputs"]
    assert x["passed"] is False
    assert x["note"].startswith("analytical gradient not finite (9 elements")
    # The error of a non-finite gradient is not small: it is reported as unknown, never 0.
    assert x["max_abs_error"] is None
    assert x["max_rel_error"] is None
    # Second order: backward's outputs are not finite. That is backward's fault, not a
    # forward outside its domain.
    second = only(doc, check="gradgradcheck")
    assert second["status"] == "failed"
    assert "forward returned" not in second["message"]
    assert "backward" in second["message"]


def test_tolerances_from_spec_and_flags_agree_with_torch(corpus, write_spec, run_json):
    (corpus / "extra.py").write_text('''
import torch


class Slightly(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, g):
        return g * 3.0001


class Noisy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (2 * x + 1e-9 * torch.rand(x.shape, dtype=x.dtype)) * g
''')
    (corpus / "corpus.yaml").write_text('''
module: extra.py
defaults:
  checks: [gradcheck]
functions:
  Slightly: {inputs: [{shape: [3]}]}
  Noisy: {inputs: [{shape: [3]}], nondet_tol: 1e-6}
''')
    # extra.py is loaded under the name corpus.py by torch_statuses: point it there.
    shutil.copy(corpus / "extra.py", corpus / "corpus.py")
    (corpus / "corpus.yaml").write_text((corpus / "corpus.yaml").read_text().replace(
        "extra.py", "corpus.py"))
    doc = run_json("corpus.yaml", cwd=corpus)
    assert statuses(doc) == {("Slightly", "gradcheck"): "passed",
                             ("Noisy", "gradcheck"): "passed"}
    assert torch_statuses(corpus, "Slightly")["gradcheck"] == "passed"
    assert torch_statuses(corpus, "Noisy", nondet_tol=1e-6)["gradcheck"] == "passed"
    assert torch_statuses(corpus, "Noisy")["gradcheck"] == "failed"

    doc = run_json("corpus.yaml", "--atol", "1e-9", "--rtol", "1e-9", cwd=corpus)
    assert only(doc, function="Slightly")["status"] == "failed"
    assert torch_statuses(corpus, "Slightly", atol=1e-9, rtol=1e-9)["gradcheck"] == "failed"


def test_seed_changes_the_inputs(corpus, run_json):
    one = run_json("corpus.yaml", "-k", "Swapped", "--check", "gradcheck", cwd=corpus)
    two = run_json("corpus.yaml", "-k", "Swapped", "--check", "gradcheck", "--seed", "5",
                   cwd=corpus)
    again = run_json("corpus.yaml", "-k", "Swapped", "--check", "gradcheck", cwd=corpus)
    first, second, third = (d["results"][0] for d in (one, two, again))
    assert second["seed"] == 5
    assert first["inputs"][0]["max_abs_error"] != second["inputs"][0]["max_abs_error"]
    assert first["inputs"] == third["inputs"]  # same seed, same numbers
    assert torch_statuses(corpus, "Swapped", seed=5)["gradcheck"] == "failed"


# Moved to tests/cases/: forward_non_finite (a NaN forward is an error naming low/high),
# backward_raises (an exception in backward), once_differentiable (gradgradcheck skipped by
# default). The tests below use those ops in other ways.
LOG = (CASES / "forward_non_finite.py").read_text(encoding="utf-8")


def test_non_finite_forward_is_an_error_in_gradgradcheck_too(write_op, write_spec, run_json):
    """log(x) at negative x is NaN: no check of those inputs may pass."""
    write_op(LOG)
    write_spec('''
        module: ops.py
        functions:
          Log:
            inputs:
              - {shape: [6]}
    ''')
    doc = run_json("spec.yaml")
    assert statuses(doc) == {("Log", "gradcheck"): "error", ("Log", "gradgradcheck"): "error"}
    for result in doc["results"]:
        assert "non-finite" in result["message"]
        assert "`low`/`high`" in result["message"]


ONCE = (CASES / "once_differentiable.py").read_text(encoding="utf-8")


def test_once_differentiable_fails_gradgradcheck_when_asked(write_op, write_spec, run_json):
    write_op(ONCE)
    write_spec('''
        module: ops.py
        functions:
          Once:
            checks: [gradcheck, gradgradcheck]
            inputs:
              - {shape: [3]}
    ''')
    doc = run_json("spec.yaml")
    assert statuses(doc) == {("Once", "gradcheck"): "passed", ("Once", "gradgradcheck"): "failed"}
    failed = only(doc, check="gradgradcheck")
    assert failed["message"] == (
        "Once.backward is decorated @once_differentiable, so it has no second derivative, but "
        "gradgradcheck was asked for explicitly")
    backward = line_of(CASES / "once_differentiable.py", "def backward")
    assert failed["location"] == f"ops.py:{backward}"
    assert doc["_exit_code"] == 1
    # Asking on the command line is explicit too.
    write_spec('''
        module: ops.py
        functions:
          Once:
            inputs:
              - {shape: [3]}
    ''')
    doc = run_json("spec.yaml", "--check", "gradgradcheck")
    assert statuses(doc) == {("Once", "gradgradcheck"): "failed"}


CUDA_SPEC = '''
module: ops.py
functions:
  Square:
    devices: [cpu, cuda]
    inputs:
      - {shape: [3]}
'''

SQUARE = '''
import torch


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g
'''


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_cuda_is_skipped_without_cuda(write_op, write_spec, run_json):
    write_op(SQUARE)
    write_spec(CUDA_SPEC)
    doc = run_json("spec.yaml", cpu_only=False)
    got = [(r["device"], r["check"], r["status"], r["message"]) for r in doc["results"]]
    assert got == [
        ("cpu", "gradcheck", "passed", ""),
        ("cpu", "gradgradcheck", "passed", ""),
        ("cuda", "gradcheck", "skipped", "CUDA not available"),
        ("cuda", "gradgradcheck", "skipped", "CUDA not available"),
    ]
    assert doc["_exit_code"] == 0
    doc = run_json("spec.yaml", "--device", "cuda", cpu_only=False)
    assert {r["status"] for r in doc["results"]} == {"skipped"}
    assert doc["_exit_code"] == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_results_pass_on_cuda(write_op, write_spec, run_json):
    write_op(SQUARE)
    write_spec(CUDA_SPEC)
    doc = run_json("spec.yaml", cpu_only=False)
    got = [(r["device"], r["check"], r["status"]) for r in doc["results"]]
    assert got == [
        ("cpu", "gradcheck", "passed"),
        ("cpu", "gradgradcheck", "passed"),
        ("cuda", "gradcheck", "passed"),
        ("cuda", "gradgradcheck", "passed"),
    ]
    cpu, cuda = (only(doc, device=d, check="gradcheck") for d in ("cpu", "cuda"))
    assert errors_by_name(cuda)["x"] < 1e-6
    assert errors_by_name(cpu)["x"] == pytest.approx(errors_by_name(cuda)["x"], abs=1e-8)


GRAD_MODE_OP = '''
import torch


class GradModeSquare(torch.autograd.Function):
    """Its backward gives another value when grad mode is off (as kernels chosen by grad
    mode can): in grad mode it is right, and torch's gradgradcheck runs it in grad mode."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        scale = 2.0 if torch.is_grad_enabled() else 2.5
        return g * scale * x
'''


def test_second_order_runs_backward_in_grad_mode_as_torch(write_op, write_spec, run_json):
    """The numerical side of gradgradcheck evaluates backward with create_graph=True, as
    torch does, so a backward that depends on grad mode gets torch's verdict."""
    write_op(GRAD_MODE_OP, "gm.py")
    write_spec({"module": "gm.py",
                "functions": {"GradModeSquare": {"inputs": [{"shape": [3]}]}}})
    doc = run_json("spec.yaml")
    namespace: dict[str, Any] = {}
    exec(GRAD_MODE_OP, namespace)
    x = (torch.rand(3, dtype=torch.float64) + 0.5).requires_grad_()
    assert torch.autograd.gradgradcheck(namespace["GradModeSquare"].apply, (x,))
    assert only(doc, check="gradgradcheck")["status"] == "passed"
