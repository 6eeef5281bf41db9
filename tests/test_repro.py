"""--save-repro scripts and the `reproduce` command: each reproduces exactly its result."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import only

OPS = '''
import torch
from torch.autograd import Function


class MulAdd(Function):
    @staticmethod
    def forward(ctx, w, x, b):
        ctx.save_for_backward(w, x)
        return w * x + b

    @staticmethod
    def backward(ctx, g):
        w, x = ctx.saved_tensors
        return g * x, g * w, g


class MulAddSwapped(Function):
    @staticmethod
    def forward(ctx, w, x, b):
        ctx.save_for_backward(w, x)
        return w * x + b

    @staticmethod
    def backward(ctx, g):
        w, x = ctx.saved_tensors
        return g * w, g * x, g


class CubeSavesSquare(Function):
    @staticmethod
    def forward(ctx, x):
        square = x * x
        ctx.save_for_backward(square)
        return square * x

    @staticmethod
    def backward(ctx, g):
        (square,) = ctx.saved_tensors
        return 3 * square * g


class ScaleIgnoresAlpha(Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = alpha
        return x * alpha

    @staticmethod
    def backward(ctx, g):
        return g, None


class TakeHalf(Function):
    """y = x[index] / 2, with backward forgetting the 1/2."""

    @staticmethod
    def forward(ctx, x, index):
        ctx.save_for_backward(index)
        ctx.size = x.shape[0]
        return x[index] / 2

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        grad = torch.zeros(ctx.size, dtype=g.dtype)
        grad.index_add_(0, index, g)
        return grad, None
'''

SPEC = '''
module: ops.py
functions:
  MulAdd:
    inputs: [{shape: [2, 3], name: w}, {shape: [2, 3], name: x}, {shape: [2, 3], name: b}]
  MulAddSwapped:
    inputs: [{shape: [2, 3], name: w}, {shape: [2, 3], name: x}, {shape: [2, 3], name: b}]
  CubeSavesSquare:
    inputs: [{shape: [4]}]
  ScaleIgnoresAlpha:
    seed: 3
    inputs: [{shape: [40], low: -1.0e-3, high: 1.0e-3, avoid: [0.0]}, 2.5]
    cases:
      - {name: wide, inputs: [{shape: [5], low: 0.5, high: 4.0}, -1.5]}
  TakeHalf:
    inputs: [{shape: [5]}, {shape: [6], dtype: int64, high: 5}]
'''


@pytest.fixture
def project(write_op, write_spec, tmp_path: Path) -> Path:
    write_op(OPS)
    write_spec(SPEC)
    return tmp_path


def _python(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, code, *args] if code.endswith(".py")
                          else [sys.executable, "-c", code, *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


# Runs repro scripts as `python SCRIPT` would (run_name "__main__"), each with its stdout
# captured, then, for each probe, the central difference and the analytical derivative at
# one Jacobian entry of the inputs the script built. One interpreter for all: importing
# torch is the slow part.
RUNNER = r"""
import contextlib, io, json, runpy, sys
import torch
jobs = json.loads(sys.argv[1])
report = []
for path, probes in jobs:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ns = runpy.run_path(path, run_name="__main__")
    fn, inputs = ns["fn"], list(ns["inputs"])
    found = []
    for position, input_index, output, output_index, eps in probes:
        x = inputs[position]

        def out_at(values):
            o = fn(*values)
            o = o if isinstance(o, tuple) else (o,)
            return o[output].detach()[tuple(output_index)].item()

        with torch.no_grad():
            plus, minus = x.detach().clone(), x.detach().clone()
            plus[tuple(input_index)] += eps
            minus[tuple(input_index)] -= eps
            up = out_at([plus if i == position else a for i, a in enumerate(inputs)])
            down = out_at([minus if i == position else a for i, a in enumerate(inputs)])
        outs = fn(*inputs)
        outs = outs if isinstance(outs, tuple) else (outs,)
        grad = torch.autograd.grad(outs[output][tuple(output_index)], x)[0]
        found.append({"numerical": (up - down) / (2 * eps),
                      "analytical": grad[tuple(input_index)].item()})
    report.append({"stdout": out.getvalue(), "probes": found})
