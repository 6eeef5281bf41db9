"""Spec files: every mistake is reported at file:line:col with a fix; valid forms all work."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import errors_by_name, only, statuses

from gradcheck_cli.target.discovery import import_file

OPS = '''
import torch

SEEN = []


class Mul(torch.autograd.Function):
    """y = x * 3"""

    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, g):
        return g * 3


class OffByHalf(torch.autograd.Function):
    """y = x * 3, but the gradient says 3.5: wrong by 0.5 everywhere."""

    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, g):
        return g * 3.5


class Slightly(torch.autograd.Function):
    """y = x * 3, gradient 3.0001: within torch's default tolerances, not within 1e-9."""

    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, g):
        return g * 3.0001


class Literals(torch.autograd.Function):
    """Records the non-tensor arguments it was given."""

    @staticmethod
    def forward(ctx, x, alpha, options, index):
        SEEN.append((alpha, options, index))
        ctx.alpha = alpha * options["k"]
        return x * ctx.alpha

    @staticmethod
    def backward(ctx, g):
        return g * ctx.alpha, None, None, None


class Shape(torch.autograd.Function):
    """Records the shape and dtype of its input."""

    @staticmethod
    def forward(ctx, x):
        SEEN.append((tuple(x.shape), str(x.dtype), float(x.min()), float(x.max())))
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2
'''


@pytest.fixture
def ops(write_op):
    return write_op(OPS)


def spec_error(doc):
    """The one result of a spec that could not be read."""
    assert doc["_exit_code"] == 1
    assert len(doc["results"]) == 1, doc["results"]
    result = doc["results"][0]
    assert result["status"] == "error"
    assert result["function"] is None
    assert result["device"] == "-" and result["check"] == "-"
    return result


def test_misspelt_input_key_suggests_the_closest(ops, write_spec, run_json, run_cli):
    write_spec('''
        module: ops.py
        functions:
          Mul:
            inputs:
              - {shpae: [2]}
    ''')
    doc = run_json("spec.yaml")
    result = only(doc, function="Mul")
    assert result["status"] == "error"
    assert result["spec"] == "spec.yaml"
    assert result["location"] == "spec.yaml:5:10"
    assert result["message"] == (
        "spec.yaml:5:10: unknown key `shpae` in an input\n  hint: did you mean `shape`?"
    )
    code, out, _ = run_cli("spec.yaml")
    assert code == 1
    assert "spec.yaml:5:10: unknown key `shpae` in an input" in out
    assert "hint: did you mean `shape`?" in out


@pytest.mark.parametrize(
    ("text", "where", "message", "hint"),
    [
        pytest.param(
            "modul: ops.py\nfunctions:\n  Mul:\n    inputs: [{shape: [2]}]\n",
            "1:1", "unknown key `modul` in the spec", "did you mean `module`?", id="top-key"),
        pytest.param(
            "module: ops.py\ndefaults:\n  chekcs: [gradcheck]\nfunctions:\n"
            "  Mul:\n    inputs: [{shape: [2]}]\n",
            "3:3", "unknown key `chekcs` in `defaults`", "did you mean `checks`?",
            id="defaults-key"),
        pytest.param(
            "module: ops.py\nfunctions:\n  Mul:\n    inputs: [{shape: [2]}]\n"
            "    cases:\n      - {name: a, inptus: [{shape: [3]}]}\n",
            "6:19", "unknown key `inptus` in a case", "did you mean `inputs`?", id="case-key"),
        pytest.param(
            "module: ops.py\nfunctions:\n  Mul:\n    inptus: [{shape: [2]}]\n",
            "4:5", "unknown key `inptus` in function `Mul`", "did you mean `inputs`?",
            id="function-key"),
        pytest.param(
            "module: ops.py\nfunctions:\n  Mul:\n    inputs: [{shape: [2], dtyp: float32}]\n",
            "4:27", "unknown key `dtyp` in a tensor input", "did you mean `dtype`?",
            id="tensor-key"),
        pytest.param(
            "module: ops.py\nfunctions:\n  Mul:\n    inputs: [{shape: [2], dtype: flaot32}]\n",
            "4:34", "unknown dtype `flaot32`", "did you mean `float32`?", id="dtype"),
        pytest.param(
            "module: ops.py\nfunctions:\n  Mul:\n    checks: [gradchek]\n"
            "    inputs: [{shape: [2]}]\n",
            "4:13", "unknown check `gradchek`", "did you mean `gradcheck`?", id="check-name"),
        pytest.param(
            "module: ops.py\nfunctions:\n  Mul:\n    devices: [cdua]\n"
            "    inputs: [{shape: [2]}]\n",
            "4:14", "unknown device `cdua`", "did you mean `cuda`?", id="device-name"),
    ],
)
def test_unknown_names_suggest_the_closest(ops, write_spec, run_json, text, where, message,
                                           hint):
    write_spec(text)
    doc = run_json("spec.yaml")
    result = doc["results"][0]
    assert result["status"] == "error"
    assert result["location"] == f"spec.yaml:{where}"
    assert result["message"] == f"spec.yaml:{where}: {message}\n  hint: {hint}"


def test_missing_module(ops, write_spec, run_json):
    write_spec('''
        functions:
          Mul:
            inputs:
              - {shape: [2]}
    ''')
    result = spec_error(run_json("spec.yaml"))
    assert result["spec"] == "spec.yaml"
    assert result["module"] is None
    assert result["location"] == "spec.yaml:1:1"
    assert result["message"].startswith("spec.yaml:1:1: missing `module`\n  hint: add `module:")


def test_module_file_that_does_not_exist(ops, write_spec, run_json):
    write_spec('''
        module: opz.py
        functions:
          Mul:
            inputs:
              - {shape: [2]}
    ''')
    result = spec_error(run_json("spec.yaml"))
    assert "module file not found" in result["message"]
    assert "opz.py" in result["message"]


def test_shape_not_a_list(ops, write_spec, run_json):
    write_spec('''
        module: ops.py
        functions:
          Mul:
            inputs:
              - {shape: 3x4}
    ''')
    result = only(run_json("spec.yaml"), function="Mul")
    assert result["status"] == "error"
    assert result["location"] == "spec.yaml:5:17"
    assert result["message"].startswith(
        "spec.yaml:5:17: `shape` must be a list of non-negative integers")


def test_seed_not_an_integer(ops, write_spec, run_json):
    write_spec('''
        module: ops.py
        functions:
          Mul:
            seed: abc
            inputs:
              - {shape: [2]}
    ''')
    result = only(run_json("spec.yaml"), function="Mul")
    assert result["status"] == "error"
    assert result["message"] == "spec.yaml:4:11: `seed` must be an integer"


@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        pytest.param("    atol: tight\n    inputs: [{shape: [2]}]\n", "4:11",
                     "`atol` must be a number", id="atol-word"),
        pytest.param("    rtol: -1\n    inputs: [{shape: [2]}]\n", "4:11",
                     "`rtol` must be positive", id="rtol-negative"),
        pytest.param("    eps: 0\n    inputs: [{shape: [2]}]\n", "4:10",
                     "`eps` must be positive", id="eps-zero"),
        pytest.param("    inputs: {shape: [2]}\n", "4:13",
                     "`inputs` must be a list, one entry per argument of forward", id="inputs-map"),
        pytest.param("    inputs: [{shape: [2], low: 2, high: 1}]\n", "4:27",
                     "`low` (2.0) must be smaller than `high` (1.0)", id="low-high"),
        pytest.param("    inputs: [{shape: [2], dtype: int64, requires_grad: true}]\n", "4:41",
                     "a int64 tensor cannot require grad", id="int-grad"),
        pytest.param("    inputs: [{shape: [2], value: 1}]\n", "4:14",
                     "an input has either `shape` (a tensor) or `value` (a literal), not both",
                     id="shape-and-value"),
        pytest.param("    inputs: [{dtype: float32}]\n", "4:14",
                     "an input mapping needs `shape` (a tensor) or `value` (a literal)",
                     id="no-shape"),
        pytest.param("    cases: [{inputs: [{shape: [2]}]}]\n", "4:13",
                     "each case needs a `name`", id="case-without-name"),
        pytest.param("    inputs: [{shape: [2]}]\n    cases: [{name: default}]\n", "5:14",
                     "duplicate case name `default`", id="duplicate-case"),
        pytest.param("    inputs: [{shape: [2]}]\n    inputs: [{shape: [3]}]\n", "5:5",
                     "duplicate key `inputs`", id="duplicate-key"),
    ],
)
def test_wrong_types_and_values(ops, write_spec, run_json, body, where, message):
    write_spec("module: ops.py\nfunctions:\n  Mul:\n" + body)
    doc = run_json("spec.yaml")
    result = doc["results"][0]
    assert result["status"] == "error"
    assert result["location"] == f"spec.yaml:{where}"
    assert result["message"].split("\n")[0] == f"spec.yaml:{where}: {message}"


def test_yaml_syntax_error_names_the_line(ops, write_spec, run_json, run_cli):
    write_spec('''
        module: ops.py
        functions:
          Mul:
            inputs:
              - {shape: [2]}
             seed: 1
    ''')
    result = spec_error(run_json("spec.yaml"))
    assert result["location"] == "spec.yaml:6:6"
    assert result["message"].startswith("spec.yaml:6:6: YAML syntax error: ")
    assert "hint: check the indentation" in result["message"]
    code, out, _ = run_cli("spec.yaml")
    assert code == 1
    assert "ERROR spec.yaml" in out
    assert "spec.yaml:6:6: YAML syntax error" in out


@pytest.mark.parametrize("text", ["- module: ops.py\n", "", "name: ci\njobs: [build]\n"],
                         ids=["list", "empty", "other-yaml"])
def test_yaml_that_is_not_a_spec_is_skipped_with_a_note(ops, write_spec, run_cli, text):
    write_spec(text)
    code, out, err = run_cli("spec.yaml")
    assert code == 5
    assert "spec.yaml: not a gradcheck spec (no `module:`/`functions:`), skipped" in err
    assert out.splitlines()[-1].startswith("no checks ran in ")


@pytest.mark.parametrize(
    "text",
    [
        '{"module": "ops.py", "functions": {"Mul": {"inputs": [{"shape": [2]}]}}}\n',
        '# quoted keys\n"module": ops.py\n"functions":\n  Mul:\n    inputs: [{shape: [2]}]\n',
        "---\n{module: ops.py, functions: {Mul: {inputs: [{shape: [2]}]}}}\n",
    ],
    ids=["json", "quoted-keys", "flow-mapping"],
)
def test_spec_in_any_yaml_style_is_read(ops, write_spec, run_json, text):
    """YAML is a superset of JSON: a spec written by json.dump, or in flow style, is a spec."""
    write_spec(text)
    doc = run_json("spec.yaml", "--check", "gradcheck")
    assert statuses(doc) == {("Mul", "gradcheck"): "passed"}
    assert "not a gradcheck spec" not in doc["_stderr"]


def test_exponent_numbers_are_accepted(ops, write_spec, run_json):
    """PyYAML reads `1e-5` and `1e0` (no dot) as strings; they must count as numbers."""
    write_spec('''
        module: ops.py
        defaults:
          atol: 1e0
          rtol: 0
          eps: 1e-6
        functions:
          OffByHalf:
            inputs:
              - {shape: [3], low: -1e0, high: 1e0}
          Mul:
            atol: 1e-5
            rtol: 1e-3
            inputs:
              - {shape: [3]}
    ''')
    doc = run_json("spec.yaml", "--check", "gradcheck")
    # Off by 0.5 everywhere: within atol 1 (the defaults' `1e0`), so it passes.
    assert statuses(doc) == {("OffByHalf", "gradcheck"): "passed", ("Mul", "gradcheck"): "passed"}
    assert 0.49 < errors_by_name(only(doc, function="OffByHalf"))["x"] < 0.51
    # Without the loose tolerance it fails: the number was really used.
    doc = run_json("spec.yaml", "--check", "gradcheck", "--atol", "1e-5")
    assert only(doc, function="OffByHalf")["status"] == "failed"


def test_literal_inputs_are_passed_as_is(ops, write_spec, run_json):
    write_spec('''
        module: ops.py
        functions:
          Literals:
            checks: [gradcheck]
            inputs:
              - {shape: [2]}
              - 2.5
              - {value: {k: 2, l: [1, 2]}, name: options}
              - [0, 1]
            cases:
              - name: other
                inputs:
                  - {shape: [2]}
                  - 1
                  - {value: {k: 3}}
                  - null
    ''')
    doc = run_json("spec.yaml")
    assert [(r["case"], r["status"]) for r in doc["results"]] == [("default", "passed"),
                                                                   ("other", "passed")]
    assert [i["name"] for i in doc["results"][0]["inputs"]] == ["x"]
    module = import_file(ops)  # the module the run imported (imported once per process)
    seen = {(alpha, repr(options), repr(index)) for alpha, options, index in module.SEEN}
    assert seen == {(2.5, "{'k': 2, 'l': [1, 2]}", "[0, 1]"), (1, "{'k': 3}", "None")}
    # Plain Python values: dicts and lists, not the loader's bookkeeping subclasses.
    default = [(options, index) for alpha, options, index in module.SEEN if alpha == 2.5]
    other = [(options, index) for alpha, options, index in module.SEEN if alpha == 1]
    assert default and other
    for options, index in default:
        assert type(options) is dict and type(options["l"]) is list and type(index) is list
    for options, index in other:
        assert type(options) is dict and index is None


def test_cases_defaults_and_overrides(ops, write_spec, run_json):
    write_spec('''
        module: ops.py
        defaults:
          checks: [gradcheck]
          seed: 7
        functions:
          Slightly:
            inputs:
              - {shape: [3]}
            cases:
              - name: strict
                atol: 1e-9
                rtol: 0
              - name: wide
                seed: 3
                inputs:
                  - {shape: [2, 5]}
          Mul:
            checks: [gradcheck, gradgradcheck]
            inputs:
              - {shape: [2]}
    ''')
    doc = run_json("spec.yaml")
    got = [(r["function"], r["case"], r["check"], r["status"], r["seed"]) for r in doc["results"]]
    assert got == [
        ("Slightly", "default", "gradcheck", "passed", 7),
        ("Slightly", "strict", "gradcheck", "failed", 7),
        ("Slightly", "wide", "gradcheck", "passed", 3),
        ("Mul", "default", "gradcheck", "passed", 7),
        ("Mul", "default", "gradgradcheck", "passed", 7),
    ]
    strict = only(doc, case="strict")
    assert strict["reproduce"] == ("gradcheck-cli spec.yaml --function Slightly --case strict "
                                   "--device cpu --check gradcheck --seed 7")
    # Select one case from the command line.
    doc = run_json("spec.yaml", "--case", "wide")
    assert [(r["function"], r["case"]) for r in doc["results"]] == [("Slightly", "wide")]


def test_input_shapes_dtypes_and_ranges(ops, write_spec, run_json):
    write_spec('''
        module: ops.py
        functions:
          Shape:
            checks: [gradcheck]
            inputs:
              - {shape: [2, 3], dtype: float64, low: 2, high: 3}
            cases:
              - name: scalar
                inputs: [{shape: []}]
              - name: int-shape
                inputs: [{shape: 4}]
    ''')
    doc = run_json("spec.yaml")
    assert [r["status"] for r in doc["results"]] == ["passed"] * 3
    module = import_file(ops)  # the module the run imported (imported once per process)
    shapes = {entry[:2] for entry in module.SEEN if len(entry) == 4}
    assert shapes == {((2, 3), "torch.float64"), ((), "torch.float64"), ((4,), "torch.float64")}
    ranged = [entry for entry in module.SEEN if len(entry) == 4 and entry[0] == (2, 3)]
    assert ranged
    assert all(low >= 1.99 and high <= 3.01 for _, _, low, high in ranged)


def test_arity_mismatch_names_the_missing_argument(ops, write_spec, run_json):
    write_spec('''
        module: ops.py
        functions:
          Literals:
            inputs:
              - {shape: [2]}
              - 2.0
          Mul:
            inputs:
              - {shape: [2]}
              - {shape: [2]}
    ''')
    doc = run_json("spec.yaml", "--check", "gradcheck")
    lit = only(doc, function="Literals")
    assert lit["status"] == "error"
    assert lit["message"].startswith(
        "spec.yaml:3: Literals.forward needs 4 argument(s) but the spec gives 2: "
        "missing `options`, `index`")
    mul = only(doc, function="Mul")
    assert mul["status"] == "error"
    assert mul["message"].startswith(
        "spec.yaml:7: Mul.forward takes 1 argument(s) but the spec gives 2")


def test_bad_function_entry_keeps_the_others(ops, write_spec, run_json):
    write_spec('''
        module: ops.py
        functions:
          Mul:
            inputs:
              - {shape: [2]}
          OffByHalf:
            inputs:
              - {shpae: [2]}
          Slightly:
            seed: [1]
            inputs:
              - {shape: [2]}
          Shape:
            inputs:
              - {shape: [3]}
    ''')
    doc = run_json("spec.yaml", "--check", "gradcheck")
    assert statuses(doc) == {
        ("Mul", "gradcheck"): "passed",
        ("OffByHalf", "-"): "error",
        ("Slightly", "-"): "error",
        ("Shape", "gradcheck"): "passed",
    }
    assert only(doc, function="OffByHalf")["location"] == "spec.yaml:8:10"
    assert only(doc, function="Slightly")["location"] == "spec.yaml:10:11"
    assert doc["summary"]["passed"] == 2 and doc["summary"]["error"] == 2
    assert doc["_exit_code"] == 1


def test_function_without_inputs_infers_them(ops, write_spec, run_json):
    write_spec('''
        module: ops.py
        functions:
          Mul:
          Shape: {}
    ''')
    doc = run_json("spec.yaml", "--check", "gradcheck")
    assert statuses(doc) == {("Mul", "gradcheck"): "passed", ("Shape", "gradcheck"): "passed"}


def test_folder_collects_every_spec_below_it(ops, write_spec, run_json):
    write_spec("module: ../ops.py\nfunctions:\n  Mul:\n    inputs: [{shape: [2]}]\n",
               "specs/b.yaml")
    write_spec("module: ../../ops.py\nfunctions:\n  Shape:\n    inputs: [{shape: [2]}]\n",
               "specs/sub/a.yml")
    write_spec("module: ../ops.py\nfunctions:\n  Mul:\n    inputs: [{shape: [2]}]\n",
               "specs/.hidden/c.yaml")
    doc = run_json("specs", "--check", "gradcheck")
    assert [(r["spec"], r["function"], r["status"]) for r in doc["results"]] == [
        ("specs/b.yaml", "Mul", "passed"),
        ("specs/sub/a.yml", "Shape", "passed"),
    ]


def _located(value: object, drop_empty: bool = False) -> object:
    """A document with every mark it keeps, for comparing two parsers' results (with
    `drop_empty`, not those of empty values)."""
    from gradcheck_cli.specs.yamlsource import LocDict, LocList

    if isinstance(value, LocDict):
        return ("map", value.mark, [
            (k, value.key_marks[k], None if drop_empty and v is None else value.value_marks[k],
             _located(v, drop_empty)) for k, v in value.items()])
    if isinstance(value, LocList):
        marks = [None if drop_empty and v is None else m
                 for m, v in zip(value.item_marks, value)]
        return ("seq", value.mark, marks, [_located(v, drop_empty) for v in value])
    return (type(value).__name__, value)


def test_libyaml_and_the_python_parser_build_the_same_documents() -> None:
    """Every YAML file of the project (specs, cases, CI config) gives the same values at the
    same lines and columns from either parser; only the choice of parser is libyaml's."""
    from pathlib import Path

    import yaml

    from gradcheck_cli.specs import yamlsource

    if yamlsource._C_LOADER is None:
        pytest.skip("PyYAML was built without libyaml")
    root = Path(__file__).resolve().parents[1]
    files = [p for p in sorted(root.rglob("*.yaml")) if ".venv" not in p.parts]
    assert len(files) > 20
    def parsed(loader: type, text: str, path: Path) -> object:
        try:
            return _located(yamlsource._compose(loader(text), str(path)))
        except yaml.YAMLError as exc:  # a file broken on purpose: broken for both
            mark = getattr(exc, "problem_mark", None)
            return ("error", mark and (mark.line, mark.column))

    for path in files:
        text = path.read_text()
        slow = parsed(yaml.SafeLoader, text, path)
        assert parsed(yamlsource._C_LOADER, text, path) == slow, path


def test_a_text_that_could_nest_deep_is_parsed_in_python(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from gradcheck_cli.specs import yamlsource

    if yamlsource._C_LOADER is None:
        pytest.skip("PyYAML was built without libyaml")
    used: list[str] = []
    real = yamlsource._compose

    def which(loader: object, path: str) -> object:
        used.append(type(loader).__name__)
        return real(loader, path)

    monkeypatch.setattr(yamlsource, "_compose", which)
    few = "a: [" + ", ".join(["{b: 1}"] * 400) + "]\n"  # 401 indicators
    many = "a: [" + ", ".join(["{b: 1}"] * 1000) + "]\n"  # 2001
    assert len(yamlsource._load(few, "few.yaml")["a"]) == 400
    assert len(yamlsource._load(many, "many.yaml")["a"]) == 1000
    assert used == ["CSafeLoader", "SafeLoader"]


def test_a_spec_means_the_same_with_and_without_libyaml() -> None:
    """Project YAML files with random edits (inserted, removed and replaced characters:
    YAML's indicators, tabs, BOMs, control characters, wide ones): the run's parser
    (libyaml where it is safe and agrees) and the pure-Python one accept and refuse the
    same texts, with the same values at the same places, but for the empty values of flow
    mappings (placed a column or two apart, see yamlsource)."""
    import random
    from pathlib import Path

    import yaml

    from gradcheck_cli.errors import SpecError
    from gradcheck_cli.specs import yamlsource

    def outcome(load: Callable[[], object]) -> object:
        try:
            return _located(load(), drop_empty=True)
        except (SpecError, yaml.YAMLError):
            return "refused"

    root = Path(__file__).resolve().parents[1]
    texts = [p.read_text() for p in sorted(root.rglob("*.yaml")) if ".venv" not in p.parts]
    alphabet = [*" \t\n\r-:?[]{},#&*!|>'\"%@`\\", *"abcx019ü名", "\x00", "\x85", "\u2028",
                "\ufeff", "\u200b", "\U0001f600"]
    rng = random.Random(0)
    for _ in range(1500):
        chars = list(rng.choice(texts))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(chars) + 1)
            edit = rng.random()
            if edit < 0.4:
                chars.insert(at, rng.choice(alphabet))
            elif at < len(chars):
                if edit < 0.7:
                    del chars[at]
                else:
                    chars[at] = rng.choice(alphabet)
        text = "".join(chars)
        run = outcome(lambda: yamlsource._load(text, "x"))  # noqa: B023
        python = outcome(lambda: yamlsource._compose(yaml.SafeLoader(text), "x"))  # noqa: B023
        assert run == python, text


def test_the_parse_cache_keeps_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Texts in all never pass the bound; one larger than it is parsed, not kept."""
    from gradcheck_cli.specs import yamlsource

    monkeypatch.setattr(yamlsource, "_PARSED", {})
    monkeypatch.setattr(yamlsource, "_parsed_chars", [0])
    monkeypatch.setattr(yamlsource, "_PARSED_CHARS", 100)
    texts = [f"a: {i}{' ' * 20}\n" for i in range(20)]
    for text in texts:
        assert yamlsource.load(text, "x.yaml")["a"] == int(text.split()[1])
        assert yamlsource._parsed_chars[0] == sum(map(len, yamlsource._PARSED)) <= 100
    assert list(yamlsource._PARSED) == texts[-len(yamlsource._PARSED):]
    big = "b: [" + ", ".join(["1"] * 60) + "]\n"
    assert len(yamlsource.load(big, "x.yaml")["b"]) == 60
    assert big not in yamlsource._PARSED
