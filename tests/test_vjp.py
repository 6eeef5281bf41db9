"""vjp gives what torch.autograd.grad gives, bit for bit, without its sympy import."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

import gradcheck_cli.engine.vjp
from gradcheck_cli.engine import cost
from gradcheck_cli.engine.vjp import element_vjp, vjp


@pytest.fixture(autouse=True)
def _scalar_form(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process has imported sympy (through torch.autograd.grad), so `vjp` would call
    torch directly: make it take the scalar form these tests are about."""
    monkeypatch.setattr(gradcheck_cli.engine.vjp, "_SHAPES", "module.never.imported")
    # The checks run earlier in this worker have counted their calls: start afresh.
    monkeypatch.setattr(gradcheck_cli.engine.vjp, "_scalar_calls", [0])


@contextmanager
def routes() -> Iterator[list[str]]:
    """The routes `vjp`/`element_vjp` take while the block runs, one per call of
    torch.autograd.grad: "torch" (torch's own call, with grad_outputs: the one that imports
    sympy), "scalar" (the gradient of Σ sum(output * grad_output)) or "element" (the
    gradient of one element of the output); the last two pass no grad_outputs."""
    taken: list[str] = []
    real = torch.autograd.grad

    def spy(outputs: Any, inputs: Any, grad_outputs: Any = None, **kwargs: Any) -> Any:
        if grad_outputs is not None:
            taken.append("torch")
        else:
            assert isinstance(outputs, torch.Tensor) and outputs.dim() == 0, outputs
            assert outputs.grad_fn is not None
            name = outputs.grad_fn.name()
            taken.append("element" if name.startswith("Select") else "scalar")
        return real(outputs, inputs, grad_outputs, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.autograd, "grad", spy)
        yield taken


class TwoOutputs(torch.autograd.Function):
    """Saves nothing special; its backward reads grad_output values."""

    @staticmethod
    def forward(ctx, x, y, unused):  # type: ignore[no-untyped-def]
        ctx.save_for_backward(x, y)
        return x.sin() * y, (x * y).exp()

    @staticmethod
    def backward(ctx, g0, g1):  # type: ignore[no-untyped-def]
        x, y = ctx.saved_tensors
        e = (x * y).exp()
        return (g0 * x.cos() * y + g1 * e * y, g0 * x.sin() + g1 * e * x, None)


def _inputs() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(3, 4, dtype=torch.float64, generator=generator).requires_grad_()
            for _ in range(3)]


def _same(a: tuple[torch.Tensor | None, ...], b: tuple[torch.Tensor | None, ...]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x is None) == (y is None)
        if x is not None and y is not None:
            assert x.dtype == y.dtype and x.shape == y.shape
            assert torch.equal(x, y)


def test_first_order_equals_torch_bit_for_bit() -> None:
    x, y, unused = _inputs()
    outs = TwoOutputs.apply(x, y, unused)
    grads = [torch.randn(o.shape, dtype=torch.float64) for o in outs]
    expected = torch.autograd.grad(outs, [x, y, unused], grads, retain_graph=True,
                                   allow_unused=True)
    with routes() as taken:
        _same(vjp(outs, [x, y, unused], grads, retain_graph=True), expected)
    assert taken == ["scalar"]
    assert expected[2] is None


def test_one_output_left_out_gets_no_gradient_as_in_torch() -> None:
    x, y, _ = _inputs()
    outs = TwoOutputs.apply(x, y, None)
    grad = torch.randn(outs[1].shape, dtype=torch.float64)
    expected = torch.autograd.grad([outs[1]], [x, y], [grad], retain_graph=True)
    with routes() as taken:
        _same(vjp([outs[1]], [x, y], [grad]), expected)
    assert taken == ["scalar"]


def test_second_order_equals_torch() -> None:
    x, y, _ = _inputs()
    g = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    out = x.sin() * y
    with routes() as taken:
        ours = vjp([out], [x, y], [g], create_graph=True)
    assert taken == ["scalar"]
    theirs = torch.autograd.grad([out], [x, y], [g], create_graph=True)
    _same(ours, theirs)
    assert all(t is not None and t.requires_grad for t in ours)
    v = [torch.randn(3, 4, dtype=torch.float64) for _ in range(2)]
    second = torch.autograd.grad(list(ours), [x, y, g], v, retain_graph=True)  # type: ignore[arg-type]
    expected = torch.autograd.grad(list(theirs), [x, y, g], v)  # type: ignore[arg-type]
    for a, b in zip(second, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-15)