print(json.dumps(report))
"""


def _probe(result: dict[str, Any], name: str) -> list[Any]:
    entry = next(e for e in result["inputs"] if e["name"] == name)
    worst = entry["worst"]
    return [entry["index"], worst["input_index"], worst["output"], worst["output_index"], 1e-6]


def _run_scripts(jobs: list[tuple[Path, list[list[Any]]]], cwd: Path) -> list[dict[str, Any]]:
    proc = _python(RUNNER, json.dumps([[str(path), probes] for path, probes in jobs]), cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _same_worst(found: dict[str, Any], result: dict[str, Any], name: str) -> None:
    """The script rebuilt the very inputs of the result: at the worst entry of `name`, its
    central difference and backward give the JSON's numerical and analytical values."""
    worst = next(e for e in result["inputs"] if e["name"] == name)["worst"]
    assert found["numerical"] == pytest.approx(worst["numerical"], rel=1e-6, abs=1e-9)
    assert found["analytical"] == pytest.approx(worst["analytical"], rel=1e-9, abs=1e-12)


def test_save_repro_writes_one_script_per_failed_check(project, run_json):
    doc = run_json("spec.yaml", "-k", "MulAdd", "-k", "MulAddSwapped", "-k", "CubeSavesSquare",
                   "--save-repro", "repro")
    failed = [r for r in doc["results"] if r["status"] == "failed"]
    assert {(r["function"], r["check"]) for r in failed} == {
        ("MulAddSwapped", "gradcheck"), ("CubeSavesSquare", "gradgradcheck")}
    written = sorted(p.name for p in (project / "repro").iterdir())
    assert written == ["repro_CubeSavesSquare_default_cpu_gradgradcheck.py",
                       "repro_MulAddSwapped_default_cpu_gradcheck.py"]
    assert "wrote repro" in doc["_stderr"]


def test_no_scripts_when_everything_passes(project, run_json):
    doc = run_json("spec.yaml", "-k", "MulAdd", "--save-repro", "repro")
    assert doc["_exit_code"] == 0
    assert not (project / "repro").exists() or not any((project / "repro").iterdir())


def test_gradcheck_repro_runs_with_python_and_fails_in_torch(project, run_json):
    run_json("spec.yaml", "-k", "MulAddSwapped", "--save-repro", "repro")
    script = project / "repro" / "repro_MulAddSwapped_default_cpu_gradcheck.py"
    # Standalone: torch alone, run from anywhere.
    assert "gradcheck_cli" not in script.read_text(encoding="utf-8")
    proc = _python(str(script), cwd=project / "repro")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "gradcheck: False"
    assert "Jacobian mismatch" in proc.stdout  # torch's own report follows


