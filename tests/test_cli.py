"""The command line: exit codes, options, inferred inputs, the JSON document, stdout hygiene."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, line_of, only, statuses

from gradcheck_cli import __version__
from gradcheck_cli.target.discovery import import_file

GOOD = '''
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

BROKEN = '''
import torch

SHAPES = []


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        SHAPES.append(tuple(x.shape))
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class Short(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        return a * 3 + b

    @staticmethod
    def backward(ctx, g):
        return 3 * g


class Half(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return x * g


class Cube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x ** 2 * g
'''


def test_exit_code_0_when_everything_passes(write_op, run_cli):
    write_op(GOOD)
    code, out, _ = run_cli("ops.py")
    assert code == 0
    assert out.splitlines()[-1].startswith("2 passed in ")
    assert "FAILED" not in out and "ERROR" not in out


def test_exit_code_1_and_broken_functions_do_not_stop_the_others(write_op, run_json, run_cli):
    write_op(BROKEN)
    doc = run_json("ops.py")
    assert doc["_exit_code"] == 1
    assert statuses(doc) == {
        ("Square", "gradcheck"): "passed",
        ("Square", "gradgradcheck"): "passed",
        ("Short", "gradcheck"): "error",
        ("Short", "gradgradcheck"): "error",
        ("Half", "gradcheck"): "failed",
        ("Half", "gradgradcheck"): "passed",
        ("Cube", "gradcheck"): "passed",
        ("Cube", "gradgradcheck"): "passed",
    }
    summary = doc["summary"]
    assert (summary["passed"], summary["failed"], summary["error"], summary["skipped"]) == (
        5, 1, 2, 0)
    assert summary["exit_code"] == 1
    code, out, _ = run_cli("ops.py")
    assert code == 1
    assert out.splitlines()[-1].startswith("5 passed, 1 failed, 2 error in ")
    assert "FAILED ops.py::Half[cpu-gradcheck] (seed 0)" in out
    assert "ERROR ops.py::Short[cpu-gradcheck] (seed 0)" in out


def test_exit_code_4_for_usage_errors(write_op, run_cli, tmp_path):
    write_op(GOOD)
    code, out, err = run_cli("ops.py", "--bogus")
    assert code == 4
    assert "No such option" in err and "--bogus" in err
    code, out, err = run_cli("missing.py")
    assert code == 4
    assert "gradcheck-cli: error: no such file or folder: missing.py" in err
    assert out == ""
    code, out, err = run_cli(cpu_only=False)
    assert code == 4
    assert "give at least one .py file, .yaml spec or folder" in err
    (tmp_path / "notes.txt").write_text("hello")
    code, _, err = run_cli("notes.txt")
    assert code == 4
    assert "not a .py file, a .yaml spec or a folder: notes.txt" in err
    for args in (("--atol", "-1"), ("--rtol", "-0.5"), ("--eps", "0"), ("--shape", "two"),
                 ("--shape", "2,-1"), ("--format", "xml"), ("--device", "tpu"),
                 ("--check", "hesscheck")):
        code, out, err = run_cli("ops.py", *args)
        assert code == 4, args
        assert out == "", args
        assert err, args


def test_exit_code_5_when_nothing_is_collected(write_op, run_cli, run_json, tmp_path):
    write_op("import torch\n\n\ndef not_a_function_class(x):\n    return x\n")
    code, out, _ = run_cli("ops.py")
    assert code == 5
    assert out.splitlines()[-1].startswith("no checks ran in ")
    doc = run_json("ops.py")
    assert doc["results"] == []
    assert doc["summary"]["exit_code"] == 5
    (tmp_path / "empty").mkdir()
    assert run_cli("empty")[0] == 5


def test_version(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0
    assert out.strip() == f"gradcheck-cli, version {__version__}"


def test_help(run_cli):
    code, out, _ = run_cli("--help")
    assert code == 0
    assert out.startswith("Usage: gradcheck-cli [OPTIONS] [PATHS]...")
    for option in ("--device", "--check", "--seed", "--atol", "--rtol", "--eps", "--shape",
                   "--function", "--case", "--format"):
        assert option in out
    assert "Exit codes:" in out


def test_help_and_version_do_not_import_torch():
    script = (
        "import sys\n"
        "from gradcheck_cli.cli import main\n"
        "for args in (['--help'], ['--version']):\n"
        "    try:\n"
        "        code = main(args)\n"
        "    except SystemExit as exc:\n"
        "        code = exc.code\n"
        "    assert code == 0, (args, code)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("ok")


def test_inferred_inputs_default_shape_and_shape_option(write_op, run_json):
    path = write_op(BROKEN)
    doc = run_json("ops.py", "-k", "Square", "--check", "gradcheck")
    result = only(doc, function="Square")
    assert result["status"] == "passed"
    assert result["spec"] is None
    assert [(i["name"], i["numel"]) for i in result["inputs"]] == [("x", 12)]
    assert set(import_file(path).SHAPES) == {(3, 4)}

    import_file(path).SHAPES.clear()
    doc = run_json("ops.py", "-k", "Square", "--check", "gradcheck", "--shape", "2,5")
    result = only(doc, function="Square")
    assert result["status"] == "passed"
    assert [(i["name"], i["numel"]) for i in result["inputs"]] == [("x", 10)]
    assert set(import_file(path).SHAPES) == {(2, 5)}

    import_file(path).SHAPES.clear()
    run_json("ops.py", "-k", "Square", "--check", "gradcheck", "--shape", "4")
    assert set(import_file(path).SHAPES) == {(4,)}


def test_inferred_inputs_that_forward_rejects_suggest_a_spec(write_op, run_json, run_cli):
    """No draft fits forward: an error (never a failure) in one line, with the command that
    writes a spec to fill in."""
    write_op('''
        import torch


        class Pick(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, table):
                return torch.stack([x[i] for i in table.keys()])

            @staticmethod
            def backward(ctx, g):
                return g, None
    ''')
    doc = run_json("ops.py", "--check", "gradcheck")
    result = only(doc, function="Pick")
    assert result["status"] == "error"
    assert result["location"] == "ops.py:6"  # forward's line
    lines = result["message"].splitlines()
    assert lines[0].startswith("no inputs inferred for `Pick` fit its forward (")
    assert "AttributeError: 'Tensor' object has no attribute 'keys'" in lines[0]
    assert lines[1:] == ["  hint: write a spec with the inputs it expects: "
                         "gradcheck-cli init ops.py"]
    code, out, _ = run_cli("ops.py", "--check", "gradcheck")
    assert code == 1
    assert "no inputs inferred for `Pick` fit its forward" in out


def test_inferred_index_tensor_fits_forward(write_op, run_json):
    """`x[index]` with a tensor parameter: index is drafted as int64 values in range."""
    write_op('''
        import torch


        class Pick(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, index, scale=2.0):
                ctx.save_for_backward(index)
                ctx.shape = x.shape
                ctx.scale = scale
                return x[index] * scale

            @staticmethod
            def backward(ctx, g):
                (index,) = ctx.saved_tensors
                grad = g.new_zeros(ctx.shape)
                grad.index_put_((index,), g * ctx.scale, accumulate=True)
                return grad, None, None
    ''')
    doc = run_json("ops.py", "--check", "gradcheck")
    result = only(doc, function="Pick")
    assert result["status"] == "passed", result["message"]
    assert result["inputs_inferred"].startswith("x (3")
    assert "index (" in result["inputs_inferred"] and "int64 in [0, 3) no grad" in \
        result["inputs_inferred"]


JSON_RESULT_KEYS = {
    "module", "spec", "function", "case", "device", "check", "status", "inputs", "message",
    "seed", "duration", "line", "location", "reproduce",
}
JSON_INPUT_KEYS = {"index", "name", "max_abs_error", "max_rel_error", "passed", "numel",
                   "wrong_elements", "worst"}


def test_json_document_shape(write_op, write_spec, run_json):
    ops = write_op(BROKEN)
    write_spec('''
        module: ops.py
        defaults:
          seed: 4
        functions:
          Half:
            inputs:
              - {shape: [3]}
          Cube:
            checks: [gradcheck]
            inputs:
              - {shape: [2, 2]}
    ''')
    doc = run_json("spec.yaml")
    assert doc["version"] == __version__
    assert set(doc["summary"]) >= {"passed", "failed", "error", "skipped", "duration",
                                   "exit_code"}
    assert (doc["summary"]["passed"], doc["summary"]["failed"]) == (2, 1)
    assert isinstance(doc["summary"]["duration"], float)
    assert len(doc["results"]) == 3
    for result in doc["results"]:
        assert set(result) >= JSON_RESULT_KEYS
        assert result["module"] == "ops.py"
        assert result["spec"] == "spec.yaml"
        assert result["case"] == "default"
        assert result["device"] == "cpu"
        assert result["seed"] == 4
        assert result["status"] in ("passed", "failed", "error", "skipped")
        assert isinstance(result["duration"], float) and result["duration"] >= 0
        for entry in result["inputs"]:
            assert set(entry) >= JSON_INPUT_KEYS
            assert isinstance(entry["index"], int)
            assert isinstance(entry["max_abs_error"], float)
            assert isinstance(entry["max_rel_error"], float)
    half = only(doc, function="Half", check="gradcheck")
    assert half["status"] == "failed"
    assert half["line"] == line_of(ops, "class Half(")
    assert half["location"] == f"ops.py:{line_of(ops, 'def backward', after='class Half(')}"
    [x] = half["inputs"]
    assert (x["index"], x["name"], x["passed"], x["numel"], x["wrong_elements"]) == (
        0, "x", False, 3, 3)
    assert x["max_abs_error"] > 0.1
    assert x["worst"]["output"] == 0
    assert x["worst"]["input_index"] == x["worst"]["output_index"]
    assert x["worst"]["numerical"] == pytest.approx(2 * x["worst"]["analytical"], rel=1e-6)
    assert half["message"].startswith("gradient of `x` is wrong at 3 of 9 Jacobian entries")
    assert half["reproduce"] == ("gradcheck-cli spec.yaml --function Half --case default "
                                 "--device cpu --check gradcheck --seed 4")
    grad_grad = only(doc, function="Half", check="gradgradcheck")
    assert [i["name"] for i in grad_grad["inputs"]] == ["x", "grad_output"]
    assert [i["index"] for i in grad_grad["inputs"]] == [0, 1]
    assert grad_grad["reproduce"] is None
    cube = only(doc, function="Cube")
    assert cube["message"] == "" and cube["reproduce"] is None


def test_module_that_fails_to_import(write_op, write_spec, run_json, run_cli):
    write_op('''
        import torch

        LIMIT = 1
        raise ValueError("boom at import")


        class Square(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * x

            @staticmethod
            def backward(ctx, g):
                return 2 * g
    ''', "bad.py")
    write_op(GOOD, "good.py")
    # In a folder of its own: a spec beside bad.py would stand for it (and be used by
    # `gradcheck-cli bad.py`), which test_spec_lookup covers.
    write_spec('''
        module: ../bad.py
        functions:
          Square:
            inputs:
              - {shape: [2]}
    ''', "elsewhere/spec.yaml")
    doc = run_json("bad.py", "elsewhere/spec.yaml", "good.py")
    assert doc["_exit_code"] == 1
    assert len(doc["results"]) == 4
    good = [r for r in doc["results"] if r["module"] == "good.py"]
    assert [(r["function"], r["status"]) for r in good] == [("Square", "passed")] * 2
    bad_module = only(doc, module="bad.py", spec=None)
    bad_spec = only(doc, module="bad.py", spec="elsewhere/spec.yaml")
    for result, spec in ((bad_module, None), (bad_spec, "elsewhere/spec.yaml")):
        assert result["function"] is None
        assert result["status"] == "error"
        assert result["module"] == "bad.py"
        assert result["spec"] == spec
        assert result["line"] == 4
        assert "importing the module raised ValueError: boom at import" in result["message"]
        # Paths are shown relative to the working directory, as everywhere else.
        assert result["location"] == "bad.py:4"
        assert result["message"].startswith("bad.py:4: importing the module raised ValueError")
    code, out, _ = run_cli("bad.py")
    assert code == 1
    assert "ERROR bad.py" in out
    assert "bad.py:4: importing the module raised ValueError: boom at import" in out


def test_module_with_a_syntax_error(write_op, run_json):
    write_op('''
        import torch


        class Square(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * x +

            @staticmethod
            def backward(ctx, g):
                return 2 * g
    ''')
    doc = run_json("ops.py")
    [result] = doc["results"]
    assert result["function"] is None
    assert result["status"] == "error"
    assert result["line"] == 7
    assert result["location"] == "ops.py:7:23"
    assert result["message"].startswith("ops.py:7:23: syntax error: invalid syntax")
    assert doc["_exit_code"] == 1


PRINTS = '''
import os
import sys

import torch

print("hello from import")
os.write(1, b"raw bytes from import\\n")


class Loud(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        print("forward says hi")
        return x * 2

    @staticmethod
    def backward(ctx, g):
        print("backward says hi", file=sys.stdout)
        os.write(1, b"raw bytes from backward\\n")
        return g * 2
'''


def test_user_prints_do_not_corrupt_the_json(write_op, run_cli):
    write_op(PRINTS)
    code, out, err = run_cli("ops.py", "--format", "json")
    assert code == 0
    doc = json.loads(out)  # stdout is exactly the document
    assert statuses(doc) == {("Loud", "gradcheck"): "passed", ("Loud", "gradgradcheck"): "passed"}
    assert "hello from import" in err
    assert "forward says hi" in err and "backward says hi" in err


def _script() -> list[str]:
    found = Path(sys.executable).with_name("gradcheck-cli")
    if found.exists():
        return [str(found)]
    which = shutil.which("gradcheck-cli")
    assert which, "the gradcheck-cli script is not installed"
    return [which]


def _key(doc):
    return sorted((r["function"], r["check"], r["status"], r["message"],
                   tuple((i["name"], i["passed"]) for i in r["inputs"]))
                  for r in doc["results"])


def test_installed_script_runs_checks_in_worker_processes(tmp_path, run_json):
    """The script, in its default mode (workers): same results as in-process, clean stdout."""
    (tmp_path / "ops.py").write_text(BROKEN.lstrip() + "\n" + PRINTS.lstrip())
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
    proc = subprocess.run([*_script(), "ops.py", "--format", "json", "--device", "cpu",
                           "--no-cache", "--jobs", "1"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)  # even bytes written straight to fd 1 went elsewhere
    assert only(doc, function="Loud", check="gradcheck")["status"] == "passed"
    assert "raw bytes from import" in proc.stderr
    assert "raw bytes from backward" in proc.stderr
    assert "forward says hi" in proc.stderr
    assert _key(doc) == _key(run_json("ops.py"))


def test_python_dash_m(tmp_path):
    (tmp_path / "broken.py").write_text(BROKEN.lstrip())
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
    proc = subprocess.run([sys.executable, "-m", "gradcheck_cli", "broken.py", "-k", "Half",
                           "--device", "cpu", "--jobs", "0", "--no-cache"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "FAILED broken.py::Half[cpu-gradcheck] (seed 0)" in proc.stdout
    assert proc.stdout.splitlines()[-1].startswith("1 passed, 1 failed in ")
