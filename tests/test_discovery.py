"""Which Functions a Python file holds, and how it gets imported."""

from __future__ import annotations

import pytest
from conftest import line_of, only, statuses

SQUARE = '''
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


def test_only_functions_defined_in_the_file_are_found(write_op, run_json):
    write_op(SQUARE, "lib.py")
    write_op('''
        import torch
        from lib import Square  # imported: not ours to check
        from torch.autograd import Function


        class LocalSquare(Square):  # a subclass of an imported Function is ours
            pass


        class Triple(Function):
            @staticmethod
            def forward(ctx, x):
                return x * 3

            @staticmethod
            def backward(ctx, g):
                return g * 3


        def helper(x):  # a plain function: only checked when a spec names it
            return x.sin()
    ''', "ops.py")
    doc = run_json("ops.py")
    assert statuses(doc) == {("LocalSquare", "gradcheck"): "passed",
                             ("LocalSquare", "gradgradcheck"): "passed",
                             ("Triple", "gradcheck"): "passed",
                             ("Triple", "gradgradcheck"): "passed"}
    assert doc["_exit_code"] == 0
    result = only(doc, function="Triple", check="gradcheck")
    assert result["module"] == "ops.py"
    assert result["spec"] is None
    assert result["case"] == "default"
    assert result["device"] == "cpu"
    assert [i["name"] for i in result["inputs"]] == ["x"]


def test_subclasses_and_classmethod_forward(write_op, run_json):
    ops = write_op('''
        import torch
        from torch.autograd import Function


        class Base(Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2

            @staticmethod
            def backward(ctx, g):
                return g * 2


        class Child(Base):
            pass


        class WrongChild(Base):
            @staticmethod
            def backward(ctx, g):
                return g * 3


        class SumSquares(Function):
            @classmethod
            def forward(cls, ctx, X, dim=-1):
                ctx.dim = dim
                ctx.save_for_backward(X)
                return (X * X).sum(dim)

            @classmethod
            def backward(cls, ctx, g):
                (X,) = ctx.saved_tensors
                return 2 * X * g.unsqueeze(ctx.dim), None
    ''')
    doc = run_json("ops.py", "--check", "gradcheck")
    assert statuses(doc) == {
        ("Base", "gradcheck"): "passed",
        ("Child", "gradcheck"): "passed",
        ("WrongChild", "gradcheck"): "failed",
        ("SumSquares", "gradcheck"): "passed",
    }
    # `dim` has a default, so only X is inferred, and it is named after the parameter.
    assert [i["name"] for i in only(doc, function="SumSquares")["inputs"]] == ["X"]
    wrong = only(doc, function="WrongChild")
    assert wrong["location"] == \
        f"ops.py:{line_of(ops, 'def backward', after='class WrongChild(')}"
    assert wrong["inputs"][0]["max_abs_error"] > 0.5


def test_new_style_function_with_setup_context(write_op, write_spec, run_json):
    write_op('''
        import torch


        class ExpSum(torch.autograd.Function):
            @staticmethod
            def forward(X, dim):
                return X.exp().sum(dim)

            @staticmethod
            def setup_context(ctx, inputs, output):
                X, dim = inputs
                ctx.save_for_backward(X)
                ctx.dim = dim

            @staticmethod
            def backward(ctx, g):
                (X,) = ctx.saved_tensors
                return X.exp() * g.unsqueeze(ctx.dim), None
    ''')
    write_spec('''
        module: ops.py
        functions:
          ExpSum:
            inputs:
              - {shape: [2, 3]}
              - 1
    ''')
    doc = run_json("spec.yaml")
    assert statuses(doc) == {("ExpSum", "gradcheck"): "passed",
                             ("ExpSum", "gradgradcheck"): "passed"}
    # forward has no ctx: the first parameter is X, not dropped as if it were ctx.
    assert [i["name"] for i in only(doc, check="gradcheck")["inputs"]] == ["X"]


def test_new_style_function_inferred_inputs(write_op, run_json):
    write_op('''
        import torch


        class Cube(torch.autograd.Function):
            @staticmethod
            def forward(x, power=3):
                return x ** power

            @staticmethod
            def setup_context(ctx, inputs, output):
                x, power = inputs
                ctx.save_for_backward(x)
                ctx.power = power

            @staticmethod
            def backward(ctx, g):
                (x,) = ctx.saved_tensors
                return ctx.power * x ** (ctx.power - 1) * g, None
    ''')
    doc = run_json("ops.py", "--check", "gradcheck")
    result = only(doc, function="Cube")
    assert result["status"] == "passed"
    assert [i["name"] for i in result["inputs"]] == ["x"]


@pytest.mark.parametrize("first", ["self", "ctx"])
def test_legacy_non_static_forward_is_an_error_with_the_fix(write_op, run_json, first):
    """`self` is the legacy style; `ctx` without @staticmethod is the common slip."""
    write_op(f'''
        import torch


        class Legacy(torch.autograd.Function):
            def forward({first}, x):
                return x * 2

            def backward({first}, g):
                return g * 2
    ''')
    doc = run_json("ops.py")
    assert doc["_exit_code"] == 1
    assert statuses(doc) == {("Legacy", "gradcheck"): "error",
                             ("Legacy", "gradgradcheck"): "error"}
    for result in doc["results"]:
        assert "@staticmethod" in result["message"]
        assert "Add @staticmethod" in result["message"]
        assert result["location"] == "ops.py:5"  # the line of `def forward`
        assert result["inputs"] == []


def test_legacy_forward_in_table_output(write_op, run_cli):
    write_op('''
        import torch


        class Legacy(torch.autograd.Function):
            def forward(self, x):
                return x * 2
    ''')
    code, out, _ = run_cli("ops.py", "--check", "gradcheck")
    assert code == 1
    assert "ERROR ops.py::Legacy[cpu-gradcheck]" in out
    assert "at ops.py:5" in out
    assert "Add @staticmethod" in out


def test_package_with_relative_imports(write_op, write_spec, run_json):
    write_op("", "relpkg/__init__.py")
    write_op("k = 2.0\n", "relpkg/helpers.py")
    write_op('''
        import torch

        from .helpers import k


        class Scale(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * k

            @staticmethod
            def backward(ctx, g):
                return g * k
    ''', "relpkg/ops.py")
    doc = run_json("relpkg/ops.py", "--check", "gradcheck")
    result = only(doc, function="Scale")
    assert result["status"] == "passed", result["message"]
    assert result["module"] == "relpkg/ops.py"

    write_spec('''
        module: ../relpkg/ops.py
        functions:
          Scale:
            inputs:
              - {shape: [3]}
    ''', "specs/scale.yaml")
    doc = run_json("specs/scale.yaml", "--check", "gradcheck")
    result = only(doc, function="Scale")
    assert result["status"] == "passed", result["message"]
    assert result["spec"] == "specs/scale.yaml"
    assert result["module"] == "relpkg/ops.py"


def test_two_packages_with_the_same_name_do_not_collide(write_op, run_json):
    """Two projects each with a `samepkg/ops.py` using relative imports, checked in one run."""
    for folder, factor in (("one", 2.0), ("two", 5.0)):
        write_op("", f"{folder}/samepkg/__init__.py")
        write_op(f"k = {factor}\n", f"{folder}/samepkg/helpers.py")
        write_op(f'''
            import torch

            from .helpers import k


            class Scale{folder.title()}(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    return x * k

                @staticmethod
                def backward(ctx, g):
                    return g * {factor}
        ''', f"{folder}/samepkg/ops.py")
    doc = run_json("one/samepkg/ops.py", "two/samepkg/ops.py", "--check", "gradcheck")
    assert statuses(doc) == {("ScaleOne", "gradcheck"): "passed",
                             ("ScaleTwo", "gradcheck"): "passed"}, [
        r["message"] for r in doc["results"]]


def test_two_files_named_ops_do_not_collide(write_op, write_spec, run_json):
    for folder, factor, wrong in (("a", 3, 3), ("b", 4, 5)):
        write_op(f'''
            import torch


            class Mul(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    return x * {factor}

                @staticmethod
                def backward(ctx, g):
                    return g * {wrong}
        ''', f"{folder}/ops.py")
        write_spec('''
            module: ops.py
            functions:
              Mul:
                inputs:
                  - {shape: [2]}
        ''', f"{folder}/spec.yaml")
    doc = run_json("a/ops.py", "b/ops.py", "--check", "gradcheck")
    assert [(r["module"], r["function"], r["status"]) for r in doc["results"]] == [
        ("a/ops.py", "Mul", "passed"),
        ("b/ops.py", "Mul", "failed"),
    ]
    doc = run_json("a/spec.yaml", "b/spec.yaml", "--check", "gradcheck")
    assert [(r["spec"], r["module"], r["status"]) for r in doc["results"]] == [
        ("a/spec.yaml", "a/ops.py", "passed"),
        ("b/spec.yaml", "b/ops.py", "failed"),
    ]


def test_user_file_named_like_a_library_does_not_shadow_it(write_op, run_json):
    write_op('''
        import torch


        class Twice(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2

            @staticmethod
            def backward(ctx, g):
                return g * 2
    ''', "yaml.py")
    doc = run_json("yaml.py", "--check", "gradcheck")
    assert statuses(doc) == {("Twice", "gradcheck"): "passed"}


def test_plain_function_named_in_a_spec_is_checked(write_op, write_spec, run_json):
    write_op('''
        import torch


        def soft_sign(x, scale=1.0):
            return scale * x / (1 + x.abs())


        def not_differentiable_here(x):
            return x.detach() * 2
    ''')
    write_spec('''
        module: ops.py
        functions:
          soft_sign:
            inputs:
              - {shape: [4], low: 0.1, high: 1}
              - 2.0
          not_differentiable_here:
            inputs:
              - {shape: [3]}
    ''')
    doc = run_json("spec.yaml")
    assert statuses(doc) == {
        ("soft_sign", "gradcheck"): "passed",
        ("soft_sign", "gradgradcheck"): "passed",
        ("not_differentiable_here", "gradcheck"): "failed",
        # No differentiable output: nothing to differentiate twice, so not a pass.
        ("not_differentiable_here", "gradgradcheck"): "skipped",
    }
    result = only(doc, function="soft_sign", check="gradcheck")
    assert [i["name"] for i in result["inputs"]] == ["x"]
    assert result["location"] == "ops.py:4"
    failed = only(doc, function="not_differentiable_here", check="gradcheck")
    assert "no output of forward requires grad" in failed["message"]


def test_name_in_spec_that_is_not_defined(write_op, write_spec, run_json):
    write_op(SQUARE)
    write_spec('''
        module: ops.py
        functions:
          Sqare:
            inputs:
              - {shape: [2]}
          Square:
            inputs:
              - {shape: [2]}
    ''')
    doc = run_json("spec.yaml", "--check", "gradcheck")
    bad = only(doc, function="Sqare")
    assert bad["status"] == "error"
    assert bad["message"].startswith("spec.yaml:3: `Sqare` is not defined in ops.py")
    assert "did you mean `Square`?" in bad["message"]
    assert only(doc, function="Square")["status"] == "passed"


def test_function_filter_and_no_match(write_op, run_json):
    write_op(SQUARE)
    doc = run_json("ops.py", "-k", "Square", "--check", "gradcheck")
    assert statuses(doc) == {("Square", "gradcheck"): "passed"}
    doc = run_json("ops.py", "-k", "Nothing")
    assert doc["results"] == []
    assert doc["_exit_code"] == 4  # a -k that matches nothing is a typo: a usage error