def test_repro_scripts_rebuild_the_same_inputs(project, run_json):
    """Several inputs, the spec's seed, points to avoid (values redrawn), a literal
    argument, a second case, an integer index tensor; and a gradgradcheck repro."""
    doc = run_json("spec.yaml", "-k", "MulAddSwapped", "-k", "ScaleIgnoresAlpha", "-k",
                   "TakeHalf", "-k", "CubeSavesSquare", "--save-repro", "repro")
    folder = project / "repro"
    swapped = only(doc, function="MulAddSwapped", check="gradcheck")
    scaled = only(doc, function="ScaleIgnoresAlpha", case="default", check="gradcheck")
    wide = only(doc, function="ScaleIgnoresAlpha", case="wide", check="gradcheck")
    take = only(doc, function="TakeHalf", check="gradcheck")
    assert scaled["seed"] == 3
    for result in (swapped, scaled, wide, take):
        assert result["status"] == "failed"
    jobs = [
        (folder / "repro_MulAddSwapped_default_cpu_gradcheck.py",
         [_probe(swapped, "w"), _probe(swapped, "x")]),
        (folder / "repro_ScaleIgnoresAlpha_default_cpu_gradcheck.py", [_probe(scaled, "x")]),
        (folder / "repro_ScaleIgnoresAlpha_wide_cpu_gradcheck.py", [_probe(wide, "x")]),
        (folder / "repro_TakeHalf_default_cpu_gradcheck.py", [_probe(take, "x")]),
        (folder / "repro_CubeSavesSquare_default_cpu_gradgradcheck.py", []),
    ]
    found = _run_scripts(jobs, project)
    for report in found[:4]:
        assert report["stdout"].splitlines()[0] == "gradcheck: False"
    assert found[4]["stdout"].splitlines()[0] == "gradgradcheck: False"
    _same_worst(found[0]["probes"][0], swapped, "w")
    _same_worst(found[0]["probes"][1], swapped, "x")
    _same_worst(found[1]["probes"][0], scaled, "x")
    _same_worst(found[2]["probes"][0], wide, "x")
    _same_worst(found[3]["probes"][0], take, "x")


def test_repro_with_a_seed_from_the_command_line(project, run_json):
    doc = run_json("spec.yaml", "-k", "MulAddSwapped", "--check", "gradcheck", "--seed", "7",
                   "--save-repro", "repro")
    assert only(doc, check="gradcheck")["seed"] == 7
    text = (project / "repro" / "repro_MulAddSwapped_default_cpu_gradcheck.py").read_text(
        encoding="utf-8")
    assert "torch.Generator().manual_seed(7)" in text


