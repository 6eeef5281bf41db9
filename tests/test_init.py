"""`gradcheck-cli init FILE.py`: the starter spec loads, guesses shapes, and passes as written."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from gradcheck_cli.cli import main
from gradcheck_cli.init.scaffold import default_output, module_reference
from gradcheck_cli.specs.specfile import LiteralInput, TensorInput, load_spec

ELEMENTWISE_AND_LINEAR = '''
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


class Tanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (y,) = ctx.saved_tensors
        return grad_output * (1 - y * y)


class Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return x @ weight.T + bias

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        return grad_output @ weight, grad_output.T @ x, grad_output.sum(dim=0)
'''

MORE = '''
import torch


class MatMul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return torch.mm(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return g @ b.t(), a.t() @ g


class LogSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dim=-1):
        y = x - torch.logsumexp(x, dim=dim, keepdim=True)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g - torch.exp(y) * g.sum(dim=ctx.dim, keepdim=True), None


class Log(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.log(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / x


class Scale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(scale)
        return x * scale

    @staticmethod
    def backward(ctx, g):
        (scale,) = ctx.saved_tensors
        return g * scale, None
'''

UNKNOWN_OP = '''
import torch


def mystery(x):
    return x[..., :2]


class Odd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        return mystery(x) * 2 + w.sum()

    @staticmethod
    def backward(ctx, g):
        raise NotImplementedError
'''


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def _init(monkeypatch: pytest.MonkeyPatch, cwd: Path, *args: str) -> int:
    monkeypatch.chdir(cwd)
    return main(["init", *args])


def _inputs(spec_path: Path) -> dict[str, list[TensorInput | LiteralInput]]:
    spec = load_spec(spec_path)
    assert spec.error is None, spec.error
    found = {}
    for function in spec.functions:
        assert function.error is None, function.error
        inputs = function.cases[0].inputs
        assert inputs is not None
        found[function.name] = list(inputs)
    return found


def test_elementwise_and_linear_pass_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, "ops.py", ELEMENTWISE_AND_LINEAR)
    assert _init(monkeypatch, tmp_path, "ops.py") == 0
    out = capsys.readouterr().out
    assert "wrote ops.yaml: 3 Function(s) (MultiplyAdd, Tanh, Linear)" in out

    inputs = _inputs(tmp_path / "ops.yaml")
    assert [(i.name, getattr(i, "shape", None)) for i in inputs["Linear"]] == [
        ("x", (3, 4)), ("weight", (2, 4)), ("bias", (2,))]
    assert [i.name for i in inputs["MultiplyAdd"]] == ["w", "x", "b"]
    assert {getattr(i, "shape", None) for i in inputs["MultiplyAdd"]} == {(3, 4)}
    assert all(isinstance(i, TensorInput) and i.requires_grad
               for group in inputs.values() for i in group)
    text = (tmp_path / "ops.yaml").read_text()
    assert "module: ops.py" in text
    assert "# from `x @ weight.T`" in text
    assert "TODO" not in text.split("functions:")[1]

    assert main([str(tmp_path / "ops.yaml"), "--device", "cpu"]) == 0


def test_more_shapes_literals_and_domains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "more.py", MORE)
    assert _init(monkeypatch, tmp_path, "more.py") == 0
    inputs = _inputs(tmp_path / "more.yaml")

    a, b = inputs["MatMul"]
    assert isinstance(a, TensorInput) and isinstance(b, TensorInput)
    assert a.shape[1] == b.shape[0] and len(a.shape) == len(b.shape) == 2

    _, dim = inputs["LogSoftmax"]
    assert isinstance(dim, LiteralInput) and dim.value == -1 and dim.name == "dim"

    (log_x,) = inputs["Log"]
    assert isinstance(log_x, TensorInput) and log_x.low is not None and log_x.low > 0

    _, scale = inputs["Scale"]  # backward returns None for it
    assert isinstance(scale, TensorInput) and not scale.requires_grad

    assert main([str(tmp_path / "more.yaml"), "--device", "cpu"]) == 0


def test_unknown_use_gets_a_placeholder_and_a_todo(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "odd.py", UNKNOWN_OP)
    assert _init(monkeypatch, tmp_path, "odd.py") == 0
    text = (tmp_path / "odd.yaml").read_text()
    assert "- {shape: [3, 4], name: x}" in text
    assert "TODO" in text
    inputs = _inputs(tmp_path / "odd.yaml")  # still a valid spec
    assert [i.name for i in inputs["Odd"]] == ["x", "w"]


def test_comments_are_yaml_comments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "ops.py", ELEMENTWISE_AND_LINEAR)
    assert _init(monkeypatch, tmp_path, "ops.py") == 0
    doc = yaml.safe_load((tmp_path / "ops.yaml").read_text())
    assert set(doc) == {"module", "functions"}
    assert doc["functions"]["Tanh"] == {"inputs": [{"shape": [3, 4], "name": "x"}]}


def test_default_output_is_specs_folder_when_present(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "ops/ops.py", ELEMENTWISE_AND_LINEAR)
    (tmp_path / "specs").mkdir()
    assert _init(monkeypatch, tmp_path, "ops/ops.py") == 0
    spec = tmp_path / "specs" / "ops.yaml"
    assert "module: ../ops/ops.py" in spec.read_text()
    assert load_spec(spec).module == (tmp_path / "ops" / "ops.py").resolve()
    assert not (tmp_path / "ops" / "ops.yaml").exists()


def test_default_output_is_beside_the_file_without_specs_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "ops/ops.py", ELEMENTWISE_AND_LINEAR)
    assert _init(monkeypatch, tmp_path, "ops/ops.py") == 0
    assert "module: ops.py" in (tmp_path / "ops" / "ops.yaml").read_text()
    assert default_output(Path("ops/ops.py"), tmp_path) == Path("ops/ops.yaml")


def test_output_option_file_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "ops.py", ELEMENTWISE_AND_LINEAR)
    assert _init(monkeypatch, tmp_path, "ops.py", "-o", "deep/er/gradcheck_ops.yaml") == 0
    written = tmp_path / "deep" / "er" / "gradcheck_ops.yaml"
    assert "module: ../../ops.py" in written.read_text()
    (tmp_path / "out").mkdir()
    assert _init(monkeypatch, tmp_path, "ops.py", "--output", "out") == 0
    assert (tmp_path / "out" / "ops.yaml").exists()
    assert module_reference(tmp_path / "ops.py", tmp_path / "out" / "ops.yaml") == "../ops.py"


def test_never_overwrites_without_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, "ops.py", ELEMENTWISE_AND_LINEAR)
    existing = tmp_path / "ops.yaml"
    existing.write_text("# mine\n")
    assert _init(monkeypatch, tmp_path, "ops.py") == 1
    err = capsys.readouterr().err
    assert "ops.yaml already exists" in err and "--force" in err
    assert existing.read_text() == "# mine\n"
    assert _init(monkeypatch, tmp_path, "ops.py", "--force") == 0
    assert "MultiplyAdd" in existing.read_text()


def test_problems_have_clear_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, "plain.py", "def f(x):\n    return x\n")
    assert _init(monkeypatch, tmp_path, "plain.py") == 1
    assert "no torch.autograd.Function subclass is defined in plain.py" in capsys.readouterr().err
    assert not (tmp_path / "plain.yaml").exists()

    _write(tmp_path, "boom.py", "raise RuntimeError('nope')\n")
    assert _init(monkeypatch, tmp_path, "boom.py") == 1
    assert "RuntimeError: nope" in capsys.readouterr().err

    _write(tmp_path, "notes.txt", "hello\n")
    assert _init(monkeypatch, tmp_path, "notes.txt") == 4
    assert _init(monkeypatch, tmp_path, "missing.py") == 4
    assert _init(monkeypatch, tmp_path) == 4


def test_dispatched_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "ops.py", ELEMENTWISE_AND_LINEAR)
    monkeypatch.chdir(tmp_path)
    assert main(["init", "ops.py", "-o", "spec.yaml"]) == 0
    assert (tmp_path / "spec.yaml").exists()


@pytest.mark.parametrize("example", ["multiply_add.py", "two_layer.py", "non_tensor.py",
                                     "multi_output.py"])
def test_the_readme_examples_pass_as_written(example: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    source = Path(__file__).resolve().parent.parent / "specs" / "ops" / example
    spec = tmp_path / "spec.yaml"
    assert _init(monkeypatch, tmp_path, str(source), "-o", str(spec)) == 0
    assert "TODO" not in spec.read_text().split("functions:")[1]
    assert main([str(spec), "--device", "cpu"]) == 0
