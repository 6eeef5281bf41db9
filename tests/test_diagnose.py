"""Diagnosis of failed gradient checks: one broken Function per kind, each with a correct twin.

The corpus is tests/data/diagnose/ops.py (+ ops.yaml); everything is asserted through the
CLI's JSON report: `diagnosis.kind` on the failing inputs, no diagnosis on the others.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import only

CORPUS = Path(__file__).resolve().parent / "data" / "diagnose"
OPS = CORPUS / "ops.py"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "diagnose"
    shutil.copytree(CORPUS, folder)
    return folder


def _line_of(text: str, path: Path = OPS, after: str | None = None) -> int:
    """The 1-based line of the first line of `path` containing `text` (after the first line
    containing `after`, when given)."""
    start = _line_of(after, path) if after else 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if number > start and text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


def _backward_line(function: str, path: Path = OPS) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    start = _line_of(f"class {function}(", path)
    for number in range(start, len(lines) + 1):
        if lines[number - 1].strip().startswith("def backward"):
            return number
    raise AssertionError(f"no backward for {function}")


def kinds(result: dict[str, Any]) -> dict[str, str | None]:
    """{input name: diagnosis kind or None}."""
    return {i["name"]: (i["diagnosis"] or {}).get("kind") for i in result["inputs"]}


def detail(result: dict[str, Any], name: str) -> str:
    entry = next(i for i in result["inputs"] if i["name"] == name)
    assert entry["diagnosis"] is not None, (name, result["inputs"])
    return entry["diagnosis"]["detail"]


def draw(shape: tuple[int, ...], seed: int, low: float = -1.0, high: float = 1.0
         ) -> torch.Tensor:
    """The values gradcheck-cli draws for a single float64 input (documented: one generator
    seeded with the seed, uniform in [low, high])."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator, dtype=torch.float64) * (high - low) + low


# broken Function, its correct twin, {input: expected kind} on the failing gradcheck
FIRST_ORDER = [
    ("MulAddSwapped", "MulAdd", {"w": "swapped", "x": "swapped", "b": None}),
    ("SineWrongSign", "Sine", {"x": "sign"}),
    ("SquareMissingTwo", "Square", {"x": "scale"}),
    ("RightMatMulTransposed", "RightMatMul", {"x": "transposed", "w": None}),
    ("SquareGradTransposed", "RightMatMul", {"x": "transposed", "a": None}),
    ("MulNoneForY", "Mul", {"x": None, "y": "zero"}),
    ("LeakyMaskOff", "Leaky", {"x": "partial"}),
    ("CubeNoisy", "Cube", {"x": "nondeterministic"}),
    ("SquareExpGrad", "Square", {"x": "unknown"}),
]


@pytest.mark.parametrize(("broken", "twin", "expected"), FIRST_ORDER,
                         ids=[row[0] for row in FIRST_ORDER])
def test_broken_first_order_gets_the_exact_diagnosis(run_json, corpus, broken, twin, expected):
    doc = run_json("ops.yaml", "-k", broken, "--check", "gradcheck", cwd=corpus)
    result = only(doc, function=broken, check="gradcheck")
    assert result["status"] == "failed", result["message"]
    assert kinds(result) == expected
    for entry in result["inputs"]:
        # Exactly the failing inputs are diagnosed; the right ones carry nothing.
        assert (entry["diagnosis"] is None) == entry["passed"], entry


CORRECT = sorted({row[1] for row in FIRST_ORDER} | {"CubeSavesInput", "FastSine"})


@pytest.mark.parametrize("twin", CORRECT)
def test_correct_twins_pass_both_checks_without_diagnosis(run_json, corpus, twin):
    doc = run_json("ops.yaml", "-k", twin, "--case", "default", cwd=corpus)
    assert doc["_exit_code"] == 0
    for check in ("gradcheck", "gradgradcheck"):
        result = only(doc, function=twin, check=check)
        assert result["status"] == "passed", (check, result["message"])
        assert result["message"] == ""
        assert result["reproduce"] is None
        assert all(entry["diagnosis"] is None for entry in result["inputs"]), result["inputs"]
        assert all(entry["passed"] for entry in result["inputs"])


