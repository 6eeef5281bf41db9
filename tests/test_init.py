"""`gradcheck-cli init FILE.py`: the starter spec loads, guesses shapes, and passes as written."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest
import yaml

from gradcheck_cli.cli import main
from gradcheck_cli.init.drafting import draft_inputs
from gradcheck_cli.init.rules.registry import TENSOR_OPS, tensor_op, unmodelled
from gradcheck_cli.init.scaffold import default_output, module_reference
from gradcheck_cli.init.shape_inference import Inference, Settings
from gradcheck_cli.init.symbols import Dim
from gradcheck_cli.specs.specfile import LiteralInput, TensorInput, load_spec
from gradcheck_cli.target.discovery import find_functions, import_file

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


# ---------------------------------------------------------------- the shape rules in isolation

# One row per rule (or family): forward's parameters, its body, and what inference makes of
# each parameter: its dims (letters are free sizes, shared letters one size, `?` an unknown
# rank), then `in (low, high)` for a domain, `int` for a dim/size argument, `opaque` when it
# goes where no rule models. Teaching inference an op: add its rule and a row here.
RULES = [
    ("x, w", "return x @ w", {"x": "a b", "w": "b c"}),
    ("x, w, b", "return x @ w.T + b", {"x": "a b", "w": "c b", "b": "c"}),
    ("a, b", "return torch.mm(a, b)", {"a": "a b", "b": "b c"}),
    ("a, b", "return a.bmm(b)", {"a": "a b", "b": "b c"}),
    ("m, v", "return torch.mv(m, v.view(-1))", {"m": "a b", "v": "b"}),
    ("u, v", "return torch.outer(u, v)", {"u": "a", "v": "b"}),
    ("a, b", 'return torch.einsum("bij,bjk->bik", a, b)', {"a": "a b c", "b": "a c d"}),
    ("x, w, b", "return F.linear(x, w, b)", {"x": "a b", "w": "c b", "b": "c"}),
    ("x, w, b", "return F.conv2d(x, w, b)", {"x": "a b 6 6", "w": "c b 3 3", "b": "c"}),
    ("x, y", "return torch.tanh(x) * y", {"x": "?", "y": "?"}),
    ("x", "return torch.log(x)", {"x": "? in (0.5, 2.0)"}),
    ("x", "return x.acos()", {"x": "? in (-0.9, 0.9)"}),
    ("x", "return torch.logit(x)", {"x": "? in (0.1, 0.9)"}),
    ("x, y", "return x ** 0.5 / y", {"x": "? in (0.5, 2.0)", "y": "? in (0.5, 2.0)"}),
    ("x, dim", "return x.softmax(dim)", {"x": "?", "dim": "? int"}),
    ("x, w, b", "return torch.add(x @ w, b)", {"x": "a b", "w": "b c", "b": "c"}),
    ("x, w, y", "return torch.mul(x @ w, y)", {"x": "a b", "w": "b c", "y": "a c"}),
    ("x, w, b", "return (x @ w).sum(0) + b", {"x": "a b", "w": "b c", "b": "c"}),
    ("x, w, y", "return (x @ w).max(y)", {"x": "a b", "w": "b c", "y": "a c"}),
    ("x, w", "return x.t() @ w", {"x": "a b", "w": "a c"}),
    ("x", "return x.transpose(0, 2)", {"x": "a b c"}),
    ("x", "return x.permute(2, 0, 1)", {"x": "a b c"}),
    ("x", "return x.view(2, -1)", {"x": "2 a"}),
    ("x, w, b", "return (x @ w) * b.view(1, -1)", {"x": "a b", "w": "b c", "b": "c"}),
    ("x, w, y", "return y.view_as(x @ w)", {"x": "a b", "w": "b c", "y": "a c"}),
    ("x, w", "return torch.zeros(x.size(0), w.shape[1])", {"x": "a b", "w": "c d"}),
    ("x, n", "return x.new_zeros(n, 3)", {"x": "?", "n": "? int"}),
    ("x", "return torch.eye(x.shape[0]) @ x", {"x": "a b"}),
    ("x, d", "return x.unsqueeze(d)", {"x": "?", "d": "? int"}),
    ("x, w, y", "return torch.cat([x @ w, y])", {"x": "a b", "w": "b c", "y": "?"}),
    ("x, y", "return x.numel() * y", {"x": "?", "y": "?"}),
    ("x, i", "return torch.index_select(x, 0, i)", {"x": "? opaque", "i": "? opaque"}),
    ("x", "return Other.apply(x)", {"x": "? opaque"}),
]


def _described(inference: Inference) -> dict[str, str]:
    letters: dict[int, str] = {}

    def dim(d: Dim) -> str:
        root = d.root()
        if root.size is not None:
            return str(root.size)
        return letters.setdefault(id(root), "abcdefgh"[len(letters)])

    found = {}
    for name, shape in inference.shapes.items():
        root = shape.root()
        text = "?" if root.dims is None else " ".join(dim(d) for d in root.dims)
        if name in inference.domains:
            text += f" in {inference.domains[name]}"
        if name in inference.int_params:
            text += " int"
        if root.opaque:
            text += " opaque"
        found[name] = text
    return found


@pytest.mark.parametrize(("params", "body", "expected"), RULES, ids=[r[1] for r in RULES])
def test_a_rule_infers_shapes(params: str, body: str, expected: dict[str, str]) -> None:
    forward = ast.parse(f"def forward(ctx, {params}):\n    {body}\n").body[0]
    assert isinstance(forward, ast.FunctionDef)
    inference = Inference([p.strip() for p in params.split(",")], {}, Settings())
    inference.walk(forward.body)
    assert _described(inference) == expected


def test_rules_are_registered_once() -> None:
    assert TENSOR_OPS["exp"] is TENSOR_OPS["tanh"]  # one family, one rule
    with pytest.raises(ValueError, match="exp exist already"):
        tensor_op("a_new_op", "exp")(unmodelled)
    assert "a_new_op" not in TENSOR_OPS


# ---------------------------------------------------------------- drafts without a spec file

DRAFTED = '''
import torch

CALLS = []


class Affine(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias=None, scale=2.0):
        CALLS.append("forward")
        out = x @ weight.T
        if bias is not None:
            out = out + bias
        return out * scale

    @staticmethod
    def backward(ctx, g):
        return None, None, None, None
'''


def test_draft_inputs_are_specs_and_nothing_runs(tmp_path: Path) -> None:
    path = _write(tmp_path, "affine.py", DRAFTED)
    module = import_file(path)
    (target,) = find_functions(module, path)

    drafts = draft_inputs(target)

    assert module.CALLS == [] and list(tmp_path.iterdir()) == [path]
    assert len(drafts) == len(set(drafts)) >= 2  # distinct: the guess, then fallbacks
    x, weight, bias, scale = drafts[0]
    assert isinstance(x, TensorInput) and isinstance(weight, TensorInput)
    assert (x.name, x.shape, weight.shape) == ("x", (3, 4), (2, 4))
    assert not x.requires_grad  # backward returns None for it
    assert bias == LiteralInput(None, name="bias")
    assert scale == LiteralInput(2.0, name="scale")
    with_bias = drafts[1]  # the None default made a tensor, as a fallback
    assert with_bias[2] == TensorInput(shape=(2,), name="bias")
    assert all(isinstance(spec, (TensorInput, LiteralInput)) for d in drafts for spec in d)


COMPLEX = '''
import torch


class Rotate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, w):
        ctx.save_for_backward(z, w)
        return z * w

    @staticmethod
    def backward(ctx, grad):
        z, w = ctx.saved_tensors
        return grad * w.conj(), grad * z.conj()


class Norm(torch.autograd.Function):
    """No complex in its code: real inputs."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x * x).sum()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad
'''


def test_code_using_conj_gets_complex_inputs_in_init_and_zero_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, "ops.py", COMPLEX)
    assert _init(monkeypatch, tmp_path, "ops.py") == 0
    inputs = _inputs(tmp_path / "ops.yaml")
    assert [(i.name, getattr(i, "dtype", None)) for i in inputs["Rotate"]] == [
        ("z", "complex128"), ("w", "complex128")]
    assert [getattr(i, "dtype", None) for i in inputs["Norm"]] == ["float64"]
    assert "dtype: complex128" in (tmp_path / "ops.yaml").read_text()
    (tmp_path / "ops.yaml").unlink()
    capsys.readouterr()
    assert main([str(tmp_path / "ops.py"), "--device", "cpu", "--jobs", "0", "--no-cache",
                 "--check", "gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "ops.py::Rotate: inputs inferred: z (3, 4) complex128, w (3, 4) complex128" in out
    assert "ops.py::Norm: inputs inferred: x (3, 4)\n" in out
