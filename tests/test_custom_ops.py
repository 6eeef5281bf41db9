"""Custom ops (torch.library): found without a spec, checked by gradcheck and opcheck's tests.

The data-driven cases (tests/cases/custom_op*.py) hold the main results; these tests hold
what a case cannot: torch's one registry per process (an op name defined by two files, or
twice by one), a module imported by its own name first, the pytest plugin, opcheck's
failures in plain words, capabilities, `init`, the cache, and a torch without opcheck.

torch keeps every op ever defined in the process, and these tests run in one: each test's
ops get a namespace of their own (`ns` fixture).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import line_of, only, statuses

from gradcheck_cli.init.schema_drafts import slot_entries
from gradcheck_cli.specs.specfile import LiteralInput, TensorInput
from gradcheck_cli.target import discovery
from gradcheck_cli.target.custom_op import Slot, declared_ops

_COUNT = itertools.count()
OPCHECKS = ("opcheck:schema", "opcheck:autograd_registration", "opcheck:faketensor",
            "opcheck:aot_dispatch_dynamic")


@pytest.fixture
def ns() -> str:
    """A torch.library namespace no other test of this process uses."""
    return f"gcc_test{next(_COUNT)}"


def op_source(ns: str, name: str = "square", backward: str = "2 * g * x",
              fake: str = "torch.empty_like(x)") -> str:
    return f'''
import torch


@torch.library.custom_op("{ns}::{name}", mutates_args=())
def {name}(x: torch.Tensor) -> torch.Tensor:
    return x * x


@{name}.register_fake
def _(x):
    return {fake}


def _setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _backward(ctx, g):
    (x,) = ctx.saved_tensors
    return {backward}


{name}.register_autograd(_backward, setup_context=_setup)
'''


def define_source(ns: str) -> str:
    return f'''
import torch

torch.library.define("{ns}::cube", "(Tensor x) -> Tensor")


@torch.library.impl("{ns}::cube", "cpu")
def _cube(x):
    return x ** 3


@torch.library.register_fake("{ns}::cube")
def _(x):
    return torch.empty_like(x)


def _setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _backward(ctx, g):
    (x,) = ctx.saved_tensors
    return 3 * g * x * x


torch.library.register_autograd("{ns}::cube", _backward, setup_context=_setup)
'''


# ------------------------------------------------------------------ reading the source


def test_declared_ops_reads_every_way_of_writing_an_op(tmp_path: Path) -> None:
    path = tmp_path / "ops.py"
    path.write_text(textwrap.dedent('''
        import torch
        from torch.library import Library, custom_op

        @torch.library.custom_op("a::decorated", mutates_args=())
        def decorated(x): ...

        @custom_op("a::imported", mutates_args=())
        def imported(x): ...

        assigned = torch.library.custom_op("a::assigned", mutates_args=())(lambda x: x)
        given = custom_op("a::given", lambda x: x, mutates_args=())
        factory = custom_op("a::factory", mutates_args=())  # a decorator, not an op yet

        torch.library.define("a::by_qualname", "(Tensor x) -> Tensor")
        lib = Library("b", "DEF")
        lib.define("by_library(Tensor x) -> Tensor")
        lib.define("bound.overload(Tensor x) -> Tensor")
        bound_op = torch.ops.b.bound.overload
    '''), encoding="utf-8")
    assert declared_ops(path) == {
        "decorated": "a::decorated", "imported": "a::imported", "assigned": "a::assigned",
        "given": "a::given", "by_qualname": "a::by_qualname", "by_library": "b::by_library",
        "bound_op": "b::bound"}


def test_schema_types_become_inputs_of_the_right_kind() -> None:
    def entries(slot: Slot, spec: Any = None) -> list[Any]:
        return [e[0] for e in slot_entries(slot, spec, "", False)]

    assert entries(Slot("n", "int")) == [LiteralInput(2, name="n")]
    assert entries(Slot("dim", "int"), LiteralInput(-1, name="dim")) == [
        LiteralInput(-1, name="dim")]  # the kernel uses it as a dim
    assert entries(Slot("flag", "bool")) == [LiteralInput(False, name="flag")]
    assert entries(Slot("sizes", "int[]")) == [LiteralInput([-1], name="sizes")]
    assert entries(Slot("alpha", "float", keyword_only=True, has_default=True,
                        default=0.25)) == [LiteralInput(0.25, name="alpha")]
    assert entries(Slot("bias", "Tensor?", has_default=True)) == [
        LiteralInput(None, name="bias")]
    listed = entries(Slot("xs", "Tensor[]"), TensorInput(shape=(5,), name="xs"))
    assert listed == [TensorInput(shape=(5,), name="xs[0]"), TensorInput(shape=(5,),
                                                                        name="xs[1]")]


# ------------------------------------------------------------------ discovery


def test_kernels_fakes_and_backwards_are_not_targets_a_function_using_the_op_is(
        ns: str, write_op: Any, run_json: Any) -> None:
    write_op(op_source(ns) + textwrap.dedent('''
        def doubled(x):
            return 2 * square(x)


        def helper_backward(ctx, g):  # public, referring to the op only in a decorator
            return g
    '''))
    doc = run_json("ops.py", "--check", "gradcheck")
    assert statuses(doc) == {("square", "gradcheck"): "passed",
                             ("doubled", "gradcheck"): "passed"}


def test_a_define_style_op_is_found_by_its_op_name_with_its_lines(
        ns: str, tmp_path: Path, write_op: Any, run_json: Any) -> None:
    path = write_op(define_source(ns).replace("3 * g * x * x", "3 * g * x"))
    doc = run_json("ops.py")
    failed = only(doc, function="cube", check="gradcheck")
    assert failed["status"] == "failed"
    assert failed["location"] == f"ops.py:{line_of(path, 'def _backward')}"
    assert [r["status"] for r in doc["results"] if r["check"].startswith("opcheck")] == [
        "passed"] * 4
    assert f"`{ns}::cube`" in only(doc, function="cube", check="opcheck:schema")["message"]


# ------------------------------------------------------------------ one registry per process


@pytest.mark.parametrize("jobs", ["0", "1"])
def test_two_files_defining_one_op_name_each_check_their_own(
        ns: str, tmp_path: Path, write_op: Any, run_json: Any, jobs: str) -> None:
    """torch keeps the last custom_op of a name: the first file's op, imported in the same
    process, must not be checked with the second file's kernel (nor pass for it)."""
    write_op(op_source(ns), name="a.py")
    write_op(op_source(ns, backward="g * x"), name="b.py")
    doc = run_json("a.py", "b.py", "--check", "gradcheck", "--check", "opcheck:schema",
                   "-j", jobs, in_process=jobs == "0")
    got = {(r["module"], r["check"]): r["status"] for r in doc["results"]}
    assert got == {("a.py", "gradcheck"): "passed", ("a.py", "opcheck:schema"): "passed",
                   ("b.py", "gradcheck"): "failed", ("b.py", "opcheck:schema"): "passed"}