def test_repro_of_a_module_in_a_package_with_relative_imports(write_op, write_spec, tmp_path,
                                                              run_json):
    """The CLI imports a file inside a package as part of it; so must the script."""
    write_op("", "pkg/__init__.py")
    write_op("import torch\n\n\ndef helper(x):\n    return x * x\n", "pkg/helpers.py")
    write_op('''
        import torch

        from .helpers import helper


        class SquareHalf(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return helper(x)

            @staticmethod
            def backward(ctx, g):
                (x,) = ctx.saved_tensors
                return x * g
        ''', "pkg/ops.py")
    write_spec("module: pkg/ops.py\nfunctions:\n  SquareHalf: {inputs: [{shape: [4]}]}\n")
    doc = run_json("spec.yaml", "--check", "gradcheck", "--save-repro", "repro")
    assert only(doc, check="gradcheck")["status"] == "failed"
    script = tmp_path / "repro" / "repro_SquareHalf_default_cpu_gradcheck.py"
    proc = _python(str(script), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "gradcheck: False"


# ------------------------------------------------------- the reproduce command
def _rerun(run_json, command: str, cwd: Path) -> dict[str, Any]:
    argv = shlex.split(command)
    assert argv[0] == "gradcheck-cli"
    return run_json(*argv[1:], cwd=cwd)


@pytest.mark.parametrize(("function", "case", "check"), [
    ("MulAddSwapped", "default", "gradcheck"),
    ("CubeSavesSquare", "default", "gradgradcheck"),
    ("ScaleIgnoresAlpha", "default", "gradcheck"),
    ("ScaleIgnoresAlpha", "wide", "gradcheck"),
])
def test_reproduce_command_reruns_exactly_that_result(project, run_json, function, case, check):
    doc = run_json("spec.yaml")
    result = only(doc, function=function, case=case, check=check)
    assert result["status"] == "failed"
    again = _rerun(run_json, result["reproduce"], project)
    assert len(again["results"]) == 1
    (rerun,) = again["results"]
    for key in ("function", "case", "device", "check", "status", "seed", "message"):
        assert rerun[key] == result[key], key
    assert [(e["name"], e["max_abs_error"], e["wrong_elements"]) for e in rerun["inputs"]] == \
        [(e["name"], e["max_abs_error"], e["wrong_elements"]) for e in result["inputs"]]
    assert again["_exit_code"] == 1


def test_reproduce_command_keeps_a_command_line_seed(project, run_json):
    doc = run_json("spec.yaml", "-k", "MulAddSwapped", "--seed", "5")
    result = only(doc, check="gradcheck")
    assert result["reproduce"].endswith("--seed 5")
    again = _rerun(run_json, result["reproduce"], project)
    (rerun,) = again["results"]
    assert rerun["seed"] == 5 and rerun["message"] == result["message"]


def test_reproduce_command_of_a_float32_failure_runs(write_op, write_spec, tmp_path, run_json):
    """Every failure prints the command that reproduces only that result: a float32 one too."""
    write_op('''
        import torch


        class Lossy(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x * x

            @staticmethod
            def backward(ctx, g):
                (x,) = ctx.saved_tensors
                big = x * 1e4
                return (big + 2 * x * g) - big
        ''')
    write_spec("module: ops.py\nfunctions:\n  Lossy: {float32: true, inputs: [{shape: [6]}]}\n")
    doc = run_json("spec.yaml")
    result = only(doc, check="float32")
    assert result["status"] == "failed"
    again = _rerun(run_json, result["reproduce"], tmp_path)
    assert again["_exit_code"] == 1, again["_stderr"]
    (rerun,) = again["results"]
    assert (rerun["check"], rerun["status"]) == ("float32", "failed")


def test_scripts_follow_the_checks_torch_call(tmp_path):
    """Which results get a script, and which torch call it makes, is the CHECKS registry's
    `torch_call`: a check without one (float32, capabilities) gets none."""
    from gradcheck_cli.engine.checks import CHECKS
    from gradcheck_cli.report import repro
    from gradcheck_cli.results import CheckResult, Status

    module = tmp_path / "ops.py"
    module.write_text("", encoding="utf-8")
    results = [CheckResult(module=str(module), spec=None, function="Op", case="default",
                           device="cpu", check=name, status=Status.FAILED, seed=0,
                           recipe={"inputs": []}) for name in CHECKS]
    written = repro.save(results, tmp_path / "repro")
    calls = {name: kind.torch_call for name, kind in CHECKS.items() if kind.torch_call}
    assert sorted(p.name for p in written) == sorted(
        f"repro_Op_default_cpu_{name}.py" for name in calls)
    for path in written:
        name = path.stem.rsplit("_", 1)[1]
        assert f"ok = {calls[name]}(fn, inputs" in path.read_text(encoding="utf-8")


def test_repro_passes_keyword_and_list_inputs_as_the_check_did(write_op, write_spec, tmp_path,
                                                               run_json):
    # The case file's ops: a list whose second tensor's gradient is wrong, and a custom op
    # taking a Tensor[] and a keyword-only float, called through torch.ops in the script.
    source = (Path(__file__).parent / "cases" / "keyword_and_list_inputs.py").read_text()
    write_op(source)
    write_spec('''
        module: ops.py
        functions:
          pair_of_list:
            inputs: [{list: [{shape: [4]}, {shape: [4]}]}]
          mix:
            inputs: [{list: [{shape: [3]}, {shape: [3]}]}]
            kwargs: {alpha: 2.0}
    ''')
    doc = run_json("spec.yaml", "--check", "gradcheck", "--save-repro", "repro")
    assert {r["function"]: r["status"] for r in doc["results"]} == {
        "pair_of_list": "failed", "mix": "failed"}
    for name in ("pair_of_list", "mix"):
        script = tmp_path / "repro" / f"repro_{name}_default_cpu_gradcheck.py"
        proc = _python(str(script), cwd=tmp_path / "repro")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[0] == "gradcheck: False", proc.stdout
        # torch names the flat input whose gradient is wrong: the list's second tensor.
        assert "with respect to input 1" in proc.stdout
    assert "OP = 'gcc_kwcases::mix'" in (
        tmp_path / "repro" / "repro_mix_default_cpu_gradcheck.py").read_text()