def test_swapped_names_both_inputs(run_json, corpus):
    result = only(run_json("ops.yaml", "-k", "MulAddSwapped", "--check", "gradcheck",
                           cwd=corpus), check="gradcheck")
    w, x = detail(result, "w"), detail(result, "x")
    assert "`w`" in w and "`x`" in w and "wrong order" in w
    assert "`w`" in x and "`x`" in x and "wrong order" in x
    assert w.startswith("the gradient returned for `w` is the gradient of `x`")
    assert x.startswith("the gradient returned for `x` is the gradient of `w`")


def test_sign_says_minus_numerical(run_json, corpus):
    result = only(run_json("ops.yaml", "-k", "SineWrongSign", "--check", "gradcheck",
                           cwd=corpus), check="gradcheck")
    assert "wrong sign" in detail(result, "x")
    assert "-numerical" in detail(result, "x")


def test_scale_says_the_factor_and_the_missing_two(run_json, corpus):
    result = only(run_json("ops.yaml", "-k", "SquareMissingTwo", "--check", "gradcheck",
                           cwd=corpus), check="gradcheck")
    text = detail(result, "x")
    assert "factor 0.5 " in text
    assert "missing factor 2" in text


def test_transposed_names_the_transposed_matrix(run_json, corpus):
    result = only(run_json("ops.yaml", "-k", "RightMatMulTransposed", "--check", "gradcheck",
                           cwd=corpus), check="gradcheck")
    text = detail(result, "x")
    assert "transpose" in text and "`x`" in text
    assert "g @ W.T" in text


def test_zero_names_the_input_without_gradient(run_json, corpus):
    result = only(run_json("ops.yaml", "-k", "MulNoneForY", "--check", "gradcheck",
                           cwd=corpus), check="gradcheck")
    text = detail(result, "y")
    assert "no gradient for `y`" in text and "None" in text


def test_partial_counts_and_lists_the_wrong_elements(run_json, corpus):
    result = only(run_json("ops.yaml", "-k", "LeakyMaskOff", "--check", "gradcheck",
                           cwd=corpus), check="gradcheck")
    # The mask uses x > 0.5 where x > 0 was meant: wrong exactly where 0 < x <= 0.5.
    x = draw((12,), seed=0)
    wrong = [i for i, v in enumerate(x.tolist()) if 0 < v <= 0.5]
    assert 1 < len(wrong) < 12  # the corpus' seed gives a real partial mismatch
    text = detail(result, "x")
    assert f"wrong at {len(wrong)} of 12 elements" in text
    listed = [int(i) for i in re.findall(r"x\[(\d+)\]", text)]
    assert listed == wrong[:5]


def test_nondeterministic_suggests_nondet_tol(run_json, corpus):
    result = only(run_json("ops.yaml", "-k", "CubeNoisy", "--check", "gradcheck",
                           cwd=corpus), check="gradcheck")
    text = detail(result, "x")
    assert "differ by up to" in text
    assert "nondet_tol" in text
    assert "nondet_tol" in result["message"]


def test_second_order_names_the_input(run_json, corpus):
    doc = run_json("ops.yaml", "-k", "CubeSavesSquare", cwd=corpus)
    first = only(doc, check="gradcheck")
    second = only(doc, check="gradgradcheck")
    assert first["status"] == "passed"
    assert all(e["diagnosis"] is None for e in first["inputs"])
    assert second["status"] == "failed"
    assert kinds(second) == {"x": "second-order", "grad_output": None}
    text = detail(second, "x")
    # In the user's terms: the derivative of x's gradient with respect to x.
    assert "∂(grad of `x`)/∂`x`" in text
    assert "without autograd" in text
    assert "first-order gradient is wrong too" not in text


def test_second_order_alone_in_gradgradcheck(run_json, corpus):
    """Run without the gradcheck result: the diagnosis still names the input."""
    doc = run_json("ops.yaml", "-k", "CubeSavesSquare", "--check", "gradgradcheck", cwd=corpus)
    second = only(doc, check="gradgradcheck")
    assert kinds(second) == {"x": "second-order", "grad_output": None}
    assert "∂(grad of `x`)/∂`x`" in detail(second, "x")


# ------------------------------------------------------------------ kinks
def _kink_precondition() -> int:
    x = draw((40,), seed=10, low=-1e-3, high=1e-3)
    index = int(x.abs().argmin())
    assert abs(float(x[index])) < 1e-6  # the corpus' seed puts an element at the kink
    assert int((x.abs() < 1e-5).sum()) == 1
    return index