def test_an_op_name_defined_twice_in_one_file_is_an_error_saying_so(
        ns: str, write_op: Any, run_json: Any) -> None:
    path = write_op(op_source(ns) + op_source(ns).replace("def square(", "def square2(")
                    .replace("@square.", "@square2.").replace("square.register",
                                                              "square2.register"))
    doc = run_json("ops.py", "--check", "gradcheck")
    first = only(doc, function="square", check="gradcheck")
    assert first["status"] == "error"
    assert first["message"].startswith(f"`{ns}::square` is defined again later in the same "
                                       "file, and torch keeps only the last definition")
    assert first["location"] == f"ops.py:{line_of(path, 'def square(')}"
    assert only(doc, function="square2", check="gradcheck")["status"] == "passed"


def test_a_define_style_name_taken_by_another_file_is_an_import_error_in_plain_words(
        ns: str, write_op: Any, run_json: Any) -> None:
    write_op(define_source(ns), name="a.py")
    b = write_op(define_source(ns), name="b.py")
    doc = run_json("a.py", "b.py", "--check", "gradcheck")
    assert only(doc, module="a.py", check="gradcheck")["status"] == "passed"
    broken = only(doc, module="b.py")
    assert broken["status"] == "error" and broken["check"] == "-"
    assert broken["message"] == (
        f"b.py:{line_of(b, 'torch.library.define')}: the op `{ns}::cube` is already "
        "registered in this process (by another file, or this one imported under a second "
        "name): torch.library op names are global. Give each file's ops their own "
        "qualified names ('ns::name')")


