"""The pytest plugin: spec files become items with the CLI's names, outcomes and failure text."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch  # here, not in a test: pytester drops modules first imported during a test

pytest_plugins = ["pytester"]

OPS = '''
import torch


class MultiplyAdd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, x, b):
        ctx.save_for_backward(w, x)
        return w * x + b

    @staticmethod
    def backward(ctx, grad_output):
        w, x = ctx.saved_tensors
        return grad_output * x, grad_output * w, grad_output


class Swapped(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, x, b):
        ctx.save_for_backward(w, x)
        return w * x + b

    @staticmethod
    def backward(ctx, grad_output):
        w, x = ctx.saved_tensors
        return grad_output * w, grad_output * x, grad_output


class Raises(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        raise ValueError("no forward today")

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output
'''

SPEC = '''
module: ops.py
defaults:
  devices: [cpu, cuda]
functions:
  MultiplyAdd:
    inputs:
      - {shape: [3, 4], name: w}
      - {shape: [3, 4], name: x}
      - {shape: [4], name: b}
    cases:
      - {name: wide, inputs: [{shape: [2, 6]}, {shape: [2, 6]}, {shape: [6]}]}
  Swapped:
    checks: [gradcheck]
    inputs:
      - {shape: [3, 4], name: w}
      - {shape: [3, 4], name: x}
      - {shape: [3, 4], name: b}
'''

CPU_IDS = [
    "gradcheck_ops.yaml::MultiplyAdd[cpu-gradcheck]",
    "gradcheck_ops.yaml::MultiplyAdd[cpu-gradgradcheck]",
    "gradcheck_ops.yaml::MultiplyAdd[wide-cpu-gradcheck]",
    "gradcheck_ops.yaml::MultiplyAdd[wide-cpu-gradgradcheck]",
    "gradcheck_ops.yaml::Swapped[cpu-gradcheck]",
]


def _dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip()


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A folder with ops.py (one right, one broken Function), its spec, and unrelated YAML."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makefile(".py", ops=_dedent(OPS))
    pytester.makefile(".yaml", gradcheck_ops=_dedent(SPEC))
    # A valid spec under a name that does not match: left alone unless configured.
    pytester.makefile(".yaml", other=_dedent(SPEC))
    pytester.makefile(".yml", workflow="on: push\njobs: {}\n")
    return pytester


def _collected(result: pytest.RunResult) -> list[str]:
    return [line.strip() for line in result.stdout.lines if "::" in line]


def test_items_names_outcomes_and_failure_text(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-v", "--gradcheck-device", "cpu", "-rfs")
    result.assert_outcomes(passed=4, failed=1)
    outcomes = ["PASSED", "PASSED", "PASSED", "PASSED", "FAILED"]
    result.stdout.fnmatch_lines([f"{_escape(i)} {o}*" for i, o in zip(CPU_IDS, outcomes)])
    assert "cuda" not in "\n".join(_collected(result))  # --gradcheck-device restricts
    out = result.stdout.str()
    assert "FAILED gradcheck_ops.yaml::Swapped[cpu-gradcheck] - gradient of `w` is wrong" in out
    # The CLI's per-input table, with the wrong inputs named, and its diagnosis.
    result.stdout.fnmatch_lines([
        "input*max abs error*max rel error*wrong entries*verdict*worst at",
        "w *WRONG*",
        "x *WRONG*",
        "b *ok*",
    ])
    assert "gradient of `x` is wrong" in out
    assert "w: swapped:" in out
    assert "reproduce: gradcheck-cli gradcheck_ops.yaml --function Swapped" in out


def _escape(nodeid: str) -> str:
    return nodeid.replace("[", "[[]")


def test_cuda_items_are_skipped_without_cuda(project: pytest.Pytester) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: cuda items run")
    result = project.runpytest_subprocess("-rs")
    result.assert_outcomes(passed=4, failed=1, skipped=5)
    # Skips point at the spec's line of the Function (or case), not at the plugin.
    result.stdout.fnmatch_lines([
        "SKIPPED [[]2] gradcheck_ops.yaml:5: CUDA not available",  # `MultiplyAdd:`
        "SKIPPED [[]2] gradcheck_ops.yaml:11: CUDA not available",  # its case `wide`
        "SKIPPED [[]1] gradcheck_ops.yaml:12: CUDA not available",  # `Swapped:`
    ])


def test_reportinfo_points_at_the_spec_line(project: pytest.Pytester) -> None:
    # In a subprocess: an in-process run would import torch and then drop it from
    # sys.modules with the rest of the run's imports, and torch cannot be imported twice.
    project.makeconftest('''
        def pytest_collection_modifyitems(items):
            for item in items:
                path, line, name = item.reportinfo()
                marked = item.get_closest_marker("gradcheck") is not None
                print(f"INFO {item.nodeid} {path.name}:{line} {name} {marked}")
    ''')
    result = project.runpytest_subprocess("--collect-only", "-q", "--gradcheck-device", "cpu",
                                          "-s")
    info = [line.split(" ", 1)[1] for line in result.stdout.lines if line.startswith("INFO ")]
    assert info == [  # 0-based lines, as pytest's reportinfo: `MultiplyAdd:` is line 5
        f"{CPU_IDS[0]} gradcheck_ops.yaml:4 MultiplyAdd[cpu-gradcheck] True",
        f"{CPU_IDS[1]} gradcheck_ops.yaml:4 MultiplyAdd[cpu-gradgradcheck] True",
        f"{CPU_IDS[2]} gradcheck_ops.yaml:10 MultiplyAdd[wide-cpu-gradcheck] True",
        f"{CPU_IDS[3]} gradcheck_ops.yaml:10 MultiplyAdd[wide-cpu-gradgradcheck] True",
        f"{CPU_IDS[4]} gradcheck_ops.yaml:11 Swapped[cpu-gradcheck] True",
    ]


def test_spec_errors_are_one_failing_item(project: pytest.Pytester) -> None:
    project.makefile(".yaml", gradcheck_broken="module: ops.py\nfunctions: [\n")
    project.makefile(".yaml", gradcheck_missing=_dedent('''
        module: ops.py
        functions:
          Nope:
            inputs: [{shape: [3]}]
          MultiplyAdd:
            checks: [gradcheck]
            devices: [cpu]
            inputs: [{shape: [2]}, {shape: [2]}, {shape: [2]}]
          Raises:
            checks: [gradcheck]
            inputs: [{shape: [2]}]
    '''))
    project.makefile(".yaml", gradcheck_nomodule=_dedent('''
        module: nowhere.py
        functions:
          F:
            inputs: [{shape: [3]}]
    '''))
    result = project.runpytest_subprocess("--gradcheck-device", "cpu", "-rf")
    result.assert_outcomes(passed=5, failed=5)
    result.stdout.fnmatch_lines([
        "FAILED gradcheck_broken.yaml::collect - gradcheck_broken.yaml:2:13: YAML*",
        "FAILED gradcheck_missing.yaml::Nope - gradcheck_missing.yaml:3: `Nope`*",
        "FAILED gradcheck_missing.yaml::Raises[[]cpu-gradcheck[]] - ValueError*",
        "FAILED gradcheck_nomodule.yaml::collect - *module file not found",
    ])
    out = result.stdout.str()
    assert "YAML syntax error: expected the node content" in out
    assert "`Nope` is not defined in ops.py" in out
    assert "no forward today" in out  # an `error` result fails its item with the message


def test_ini_and_command_line_choose_the_files(project: pytest.Pytester) -> None:
    project.mkdir("specs")
    (project.path / "specs" / "ops.yaml").write_text(
        _dedent(SPEC).replace("module: ops.py", "module: ../ops.py"))
    # A glob without `/` matches file names; one with `/`, paths below the rootdir.
    # The devices come from the project's [tool.gradcheck-cli], as for the CLI.
    project.makepyprojecttoml('''
        [tool.pytest.ini_options]
        gradcheck_specs = ["other.yaml", "specs/*.yaml"]

        [tool.gradcheck-cli]
        devices = ["cpu"]
    ''')
    result = project.runpytest_subprocess("--collect-only", "-q")
    assert _collected(result) == ([i.replace("gradcheck_ops", "other") for i in CPU_IDS]
                                  + [i.replace("gradcheck_ops", "specs/ops") for i in CPU_IDS])

    result = project.runpytest_subprocess("--collect-only", "-q", "--gradcheck-device", "cpu",
                                          "--gradcheck-specs", "gradcheck_*.yaml")
    assert _collected(result) == CPU_IDS


def test_off_by_default_for_other_yaml(project: pytest.Pytester) -> None:
    (project.path / "gradcheck_ops.yaml").unlink()
    result = project.runpytest_subprocess("--collect-only", "-q")
    assert _collected(result) == []
    result = project.runpytest_subprocess("--gradcheck-device", "cpu", "other.yaml")
    result.assert_outcomes(passed=4, failed=1)  # a file named on the command line is collected


def test_runs_under_xdist(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    result = project.runpytest_subprocess("-n", "2", "--gradcheck-device", "cpu", "-rf")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*FAILED gradcheck_ops.yaml::Swapped[[]cpu-gradcheck[]]*"])
    assert "w: swapped:" in result.stdout.str()


def test_importing_the_plugin_does_not_import_torch() -> None:
    code = ("import sys, gradcheck_cli.pytest_plugin; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_plain_pytest_runs_do_not_import_torch(pytester: pytest.Pytester,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    pytester.makepyfile(test_plain='''
        import sys

        def test_plain(request):
            assert request.config.pluginmanager.has_plugin("gradcheck")
            assert "torch" not in sys.modules
    ''')
    pytester.makefile(".yaml", config="a: 1\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_plugin_and_cli_run_the_same_checks_for_the_same_project_config(
        project: pytest.Pytester) -> None:
    """Both front ends resolve their Settings with the same function: the project's checks
    (float32 and capabilities included) and devices give the same items as the CLI's
    results."""
    import json

    project.makefile(".toml", pyproject=textwrap.dedent('''
        [tool.gradcheck-cli]
        checks = ["gradcheck", "float32", "capabilities"]
        devices = ["cpu"]
    '''))
    cli = subprocess.run(
        [sys.executable, "-m", "gradcheck_cli", "gradcheck_ops.yaml", "--format", "json",
         "--no-cache", "-j", "0"],
        cwd=project.path, capture_output=True, text=True, timeout=300)
    doc = json.loads(cli.stdout)
    from_cli = sorted(
        f"{r['function']}[{'' if r['case'] == 'default' else r['case'] + '-'}"
        f"{r['device']}-{r['check']}]" for r in doc["results"])
    result = project.runpytest_subprocess("--collect-only", "-q", "gradcheck_ops.yaml")
    from_plugin = sorted(line.split("::", 1)[1] for line in result.outlines
                         if line.startswith("gradcheck_ops.yaml::"))
    assert from_plugin == from_cli
    assert "MultiplyAdd[cpu-float32]" in from_plugin
    assert "MultiplyAdd[cpu-capabilities]" in from_plugin


def test_deselecting_gradcheck_items_does_not_import_torch(project: pytest.Pytester) -> None:
    """Collecting spec items reads YAML and the module's source only: `-m "not gradcheck"`
    leaves a test run as light as without the plugin."""
    project.makepyfile(test_plain='''
        import sys

        def test_plain():
            assert "torch" not in sys.modules
    ''')
    result = project.runpytest_subprocess("-m", "not gradcheck", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == 1 and outcomes["deselected"] >= 6, outcomes
