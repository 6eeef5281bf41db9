"""The pytest plugin on CI: --lf and --sw re-run only failed gradcheck items, and
--gradcheck-shard splits them as the CLI's --shard does."""

from __future__ import annotations

import re
import textwrap

import pytest
import torch  # noqa: F401  # here, not in a test: pytester drops modules first imported during one

pytest_plugins = ["pytester"]

OPS = '''
import torch


def _function(factor):
    class Op(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return factor * x * g
    return Op


''' + "".join(f"Op{i} = _function({3 if i in (2, 5) else 2})\n" for i in range(8))

SPEC = "module: ops.py\ndefaults: {devices: [cpu], checks: [gradcheck]}\nfunctions:\n" + "".join(
    f"  Op{i}: {{inputs: [{{shape: [2]}}]}}\n" for i in range(8))

FAILING = ["gradcheck_ops.yaml::Op2[cpu-gradcheck]", "gradcheck_ops.yaml::Op5[cpu-gradcheck]"]


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makefile(".py", ops=textwrap.dedent(OPS))
    pytester.makefile(".yaml", gradcheck_ops=SPEC)
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    return pytester


def _ran(result: pytest.RunResult) -> list[str]:
    return sorted(re.sub(r" (PASSED|FAILED).*", "", line.strip())
                  for line in result.stdout.lines
                  if re.search(r"::\S+ (PASSED|FAILED)", line))


def test_last_failed_reruns_only_the_failed_items(project: pytest.Pytester) -> None:
    project.runpytest_subprocess().assert_outcomes(passed=7, failed=2)
    again = project.runpytest_subprocess("--lf", "-v")
    again.assert_outcomes(failed=2)
    assert _ran(again) == FAILING
    again.stdout.fnmatch_lines(["run-last-failure: rerun previous 2 failures*"])
    # Named on the command line, the spec file too: only its failed items run.
    named = project.runpytest_subprocess("--lf", "-v", "gradcheck_ops.yaml")
    named.assert_outcomes(failed=2, deselected=6)
    assert _ran(named) == FAILING
    # Fixed, they pass once, and the next --lf has nothing left to re-run of them.
    (project.path / "ops.py").write_text(textwrap.dedent(OPS).replace(
        "_function(3)", "_function(2)"), encoding="utf-8")
    fixed = project.runpytest_subprocess("--lf", "-v")
    fixed.assert_outcomes(passed=2)
    assert _ran(fixed) == FAILING


def test_stepwise_stops_at_the_first_failure_and_resumes_there(
        project: pytest.Pytester) -> None:
    first = project.runpytest_subprocess("--sw", "-v", "-p", "no:randomly")
    first.assert_outcomes(passed=2, failed=1)  # Op0, Op1, then Op2 stops the run
    assert "gradcheck_ops.yaml::Op2[cpu-gradcheck] FAILED" in first.stdout.str()
    second = project.runpytest_subprocess("--sw", "-v", "-p", "no:randomly")
    assert "Op0[cpu-gradcheck]" not in second.stdout.str()  # resumed at the failure
    assert "gradcheck_ops.yaml::Op2[cpu-gradcheck] FAILED" in second.stdout.str()


def test_shards_of_the_gradcheck_items_are_disjoint_and_whole(project: pytest.Pytester) -> None:
    seen: list[str] = []
    for index in (1, 2, 3):
        result = project.runpytest_subprocess("-v", "--gradcheck-shard", f"{index}/3",
                                              "-p", "no:cacheprovider")
        ran = _ran(result)
        gradcheck = [r for r in ran if r.startswith("gradcheck_ops.yaml")]
        assert "test_plain.py::test_plain" in ran  # other tests are not sharded
        result.stdout.fnmatch_lines([f"gradcheck: shard {index}/3: {len(gradcheck)} of 8 checks"])
        seen += gradcheck
    assert sorted(seen) == sorted(f"gradcheck_ops.yaml::Op{i}[cpu-gradcheck]" for i in range(8))
    bad = project.runpytest_subprocess("--gradcheck-shard", "4/3")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*gradcheck-cli: --gradcheck-shard '4/3' is not a shard*"])