def test_kink_is_diagnosed_as_kink(run_json, corpus):
    index = _kink_precondition()
    doc = run_json("ops.yaml", "-k", "Relu", "--case", "default", "--check", "gradcheck",
                   cwd=corpus)
    result = only(doc, check="gradcheck")
    assert result["status"] == "failed"
    assert kinds(result) == {"x": "kink"}
    text = detail(result, "x")
    assert f"x[{index}]" in text
    assert "avoid: [0.0]" in text
    # Redrawing the inputs is advice, as data: the diagnosis names no flag ...
    assert "--" not in text
    assert result["advice"] == [{"kind": "dodge_kinks", "needed": None}]


def test_the_table_says_how_to_dodge_the_kink(run_cli, corpus, monkeypatch):
    # ... and the command line words it as its flag, under the failure.
    monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = run_cli("ops.yaml", "-k", "Relu", "--case", "default", "--check",
                           "gradcheck", cwd=corpus)
    assert code == 1
    assert "what to do: rerun with --dodge-kinks" in " ".join(out.split())


@pytest.mark.parametrize("case", ["exclude_zero", "avoid"])
def test_exclude_zero_and_avoid_make_the_kink_pass(run_json, corpus, case):
    doc = run_json("ops.yaml", "-k", "Relu", "--case", case, cwd=corpus)
    assert doc["_exit_code"] == 0
    for check in ("gradcheck", "gradgradcheck"):
        result = only(doc, check=check)
        assert result["status"] == "passed", (check, result["message"])
        assert all(e["diagnosis"] is None for e in result["inputs"])


def test_dodge_kinks_makes_gradcheck_pass(run_json, corpus):
    doc = run_json("ops.yaml", "-k", "Relu", "--case", "default", "--check", "gradcheck",
                   "--dodge-kinks", cwd=corpus)
    result = only(doc, check="gradcheck")
    assert result["status"] == "passed", result["message"]
    assert result["seed"] != 10
    assert "redrawn" in result["message"]


def test_kink_in_gradgradcheck_is_a_kink_not_a_second_order_bug(run_json, corpus):
    """relu's backward (g * (x > 0)) is right; at x within eps of 0 the finite difference of
    backward jumps. That is the same kink, not "a saved intermediate" in backward."""
    index = _kink_precondition()
    # Exact mode: autograd through forward has no step to straddle the kink (it passes).
    doc = run_json("ops.yaml", "-k", "Relu", "--case", "default", "--check", "gradgradcheck",
                   "--mode", "exact", cwd=corpus)
    result = only(doc, check="gradgradcheck")
    assert result["status"] == "failed"
    assert kinds(result)["x"] == "kink", detail(result, "x")
    assert f"x[{index}]" in detail(result, "x")


def test_dodge_kinks_makes_gradgradcheck_pass_too(run_json, corpus):
    doc = run_json("ops.yaml", "-k", "Relu", "--case", "default", "--dodge-kinks", cwd=corpus)
    for check in ("gradcheck", "gradgradcheck"):
        result = only(doc, check=check)
        assert result["status"] == "passed", (check, result["message"])
    assert doc["_exit_code"] == 0


# -------------------------------------------------------------- precision
def test_precision_with_tight_atol(run_json, corpus):
    # Exact mode: the reference has no finite-difference noise (it passes, test_reference.py).
    doc = run_json("ops.yaml", "-k", "FastSine", "--case", "tight", "--check", "gradcheck",
                   "--mode", "exact", cwd=corpus)
    result = only(doc, check="gradcheck")
    assert result["status"] == "failed"
    assert kinds(result) == {"x": "precision"}
    text = detail(result, "x")
    assert "changes with the step" in text and "not a wrong gradient" in text
    assert "eps" in text and "atol" in text


def test_the_same_function_passes_with_torchs_tolerances(run_json, corpus):
    doc = run_json("ops.yaml", "-k", "FastSine", "--case", "default", cwd=corpus)
    assert doc["_exit_code"] == 0


def test_unknown_gives_the_worst_element_and_both_values(run_json, corpus):
    result = only(run_json("ops.yaml", "-k", "SquareExpGrad", "--check", "gradcheck",
                           cwd=corpus), check="gradcheck")
    text = detail(result, "x")
    entry = result["inputs"][0]
    worst = entry["worst"]
    index = ", ".join(str(i) for i in worst["input_index"])
    assert text.startswith("no simple pattern fits")
    assert f"x[{index}]" in text
    assert f"analytical {worst['analytical']:.6g}" in text
    assert f"numerical {worst['numerical']:.6g}" in text


