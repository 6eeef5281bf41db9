"""`check()` and `assert_gradients()`: Functions, custom ops, modules and callables checked
on arguments given in code, in this process and from a real pytest run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

from gradcheck_cli import assert_gradients, check
from gradcheck_cli.results import Status

GOLDEN = Path(__file__).resolve().parent / "golden"
DURATION = re.compile(r"\d+\.\d\ds")


class Cube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale=1.0):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return scale * x**3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 3 * ctx.scale * x**2 * grad, None


class CubeForgetsScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale=1.0):
        ctx.save_for_backward(x)
        return scale * x**3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 3 * x**2 * grad, None


def pair_product(xs, *, op="mul"):
    return xs[0] * xs[1] if op == "mul" else xs[0] + xs[1]


def _statuses(report: Any) -> list[tuple[str, str]]:
    return [(r.check, r.status.value) for r in report.results]


def test_a_function_on_tensors_given_in_code() -> None:
    report = check(Cube, torch.randn(4, 3), 0.5)
    assert report.passed
    assert _statuses(report) == [("gradcheck", "passed"), ("gradgradcheck", "passed")]
    assert [i.name for i in report.results[0].inputs] == ["x"]
    bad = check(CubeForgetsScale, torch.randn(4, 3), 0.5)
    assert not bad.passed
    first = bad.results[0]
    assert first.status is Status.FAILED
    assert [(i.name, i.diagnosis.kind if i.diagnosis else None) for i in first.inputs] \
        == [("x", "scale")]
    assert first.reproduce is None  # no command line re-runs values given in code


def test_lists_and_keyword_arguments_are_named_by_path() -> None:
    report = check(pair_product, [torch.randn(3), torch.randn(3)], op="add")
    assert report.passed
    assert [i.name for i in report.results[0].inputs] == ["xs[0]", "xs[1]"]


def test_an_argument_named_like_an_option_goes_through_kwargs() -> None:
    def scaled(x, *, mode):
        return x * (2.0 if mode == "double" else 1.0)

    report = check(scaled, torch.randn(3), kwargs={"mode": "double"}, checks="gradcheck")
    assert _statuses(report) == [("gradcheck", "passed")]


def test_only_tensors_that_require_grad_are_checked_when_some_do() -> None:
    x = torch.randn(3, requires_grad=True)
    w = torch.randn(3)
    report = check(lambda a, b: a * b, x, w, checks=["gradcheck"])
    assert [i.name for i in report.results[0].inputs] == ["a"]


def test_the_callers_tensors_modules_and_torch_state_are_left_alone() -> None:
    x = torch.randn(4, 3, dtype=torch.float32)
    before = x.clone()
    layer = torch.nn.Linear(3, 2)
    weight = layer.weight.detach().clone()
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    report = check(layer, x)
    assert report.passed
    assert [i.name for i in report.results[0].inputs] == ["input", "weight", "bias"]
    # Checked in float64 (the default dtype=), on copies.
    assert x.dtype is torch.float32 and not x.requires_grad and torch.equal(x, before)
    assert layer.weight.dtype is torch.float32 and torch.equal(layer.weight, weight)
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.is_grad_enabled() and torch.get_default_dtype() is torch.float32


def test_float32_inputs_kept_with_dtype_none_fail_float64_tolerances() -> None:
    # torch's own gradcheck warns that float32 is not precise enough: the verdict says so.
    report = check(Cube, torch.randn(4, 3) * 3, dtype=None, checks="gradcheck")
    assert report.results[0].status in (Status.FAILED, Status.PASSED)
    assert check(Cube, torch.randn(4, 3) * 3, checks="gradcheck").passed


def test_a_custom_op() -> None:
    @torch.library.custom_op("gcc_api_test::twice", mutates_args=())
    def twice(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    @twice.register_fake
    def _(x):
        return torch.empty_like(x)

    twice.register_autograd(lambda ctx, grad: grad * 3)  # wrong: 3 for 2
    report = check(twice, torch.randn(3))
    checks = dict(_statuses(report))
    assert checks["gradcheck"] == "failed"
    assert checks["opcheck:faketensor"] == "passed"
    assert report.results[0].inputs[0].diagnosis.kind == "scale"


def test_assert_gradients_raises_with_the_table_and_diagnosis() -> None:
    assert assert_gradients(Cube, torch.randn(2, 2), 2.0).passed
    with pytest.raises(AssertionError) as raised:
        assert_gradients(CubeForgetsScale, torch.randn(2, 2), 2.0, checks="gradcheck")
    text = str(raised.value)
    assert text.startswith("gradients of CubeForgetsScale are not right:\n")
    assert "x: scale:" in text
    assert "1 failed in" in text


def test_nothing_checked_is_not_passed() -> None:
    report = check(lambda x: x * 2, torch.randn(3), devices="cuda") \
        if not torch.cuda.is_available() else None
    if report is None:
        pytest.skip("CUDA is available here")
    assert [r.status for r in report.results] == [Status.SKIPPED, Status.SKIPPED]
    assert not report.passed
    with pytest.raises(AssertionError, match="nothing was checked"):
        assert_gradients(lambda x: x * 2, torch.randn(3), devices="cuda")


def test_not_callable_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="cannot check int object"):
        check(3, torch.randn(2))


def test_the_report_shows_in_a_terminal_and_in_jupyter() -> None:
    from rich.console import Console

    report = check(CubeForgetsScale, torch.randn(2), 2.0, checks="gradcheck")
    assert "failed" in str(report) and "\x1b[" not in str(report)
    markdown = report._repr_markdown_()
    assert markdown.startswith("### gradcheck-cli: 1 failed")
    console = Console(width=80, record=True, color_system=None)
    console.print(report)
    assert "CubeForgetsScale" in console.export_text()


PROJECT_TEST = '''
import pytest
import torch

from gradcheck_cli import assert_gradients


class Scale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, factor):
        ctx.factor = factor
        return x * factor

    @staticmethod
    def backward(ctx, grad):
        # A bug for factors above 2: the gradient is capped.
        return grad * min(ctx.factor, 2.0), None


@pytest.mark.parametrize("factor", [0.5, 2.0, 3.0])
def test_scale(factor):
    torch.manual_seed(0)
    assert_gradients(Scale, torch.randn(3, 2), factor, checks="gradcheck", mode="exact")
'''


def test_in_a_real_pytest_run_with_parametrize(tmp_path: Path, update_goldens: bool) -> None:
    (tmp_path / "test_ops.py").write_text(textwrap.dedent(PROJECT_TEST), encoding="utf-8")
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-p", "no:randomly", "test_ops.py"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "1 failed, 2 passed" in out, out
    assert "test_scale[3.0]" in out
    # The failure's message, as pytest shows it: the table, the diagnosis, the numbers.
    message = out[out.index("AssertionError: gradients of Scale"):]
    message = message[:message.index("\n\ntest_ops.py:")] if "\n\ntest_ops.py:" in message \
        else message
    kept = [line for line in message.splitlines()
            if line.startswith("E ") or line.startswith("AssertionError")]
    actual = "\n".join(DURATION.sub("#.##s", line).rstrip() for line in kept).rstrip() + "\n"
    golden = GOLDEN / "assert_gradients.txt"
    if update_goldens:
        golden.write_text(actual, encoding="utf-8")
    assert actual == golden.read_text(encoding="utf-8"), actual


@pytest.mark.parametrize(("options", "message"), [
    ({"mode": "add"}, "unknown mode 'add': one of: auto, exact, probe"),
    ({"checks": "gradchek"}, "unknown check 'gradchek': did you mean `gradcheck`?"),
    ({"devices": "tpu"}, "unknown device 'tpu': did you mean `cpu`?"),
])
def test_a_mistyped_option_is_a_value_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check(lambda x: x * 2, torch.randn(3), **options)


def test_a_bad_call_is_a_type_error_as_python_says_it() -> None:
    with pytest.raises(TypeError, match=re.escape(
            "Cube.forward needs 1 argument(s) but it was given 0: missing `x`")):
        check(Cube)
    with pytest.raises(TypeError, match="has no parameter `sclae`"):
        check(pair_product, [torch.randn(2), torch.randn(2)], sclae=1.0)
    with pytest.raises(TypeError, match="tensors inside a dict would not be checked"):
        check(lambda x, opts: x, torch.randn(2), {"w": torch.randn(2)})


def test_an_unknown_dtype_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown dtype 'float65'"):
        check(lambda x: x * 2, torch.randn(3), dtype="float65")