def test_a_module_imported_by_its_own_name_first_is_not_imported_again(
        ns: str, tmp_path: Path, write_op: Any, run_json: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a pytest run whose tests `import ops` before the plugin checks ops.py: a
    second import would define the op again, which torch refuses."""
    write_op(define_source(ns))
    monkeypatch.syspath_prepend(str(tmp_path))
    import ops  # noqa: F401  (registers the op, as the user's own tests would)

    doc = run_json("ops.py", "--check", "gradcheck")
    assert statuses(doc) == {("cube", "gradcheck"): "passed"}


def test_the_pytest_plugin_checks_an_op_its_tests_imported(ns: str, tmp_path: Path) -> None:
    (tmp_path / "ops.py").write_text(define_source(ns), encoding="utf-8")
    (tmp_path / "test_ops.py").write_text(textwrap.dedent(f'''
        import torch
        import ops


        def test_cube():
            assert torch.ops.{ns}.cube(torch.tensor(2.0)).item() == 8.0
    '''), encoding="utf-8")
    (tmp_path / "gradcheck_ops.yaml").write_text(yaml.safe_dump({
        "module": "ops.py",
        "functions": {"cube": {"inputs": [{"shape": [3]}], "devices": ["cpu"]}}}),
        encoding="utf-8")
    # The test module first (collection order): its `import ops` registers the op.
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "test_ops.py", "gradcheck_ops.yaml"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "7 passed" in run.stdout, run.stdout


# ------------------------------------------------------------------ opcheck in plain words


def test_opcheck_failures_say_what_is_wrong_and_where(ns: str, write_op: Any,
                                                      run_json: Any) -> None:
    path = write_op(f'''
import torch
from torch import Tensor


@torch.library.custom_op("{ns}::mutates", mutates_args=())
def mutates(x: Tensor) -> Tensor:
    x.mul_(2)
    return x.clone()


@torch.library.custom_op("{ns}::halfprecise", mutates_args=())
def halfprecise(x: Tensor) -> Tensor:
    return x.clone()


@halfprecise.register_fake
def _(x):
    return torch.empty_like(x, dtype=torch.float32)


@torch.library.custom_op("{ns}::nofake", mutates_args=())
def nofake(x: Tensor) -> Tensor:
    return x.clone()


torch.library.define("{ns}::recorded", "(Tensor x) -> Tensor")


@torch.library.impl("{ns}::recorded", "cpu")
def _recorded(x):
    return x * 2
''')
    doc = run_json("ops.py", "--check", "opcheck")
    mutated = only(doc, function="mutates", check="opcheck:schema")
    assert mutated["status"] == "failed"
    assert mutated["message"].startswith(
        'the kernel changes its input `x` in place, but the op does not declare it: add "x" '
        "to mutates_args")
    assert mutated["location"] == f"ops.py:{line_of(path, 'def mutates(')}"
    dtype = only(doc, function="halfprecise", check="opcheck:faketensor")
    assert dtype["message"].startswith(
        "your register_fake returns dtype float32 but the op returns float64 (torch: ")
    assert dtype["location"] == f"ops.py:{line_of(path, '@halfprecise.register_fake')}"
    missing = only(doc, function="nofake", check="opcheck:faketensor")
    assert missing["message"].startswith(f"nofake (`{ns}::nofake`) has no fake kernel")
    assert "@nofake.register_fake" in missing["message"]
    # One cause, one failure: tracing without a fake kernel is skipped, not failed again.
    traced = only(doc, function="nofake", check="opcheck:aot_dispatch_dynamic")
    assert traced["status"] == "skipped" and "opcheck:faketensor" in traced["message"]
    recorded = only(doc, function="recorded", check="opcheck:autograd_registration")
    assert recorded["status"] == "failed"
    assert recorded["message"].startswith("recorded's outputs require grad, but no autograd "
                                          "formula is registered for it")
    assert f'torch.library.register_fake("{ns}::recorded")' in only(
        doc, function="recorded", check="opcheck:faketensor")["message"]


def test_a_kernel_that_raises_is_an_error_not_an_opcheck_failure(
        ns: str, write_op: Any, write_spec: Any, run_json: Any) -> None:
    path = write_op(f'''
import torch


@torch.library.custom_op("{ns}::picky", mutates_args=())
def picky(x: torch.Tensor) -> torch.Tensor:
    if x.shape[0] == 5:
        raise ValueError("five is not allowed")
    return x.clone()


@picky.register_fake
def _(x):
    return torch.empty_like(x)


def _backward(ctx, g):
    raise RuntimeError("backward broke")


picky.register_autograd(_backward)
''')
    write_spec({"module": "ops.py", "functions": {"picky": {
        "inputs": [{"shape": [5]}], "cases": [{"name": "three", "inputs": [{"shape": [3]}]}]}}})
    doc = run_json("spec.yaml", "--check", "gradcheck", "--check", "opcheck")
    for check in ("gradcheck", *OPCHECKS):
        result = only(doc, case="default", check=check)
        assert (result["status"], result["message"]) == (
            "error", "ValueError in forward: five is not allowed"), check
        assert result["location"] == f"ops.py:{line_of(path, 'raise ValueError')}"
    traced = only(doc, case="three", check="opcheck:aot_dispatch_dynamic")
    assert traced["status"] == "failed"
    line = line_of(path, "raise RuntimeError")
    assert traced["message"] == ("torch.compile (AOT dispatch, dynamic shapes) could not run "
                                 f"the op: RuntimeError: backward broke, raised at line {line}")
    assert traced["location"] == f"ops.py:{line}"


def test_opcheck_on_an_autograd_function_is_skipped_with_the_reason(write_op: Any,
                                                                    run_json: Any) -> None:
    write_op('''
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
''')
    assert [r["check"] for r in run_json("ops.py")["results"]] == ["gradcheck",
                                                                    "gradgradcheck"]
    doc = run_json("ops.py", "--check", "opcheck")
    assert [(r["check"], r["status"]) for r in doc["results"]] == [
        (name, "skipped") for name in OPCHECKS]
    assert doc["results"][0]["message"] == ("Square is not a custom op (torch.library): "
                                            "opcheck tests only those")


def test_a_spec_naming_an_op_gets_opcheck_by_default(ns: str, write_op: Any, write_spec: Any,
                                                     run_json: Any) -> None:
    write_op(op_source(ns, fake="x.new_empty(x.shape[1:])"))
    write_spec({"module": "ops.py", "functions": {"square": {"inputs": [{"shape": [2, 5]}]}}})
    doc = run_json("spec.yaml")
    assert [r["check"] for r in doc["results"]] == ["gradcheck", "gradgradcheck", *OPCHECKS]
    fake = only(doc, check="opcheck:faketensor")
    assert fake["status"] == "failed"
    assert fake["message"].startswith("your register_fake returns shape (5,) but the op "
                                      "returns (2, 5)")


def test_without_torch_library_opcheck_the_tests_are_skipped(
        ns: str, write_op: Any, run_json: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    write_op(op_source(ns))
    monkeypatch.delattr(torch.library, "opcheck")
    doc = run_json("ops.py", "--check", "opcheck")
    assert {r["status"] for r in doc["results"]} == {"skipped"}
    assert doc["results"][0]["message"] == (f"this torch ({torch.__version__}) has no "
                                            "torch.library.opcheck (it came in torch 2.4)")


# ------------------------------------------------------------------ capabilities, init, cache


def test_capabilities_of_custom_ops(ns: str, write_op: Any, run_json: Any) -> None:
    write_op(op_source(ns, fake="torch.empty(x.shape[0])") + f'''

@torch.library.custom_op("{ns}::plain", mutates_args=())
def plain(x: torch.Tensor) -> torch.Tensor:
    return x.clone()


@plain.register_fake
def _(x):
    return torch.empty_like(x)
''')
    doc = run_json("ops.py", "--check", "gradcheck", "--capabilities")
    caps = only(doc, function="square", check="capabilities")["capabilities"]
    assert {k: v["status"] for k, v in caps.items()} == {
        "first_order": "ok", "second_order": "ok", "forward_ad": "n/a", "vmap": "ok",
        "undefined_grad": "n/a", "non_contiguous": "ok", "cuda": "n/a",
        "cpu_cuda_agreement": "n/a", "fake_kernel": "fail", "compile": "fail"}
    assert caps["forward_ad"]["reason"].startswith("custom ops have no forward-mode AD")
    assert caps["fake_kernel"]["reason"].startswith("your register_fake returns shape (3,)")
    assert caps["compile"]["reason"].startswith("torch.compile traced the op with its fake "
                                                "kernel's outputs, which do not match")
    plain = only(doc, function="plain", check="capabilities")["capabilities"]
    assert plain["first_order"] == {"status": "n/a", "reason": "no autograd formula "
                                    "registered (torch.library.register_autograd)"}
    assert plain["fake_kernel"]["status"] == "ok" and plain["compile"]["status"] == "ok"


def test_init_writes_a_spec_for_custom_ops_that_runs(tmp_path: Path, run_cli: Any,
                                                     run_json: Any) -> None:
    source = (Path(__file__).parent / "cases" / "custom_ops.py").read_text(encoding="utf-8")
    (tmp_path / "ops.py").write_text(source.replace("gcc_cases::", "gcc_init::"),
                                     encoding="utf-8")
    code, _, err = run_cli("init", "ops.py")
    assert code == 0, err
    spec = yaml.safe_load((tmp_path / "ops.yaml").read_text(encoding="utf-8"))
    assert spec["functions"]["scaled"]["inputs"] == [{"shape": [3, 4], "name": "x"},
                                                     {"value": 1.5, "name": "alpha"}]
    assert [i["name"] for i in spec["functions"]["sum_of_squares"]["inputs"]] == [
        "xs[0]", "xs[1]"]
    doc = run_json("ops.yaml")
    assert only(doc, function="mytanh", check="gradcheck")["status"] == "failed"
    assert only(doc, function="rowsum", check="opcheck:faketensor")["status"] == "failed"
    assert only(doc, function="sum_of_squares", check="gradcheck")["status"] == "passed"


def test_cached_opcheck_passes_rerun_when_the_fake_kernel_changes(
        ns: str, tmp_path: Path, write_op: Any, run_json: Any) -> None:
    path = write_op(op_source(ns))
    args = ("ops.py", "--check", "opcheck:faketensor", "-j", "0", "--cache-dir", "cache")
    first = run_json(*args, in_process=False)
    assert [(r["status"], r["cached"]) for r in first["results"]] == [("passed", False)]
    again = run_json(*args, in_process=False)
    assert [(r["status"], r["cached"]) for r in again["results"]] == [("passed", True)]
    path.write_text(path.read_text(encoding="utf-8").replace(
        "return torch.empty_like(x)", "return torch.empty_like(x).sum(0)"), encoding="utf-8")
    old = discovery._loaded.pop(path.resolve())  # as a new process would, import the edit
    sys.modules.pop(old.__name__)
    edited = run_json(*args, in_process=False)
    assert [(r["status"], r["cached"]) for r in edited["results"]] == [("failed", False)]