def test_table_shows_the_swapped_diagnosis(run_cli, corpus, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = run_cli("ops.yaml", "-k", "MulAddSwapped", cwd=corpus)
    assert code == 1
    flat = " ".join(out.split())
    assert "w: swapped: the gradient returned for `w` is the gradient of `x`" in flat
    assert "x: swapped: the gradient returned for `x` is the gradient of `w`" in flat
    assert "b: swapped" not in flat


# -------------------------------------------------------- contract errors
CONTRACT = [
    ("TwoGradsForOne", "backward returned 2 gradient(s) but forward takes 1 input(s)",
     "Return one gradient per input of forward", "backward"),
    ("GradOfWrongShape", "has shape (2) but the input has shape (3, 4)",
     "Each gradient must have its input's shape", "backward"),
    # torch notices the change where backward reads ctx.saved_tensors the second time
    ("InplaceOnSaved", "a tensor saved for backward was modified in place",
     "Do not change ctx.saved_tensors", "backward body"),
    ("LegacyForward", "LegacyForward.forward is not a @staticmethod",
     "Add @staticmethod above `def forward`", "def forward(self, x)"),
    # torch rejects the float after forward returns: the traceback has no line in forward
    ("SavesAFloat", "ctx.save_for_backward was given a non-tensor",
     "keep other values as attributes", "forward"),
]


@pytest.mark.parametrize(("function", "what", "fix", "where"), CONTRACT,
                         ids=[row[0] for row in CONTRACT])
def test_contract_errors_in_plain_words_with_the_fix(run_json, corpus, function, what, fix,
                                                     where):
    doc = run_json("ops.yaml", "-k", function, cwd=corpus)
    assert doc["_exit_code"] == 1
    for check in ("gradcheck", "gradgradcheck"):
        result = only(doc, function=function, check=check)
        assert result["status"] == "error", (check, result["status"], result["message"])
        assert what in result["message"]
        assert fix in result["message"]
        assert "Traceback" not in result["message"]
        if where == "backward":
            lines = {_backward_line(function)}
        elif where == "backward body":
            lines = {_backward_line(function) + k for k in (1, 2)}
        elif where == "forward":
            lines = {_line_of("def forward", OPS, after=f"class {function}(")}
        else:
            lines = {_line_of(where)}
        assert result["location"] in {f"ops.py:{n}" for n in lines}, (check, result["location"])


def test_contract_messages_are_distinct(run_json, corpus):
    args = [arg for row in CONTRACT for arg in ("-k", row[0])]
    doc = run_json("ops.yaml", *args, "--check", "gradcheck", cwd=corpus)
    messages = {r["function"]: r["message"] for r in doc["results"]}
    assert len(set(messages.values())) == len(CONTRACT)


@pytest.mark.parametrize(("function", "shapes", "other", "expected"), [
    ("RightMatMulTransposed", [[400, 48], [48, 48]], "w", "the Jacobian block of `x`"),
    ("SquareGradTransposed", [[150, 150], [150, 150]], "a", "the gradient of `x`"),
])
def test_probe_mode_tells_a_transposed_matrix(corpus, run_json, function, shapes, other,
                                               expected):
    _write_big_spec(corpus, function, shapes)
    result = only(run_json("big.yaml", "--mode", "probe", cwd=corpus), check="gradcheck")
    assert result["status"] == "failed" and result["mode"] == "probe", result["message"]
    assert kinds(result) == {"x": "transposed", other: None}
    text = detail(result, "x")
    assert text.startswith(expected) and "(seen along random directions)" in text


def test_probe_mode_does_not_call_every_matmul_bug_transposed(corpus, run_json):
    _write_big_spec(corpus, "RightMatMulScaled", [[400, 48], [48, 48]])
    result = only(run_json("big.yaml", "--mode", "probe", cwd=corpus), check="gradcheck")
    assert result["status"] == "failed"
    assert kinds(result)["x"] not in ("transposed", None)


def _write_big_spec(corpus: Path, function: str, shapes: list[list[int]]) -> None:
    inputs = ", ".join(f"{{shape: {shape}}}" for shape in shapes)
    (corpus / "big.yaml").write_text(
        f"module: ops.py\nfunctions:\n  {function}:\n    checks: [gradcheck]\n"
        f"    inputs: [{inputs}]\n")


# ------------------------------------------------------- complex outputs
COMPLEX_OPS = """
import torch


class SquareAndX(torch.autograd.Function):
    # x -> x² + i·x: a real input, a complex output.

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.complex(x * x, x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g.real * 2 * x + g.imag


class SquareAndXHalfReal(SquareAndX):
    # The real part's derivative misses its factor 2.

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g.real * x + g.imag


class SquareAndXImagSign(SquareAndX):
    # The imaginary part's derivative has the wrong sign.

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g.real * 2 * x - g.imag


class SquareBoth(torch.autograd.Function):
    # x -> x² (1 + i), whose backward misses the factor 2 in both parts.

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.complex(x * x, x * x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g.real + g.imag) * x


class SinCosComplex(torch.autograd.Function):
    # x -> sin x + i cos x, right.

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.complex(x.sin(), x.cos())

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g.real * x.cos() - g.imag * x.sin()
"""


@pytest.mark.parametrize("mode", ["exact", "probe"])
@pytest.mark.parametrize(("function", "kind", "part"), [
    ("SquareAndXHalfReal", "scale", "the real"),
    ("SquareAndXImagSign", "sign", "the imaginary"),
    ("SquareBoth", "scale", "the real and the imaginary"),
])
def test_complex_outputs_are_diagnosed_part_by_part(write_op, write_spec, run_json, mode,
                                                    function, kind, part):
    # As torch, complex outputs are checked as two real functions, their real and imaginary
    # parts; each is diagnosed on its own, and the diagnosis says where it was seen.
    write_op(COMPLEX_OPS)
    write_spec({"module": "ops.py", "functions": {
        name: {"checks": ["gradcheck"], "inputs": [{"shape": [5]}]}
        for name in ("SquareAndX", function)}})
    doc = run_json("spec.yaml", "--mode", mode)
    right = only(doc, function="SquareAndX")
    assert right["status"] == "passed", right["message"]
    assert kinds(right) == {"x": None}
    result = only(doc, function=function)
    assert result["status"] == "failed" and result["mode"] == mode, result["message"]
    assert kinds(result) == {"x": kind}
    text = detail(result, "x")
    assert text.startswith("the gradient of `x` ")
    assert text.endswith(f" (in {part} part of the outputs)")
    if kind == "scale":
        assert "factor 0.5 " in text and "missing factor 2" in text


def test_complex_outputs_precision(write_op, write_spec, run_json):
    # The step-size look (noise or bug?) compares both parts again at other steps.
    write_op(COMPLEX_OPS)
    write_spec({"module": "ops.py", "functions": {"SinCosComplex": {
        "checks": ["gradcheck"], "atol": 1e-11, "rtol": 0.0, "inputs": [{"shape": [5]}]}}})
    result = only(run_json("spec.yaml"), function="SinCosComplex")
    assert result["status"] == "failed" and result["mode"] == "exact"
    assert kinds(result) == {"x": "precision"}
    assert "changes with the step" in detail(result, "x")


# ------------------------------------------------------------- the rules
def test_every_kind_is_one_rule_with_its_place_in_each_mode():
    from gradcheck_cli.engine.diagnose.kinds import Kind
    from gradcheck_cli.engine.diagnose.registry import chain, evidence_rules, rule_for

    for kind in Kind:
        assert rule_for(kind).kind is kind
        assert f"{kind}" == kind.value  # what JSON and the reports show
    # The order the patterns are tried in: exact mode compares whole blocks (a kink first,
    # as any pattern may show there); probe mode trusts what it measured for a swap or a
    # transposition before the patterns of its directional tests. In both, backward's own
    # answer to a doubled grad_output comes before any pattern: it is direct evidence.
    assert [str(r.kind) for r in chain("exact")] == [
        "nondeterministic", "kink", "ignores-grad-output", "second-order", "zero", "swapped",
        "conjugate", "sign", "scale", "transposed", "partial", "unknown"]
    assert [str(r.kind) for r in chain("probe")] == [
        "nondeterministic", "ignores-grad-output", "second-order", "swapped", "transposed",
        "zero", "sign", "scale", "partial", "unknown"]
    assert [str(r.kind) for r in evidence_rules()] == ["swapped", "transposed"]
    assert rule_for(Kind.KINK).advice == ("dodge_kinks",)


# ------------------------------------------------- backward ignores grad_output
GRAD_OUTPUT_OPS = """
import torch


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 2 * x


class SquareIgnoresGradOutput(Square):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x


class MulAddX(torch.autograd.Function):
    # x * y + x, whose backward leaves grad_output out of one term of x's gradient
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y + x

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return g * y + 1, g * x
"""


@pytest.mark.parametrize("mode", ["exact", "probe"])
@pytest.mark.parametrize("shape", [[5], [3, 4], [2, 3, 4]])
def test_backward_ignoring_grad_output_is_named_at_any_shape(write_op, write_spec, run_json,
                                                             tmp_path, mode, shape):
    # Only a one-element output lets the Jacobians agree (torch's zero-grad_output sub-check
    # names the bug then); at any other shape they disagree without a pattern, and
    # backward's own answer to a doubled grad_output tells why.
    ops = write_op(GRAD_OUTPUT_OPS)
    write_spec({"module": "ops.py", "functions": {
        name: {"checks": ["gradcheck"], "inputs": [{"shape": shape}]}
        for name in ("Square", "SquareIgnoresGradOutput")}})
    doc = run_json("spec.yaml", "--mode", mode)
    right = only(doc, function="Square")
    assert right["status"] == "passed" and kinds(right) == {"x": None}, right["message"]
    result = only(doc, function="SquareIgnoresGradOutput")
    assert result["status"] == "failed" and result["mode"] == mode, result["message"]
    assert kinds(result) == {"x": "ignores-grad-output"}
    assert detail(result, "x").startswith(
        "backward ignores grad_output: multiply by it (the gradient of `x` is the same for "
        "grad_output v and 2v;")
    assert result["location"] == f"ops.py:{_backward_line('SquareIgnoresGradOutput', ops)}"


@pytest.mark.parametrize("mode", ["exact", "probe"])
def test_a_term_without_grad_output_is_named_in_part(write_op, write_spec, run_json, mode):
    write_op(GRAD_OUTPUT_OPS)
    write_spec({"module": "ops.py", "functions": {"MulAddX": {
        "checks": ["gradcheck"], "inputs": [{"shape": [3, 4]}, {"shape": [3, 4]}]}}})
    result = only(run_json("spec.yaml", "--mode", mode), function="MulAddX")
    assert result["status"] == "failed", result["message"]
    assert kinds(result) == {"x": "ignores-grad-output", "y": None}
    text = detail(result, "x")
    assert text.startswith("backward ignores grad_output in part: multiply every term by it")
    assert "not zero when grad_output is, up to 1:" in text


CORRECT_BACKWARDS = """
import torch


class Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        return x @ w.T + b

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g @ w, g.T @ x, g.sum(0)


class Relu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0)


class SinCos(torch.autograd.Function):
    # two outputs
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin(), x.cos()

    @staticmethod
    def backward(ctx, g1, g2):
        (x,) = ctx.saved_tensors
        return g1 * x.cos() - g2 * x.sin()


class Softmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dim):
        y = torch.softmax(x, dim)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return y * (g - (g * y).sum(ctx.dim, keepdim=True)), None


class LinearDoubledWeight(Linear):
    # wrong, but linear in grad_output: another kind's bug
    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g @ w, 2 * g.T @ x, g.sum(0)
"""


def test_the_grad_output_evidence_is_silent_on_backwards_linear_in_it(write_op):
    """The rule asked about every input of correct backwards (and a linear but wrong one),
    as if their check had failed: no diagnosis, since doubling grad_output doubles their
    gradients exactly."""
    from gradcheck_cli.engine.checks.comparing import puller
    from gradcheck_cli.engine.checks.subject import Subject
    from gradcheck_cli.engine.diagnose.case import Block, Case, Context
    from gradcheck_cli.engine.diagnose.kinds import Kind
    from gradcheck_cli.engine.diagnose.registry import rule_for
    from gradcheck_cli.engine.outcome import Tolerances
    from gradcheck_cli.engine.stats import InputStats
    from gradcheck_cli.target.discovery import find_targets, import_file

    path = write_op(CORRECT_BACKWARDS)
    targets = {t.name: t for t in find_targets(import_file(path), path)}
    generator = torch.Generator().manual_seed(0)

    def tensor(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator, dtype=torch.float64).sub(0.5) \
            .requires_grad_(True)

    args = {"Linear": [tensor(3, 4), tensor(5, 4), tensor(5)], "Relu": [tensor(3, 4)],
            "SinCos": [tensor(3, 4)], "Softmax": [tensor(3, 4), 1],
            "LinearDoubledWeight": [tensor(3, 4), tensor(5, 4), tensor(5)]}
    rule = rule_for(Kind.IGNORES_GRAD_OUTPUT)
    context = Context(Tolerances())
    asked = 0
    for name, values in args.items():
        subject = Subject(targets[name], targets[name].call, values,
                          [f"a{i}" for i in range(len(values))])
        pull = puller(subject, subject.fn, seed=0)
        blocks = [Block(InputStats(i, v.numel(), wrong=1), f"a{i}", tuple(v.shape))
                  for i, v in enumerate(values) if isinstance(v, torch.Tensor)]
        for block in blocks:
            case = Case(block, blocks, context, pull=pull)
            assert rule.exact(case) is None and rule.probe(case) is None, (name, block.name)
            asked += 1
    assert asked == 9


# ---------------------------------------------- composites of custom Functions
MODULE_OPS = """
import torch
from torch import nn
from torch.autograd import Function


class Linear(Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return x @ weight.T + bias

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        return g @ weight, g.T @ x, g.sum(0)


class DoubledWeight(Linear):
    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        return g @ weight, 2 * g.T @ x, g.sum(0)


class NegatedInput(Linear):
    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        return -g @ weight, g.T @ x, g.sum(0)


class TwoLayer(nn.Module):
    def __init__(self, second="weight"):
        super().__init__()
        self.fc1 = nn.Linear(4, 5)
        self.fc2 = nn.Linear(5, 3)
        self.detach = second == "detach"
        self.second = {"weight": DoubledWeight, "input": NegatedInput}.get(second, Linear)

    def forward(self, x):
        h = torch.tanh(Linear.apply(x, self.fc1.weight, self.fc1.bias))
        if self.detach:
            h = h.detach() + 0 * h  # the module's own bug: fc1 gets no gradient
        return self.second.apply(h, self.fc2.weight, self.fc2.bias)


def two_layer(x, w1, b1, w2, b2):
    return DoubledWeight.apply(torch.tanh(Linear.apply(x, w1, b1)), w2, b2)
"""

NAMES_OF_TWO_LAYER = ["x", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


def _two_layer_spec(second: str) -> dict[str, Any]:
    return {"module": "ops.py", "functions": {"TwoLayer": {
        "checks": ["gradcheck"], "init": {"second": second},
        "inputs": [{"shape": [3, 4], "name": "x"}]}}}


@pytest.mark.parametrize("mode", ["exact", "probe"])
def test_a_module_names_the_wrong_parameter_and_its_functions_backward(
        write_op, write_spec, run_json, mode):
    ops = write_op(MODULE_OPS)
    write_spec(_two_layer_spec("weight"))
    result = only(run_json("spec.yaml", "--mode", mode), function="TwoLayer")
    assert result["status"] == "failed" and result["mode"] == mode, result["message"]
    assert [e["name"] for e in result["inputs"]] == NAMES_OF_TWO_LAYER
    assert kinds(result) == {"x": None, "fc1.weight": None, "fc1.bias": None,
                             "fc2.weight": "scale", "fc2.bias": None}
    assert detail(result, "fc2.weight").endswith(
        "; the error comes from `DoubledWeight.backward` (the gradient it returns for its "
        "input `weight`)")
    # The Function's backward, not the module's forward.
    assert result["location"] == f"ops.py:{_backward_line('DoubledWeight', ops)}"


@pytest.mark.parametrize("mode", ["exact", "probe"])
def test_a_wrong_input_gradient_downstream_is_told_where_it_comes_from(
        write_op, write_spec, run_json, mode):
    # fc2's Function negates the gradient of its input: every gradient upstream (x, fc1's
    # parameters) is wrong, though fc1's own Function is right.
    ops = write_op(MODULE_OPS)
    write_spec(_two_layer_spec("input"))
    result = only(run_json("spec.yaml", "--mode", mode), function="TwoLayer")
    assert result["status"] == "failed", result["message"]
    assert kinds(result) == {"x": "sign", "fc1.weight": "sign", "fc1.bias": "sign",
                             "fc2.weight": None, "fc2.bias": None}
    for name in ("x", "fc1.weight", "fc1.bias"):
        assert detail(result, name).endswith(
            "; the error comes from `NegatedInput.backward` (the gradient it returns for its "
            f"input `x`) and flows back to `{name}`")
    assert result["location"] == f"ops.py:{_backward_line('NegatedInput', ops)}"


def test_a_plain_function_on_functions_points_at_the_wrong_one(write_op, write_spec,
                                                                run_json):
    ops = write_op(MODULE_OPS)
    write_spec({"module": "ops.py", "functions": {"two_layer": {
        "checks": ["gradcheck"],
        "inputs": [{"shape": [3, 4], "name": "x"}, {"shape": [5, 4], "name": "w1"},
                   {"shape": [5], "name": "b1"}, {"shape": [2, 5], "name": "w2"},
                   {"shape": [2], "name": "b2"}]}}})
    result = only(run_json("spec.yaml"), function="two_layer")
    assert result["status"] == "failed", result["message"]
    assert kinds(result) == {"x": None, "w1": None, "b1": None, "w2": "scale", "b2": None}
    assert "`DoubledWeight.backward`" in detail(result, "w2")
    assert result["location"] == f"ops.py:{_backward_line('DoubledWeight', ops)}"


def test_a_right_module_passes_and_a_module_bug_outside_functions_keeps_forward(
        write_op, write_spec, run_json):
    ops = write_op(MODULE_OPS)
    write_spec(_two_layer_spec("none"))
    result = only(run_json("spec.yaml"), function="TwoLayer")
    assert result["status"] == "passed", result["message"]
    assert all(e["diagnosis"] is None for e in result["inputs"])
    # Every Function right on its own: the bug is the module's, and so is the location.
    write_spec(_two_layer_spec("detach"))
    result = only(run_json("spec.yaml"), function="TwoLayer")
    assert result["status"] == "failed", result["message"]
    assert kinds(result) == {"x": "zero", "fc1.weight": "zero", "fc1.bias": "zero",
                             "fc2.weight": None, "fc2.bias": None}
    assert all("the error comes from" not in detail(result, n) for n in ("x", "fc1.bias"))
    assert result["location"] == f"ops.py:{_line_of('def forward(self, x)', ops)}"


# ------------------------------------------- second order, told by first order's verdict
SECOND_ORDER_OPS = """
import torch


class CubeHalfDetached(torch.autograd.Function):
    # right at first order; half of x detached, so its own derivative is wrong
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x.detach() * x


class CubeWrongAndHalfDetached(CubeHalfDetached):
    # wrong at first order (2x² for 3x²), and half detached too
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 2 * x.detach() * x
"""


@pytest.mark.parametrize(("function", "checks", "told", "not_told"), [
    ("CubeHalfDetached", ["gradcheck", "gradgradcheck"],
     "the second derivative is wrong: ∂(grad of `x`)/∂`x`: backward's formula is right at "
     "first order but not differentiable as written", "wrong too"),
    ("CubeWrongAndHalfDetached", ["gradcheck", "gradgradcheck"],
     "the first-order gradient is wrong too (gradcheck fails): fix it first. Besides, the "
     "second derivative is wrong: ∂(grad of `x`)/∂`x`: backward is also not differentiable "
     "as written", "right at first order"),
    # First order not checked in this run: no claim about it either way.
    ("CubeWrongAndHalfDetached", ["gradgradcheck"],
     "the second derivative is wrong: ∂(grad of `x`)/∂`x`: backward is not differentiable "
     "as written", "first order"),
])
def test_second_order_agrees_with_the_first_order_verdict(write_op, write_spec, run_json,
                                                          function, checks, told, not_told):
    write_op(SECOND_ORDER_OPS)
    write_spec({"module": "ops.py", "functions": {function: {
        "checks": checks, "inputs": [{"shape": [4]}]}}})
    doc = run_json("spec.yaml", "--jobs", "0")
    second = only(doc, check="gradgradcheck")
    assert second["status"] == "failed", second["message"]
    assert kinds(second) == {"x": "second-order", "grad_output": None}
    text = detail(second, "x")
    assert text.startswith(told), text
    assert not_told not in text
    if "gradcheck" in checks:
        first = only(doc, check="gradcheck")
        assert (first["status"] == "passed") == (function == "CubeHalfDetached")