def test_float32_output_with_float64_grad_is_cast_as_torch_does() -> None:
    x = torch.rand(5, dtype=torch.float32, requires_grad=True)
    grad = torch.rand(5, dtype=torch.float64)
    expected = torch.autograd.grad([x * 3], [x], [grad.float()])
    with routes() as taken:
        _same(vjp([x * 3], [x], [grad]), expected)
    assert taken == ["scalar"]


def test_complex_output_goes_to_torch() -> None:
    x = torch.rand(4, dtype=torch.complex128, requires_grad=True)
    grad = torch.rand(4, dtype=torch.complex128)
    with routes() as taken:
        ours = vjp([x * x], [x], [grad], retain_graph=True)
    assert taken == ["torch"]
    _same(ours, torch.autograd.grad([x * x], [x], [grad]))


# make the output, the route of a row before torch's import is paid
ROWS = {
    "contiguous": (lambda x: x.sin() * 2, "element"),
    "transposed": (lambda x: (x @ x).t(), "element"),  # a non-contiguous output
    "view": (lambda x: x[:, 1:], "element"),  # a view of the input
    "float32": (lambda x: x.to(torch.float32) ** 2, "element"),  # of a float64 input
    "complex": (lambda x: torch.view_as_complex(torch.stack([x, x * x], -1)), "torch"),
}


@pytest.mark.parametrize("kind", list(ROWS))
@pytest.mark.parametrize("torch_loaded", [False, True])
def test_a_row_equals_torchs_one_hot_row(kind: str, torch_loaded: bool,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    make, route = ROWS[kind]
    x = torch.rand(4, 4, dtype=torch.float64, requires_grad=True)
    out = make(x)
    flat = out.reshape(-1)
    expected = []
    for index in range(flat.numel()):
        one_hot = torch.zeros_like(out, memory_format=torch.contiguous_format)
        one_hot.view(-1)[index] = 1.0
        expected.append(torch.autograd.grad(out, [x], one_hot, retain_graph=True))
    if torch_loaded:  # the calls above have imported it into this process
        shapes = "torch.fx.experimental.symbolic_shapes"
        assert shapes in sys.modules
        monkeypatch.setattr(gradcheck_cli.engine.vjp, "_SHAPES", shapes)
        route = "torch"
    with routes() as taken:
        for index in range(flat.numel()):
            _same(element_vjp(out, flat, index, [x]), expected[index])
    assert taken == [route] * flat.numel()


def test_tensor_subclasses_go_to_torch() -> None:
    x = torch.nn.Parameter(torch.rand(3, dtype=torch.float64))
    grad = torch.rand(3, dtype=torch.float64)
    out = torch.nn.Parameter(torch.rand(3, dtype=torch.float64))
    with routes() as taken:
        ours = [vjp([x * 1], [x], [grad]), vjp([out], [out], [grad])]
    # x * 1 is a plain tensor (ops on a Parameter return Tensors): the scalar route, with
    # torch's values still. The Parameter itself as an output goes to torch.
    assert taken == ["scalar", "torch"]
    _same(ours[0], torch.autograd.grad([x * 1], [x], [grad]))
    _same(ours[1], torch.autograd.grad([out], [out], [grad]))


def test_output_without_grad_raises_torchs_error() -> None:
    x = torch.rand(4, dtype=torch.float64, requires_grad=True)
    with routes() as taken, pytest.raises(RuntimeError, match="does not require grad"):
        vjp([x.detach() * 2], [x], [torch.ones(4, dtype=torch.float64)])
    assert taken == ["torch"]


CUBE = textwrap.dedent("""
    import torch

    class Cube(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * x ** 2 * g
""")

IN_PROCESS = textwrap.dedent("""
    import sys
    from gradcheck_cli.cli import main
    code = main([*sys.argv[1:], "--device", "cpu", "--no-cache", "-j", "0", "--format", "json"])
    print("exit", code, "sympy" in sys.modules, file=sys.stderr)
""")


def _in_process(folder: Path, *args: str) -> tuple[str, str]:
    done = subprocess.run([sys.executable, "-c", IN_PROCESS, *args], cwd=folder,
                          capture_output=True, text=True, timeout=300)
    return done.stdout, done.stderr.strip().splitlines()[-1]


def test_a_small_check_never_imports_sympy(tmp_path: Path) -> None:
    """torch.autograd.grad with tensor grad_outputs imports sympy (~0.5 s of start-up)."""
    (tmp_path / "op.py").write_text(CUBE)
    out, last = _in_process(tmp_path, "op.py")
    assert out.count('"status": "passed"') == 2
    assert last == "exit 0 False"


BIG = ("module: op.py\nfunctions:\n  Cube:\n    checks: [gradgradcheck]\n"
       "    inputs:\n      - {shape: [2100]}\n")


def test_a_large_batch_pays_the_import_once_for_faster_calls(tmp_path: Path) -> None:
    """In exact mode, torch's recipe: the planner counts the calls it will make."""
    (tmp_path / "op.py").write_text(CUBE)
    (tmp_path / "big.yaml").write_text(BIG)
    calls = cost.vector_backward_calls([2100])
    assert calls == 8400 and cost.worth_importing_autograd(calls)
    out, last = _in_process(tmp_path, "big.yaml", "--mode", "exact")
    assert out.count('"status": "passed"') == 1
    assert last == "exit 0 True"


def test_reference_mode_makes_too_few_calls_to_pay_the_import(tmp_path: Path) -> None:
    """The same check by default (reference mode) makes a few vector backward calls: the
    import would cost more than it saves, and is not paid (it was, on torch's estimate)."""
    (tmp_path / "op.py").write_text(CUBE)
    (tmp_path / "big.yaml").write_text(BIG)
    out, last = _in_process(tmp_path, "big.yaml")
    assert '"mode": "reference"' in out and out.count('"status": "passed"') == 1
    assert last == "exit 0 False"


def test_scalar_calls_past_the_imports_cost_pay_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted as they come: the call that brings their extra cost past the import's."""
    imported: list[bool] = []
    monkeypatch.setattr(gradcheck_cli.engine.vjp, "import_autograd_shapes",
                        lambda: imported.append(True))
    monkeypatch.setattr(gradcheck_cli.engine.vjp, "_scalar_calls", [0])
    x = torch.rand(3, dtype=torch.float64, requires_grad=True)
    y = x.sin()
    g = torch.ones(3, dtype=torch.float64)
    threshold = int(cost.AUTOGRAD_IMPORT_SECONDS / cost.SCALAR_VJP_EXTRA_SECONDS)
    for _ in range(threshold):
        vjp([y], [x], [g], retain_graph=True)
    assert not imported
    element_vjp(y, y.reshape(-1), 0, [x])
    assert imported == [True]


def test_import_pays_off_only_past_its_cost() -> None:
    assert cost.vector_backward_calls([12, 12, 4]) == 2 * (28 + 12)
    assert cost.vector_backward_calls([]) == 0
    assert not cost.worth_importing_autograd(80)
    threshold = cost.AUTOGRAD_IMPORT_SECONDS / cost.SCALAR_VJP_EXTRA_SECONDS
    assert not cost.worth_importing_autograd(threshold * 0.9)
    assert cost.worth_importing_autograd(threshold * 1.1)


def test_a_torch_without_the_module_keeps_the_scalar_form(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """Past the import's cost, a module that cannot be imported (the fixture names one that
    does not exist; a future torch may move it) is tried once and the checks go on."""
    monkeypatch.setattr(gradcheck_cli.engine.vjp, "_unavailable", set())
    threshold = int(cost.AUTOGRAD_IMPORT_SECONDS / cost.SCALAR_VJP_EXTRA_SECONDS)
    monkeypatch.setattr(gradcheck_cli.engine.vjp, "_scalar_calls", [threshold + 1])
    x = torch.rand(3, dtype=torch.float64, requires_grad=True)
    y = x.sin()
    g = torch.ones(3, dtype=torch.float64)
    with routes() as taken:
        (first,) = vjp([y], [x], [g], retain_graph=True)
        (second,) = vjp([y], [x], [g], retain_graph=True)
    assert taken == ["scalar", "scalar"]
    assert torch.equal(first, x.cos()) and torch.equal(second, x.cos())
    assert gradcheck_cli.engine.vjp._unavailable == {"module.never.imported"}
