"""Hostile input (issue 12, items 9-11, 13, 14): each bad spec is one clear `error` result
naming the file and line, and the good spec run beside it keeps its results."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

OPS = '''
import torch


class Mul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, g):
        return g * 3


class Wrong(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, g):
        return g * 3.5
'''

GOOD = """
module: ops.py
functions:
  Mul:
    inputs:
      - shape: [3]
"""

RunJson = Callable[..., dict[str, Any]]


@pytest.fixture
def good(write_op: Callable[..., Path], write_spec: Callable[..., Path]) -> Path:
    write_op(OPS)
    return write_spec(GOOD, "good.yaml")


def _run_beside(run_json: RunJson, bad: str, *args: str) -> tuple[dict[str, Any],
                                                                  list[dict[str, Any]]]:
    """Run the good spec and `bad`; assert the good one's two passes; return the document
    and the bad spec's results."""
    doc = run_json("good.yaml", bad, *args)
    assert not doc["_stderr"].count("Traceback"), doc["_stderr"]
    mine = [r for r in doc["results"] if r["spec"] == "good.yaml"]
    assert sorted((r["check"], r["status"]) for r in mine) == [
        ("gradcheck", "passed"), ("gradgradcheck", "passed")]
    return doc, [r for r in doc["results"] if r["spec"] == bad]


def _one_error(run_json: RunJson, bad: str, message: str, *args: str) -> dict[str, Any]:
    doc, results = _run_beside(run_json, bad, *args)
    assert doc["_exit_code"] == 1
    assert [r["status"] for r in results] == ["error"], results
    assert results[0]["message"] == message, results[0]["message"]
    return results[0]


def _spec(write_spec: Callable[..., Path], body: str, name: str = "bad.yaml") -> str:
    write_spec(body, name)
    return name


@pytest.mark.parametrize("levels", [600, 100_000])
def test_deep_nesting(run_json: RunJson, good: Path, write_spec: Callable[..., Path],
                      levels: int) -> None:
    """Refused at the level past 100, line and column, by either parser: libyaml's for a
    text that cannot nest deep enough to overflow its C stack (it kills the process at
    some 10^5 levels), the pure-Python one for the 100,000 levels."""
    deep = "[" * levels + "]" * levels
    bad = _spec(write_spec, GOOD + f"        low: {deep}\n")
    result = _one_error(run_json, bad, "bad.yaml:6:110: YAML nested more than 100 levels "
                        "deep\n  hint: a spec needs only a few levels of nesting")
    assert result["function"] is None


def test_alias_bomb_is_refused_fast(run_json: RunJson, good: Path,
                                    write_spec: Callable[..., Path]) -> None:
    text = "module: ops.py\nx0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]\n"
    for level in range(1, 9):
        text += f"x{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]\n"
    bad = _spec(write_spec, text + "functions:\n  Mul:\n    inputs: [{value: *a8}]\n")
    start = time.perf_counter()
    from gradcheck_cli.specs.specfile import load_spec

    spec = load_spec(good.parent / bad, bad)
    # Expanded, the bomb is 9**9 elements (minutes and gigabytes); refused, it costs a
    # parse. The bound leaves room for a loaded CI machine (1.5 s seen under load).
    assert time.perf_counter() - start < 10.0
    assert str(spec.error).startswith("bad.yaml:")
    _one_error(run_json, bad, "bad.yaml:2:31: YAML aliases expand to more than 100000 values "
               "(an alias bomb?)\n  hint: write the values out, or use fewer aliases")


def test_symlink_loop_as_module(run_json: RunJson, good: Path,
                                write_spec: Callable[..., Path]) -> None:
    os.symlink("loop.py", good.parent / "loop.py")
    bad = _spec(write_spec, "module: loop.py\nfunctions:\n  Mul:\n    inputs: [{shape: [3]}]\n")
    _one_error(run_json, bad, f"bad.yaml:1:9: `module` cannot be resolved (Symlink loop from "
               f"'{good.parent / 'loop.py'}')\n  hint: the path is a symlink loop or "
               "unreadable: name the .py file itself")


def test_symlink_loop_in_a_scanned_folder(run_json: RunJson, good: Path) -> None:
    folder = good.parent / "specs"
    folder.mkdir()
    (folder / "ok.yaml").write_text(GOOD.replace("ops.py", "../ops.py"), encoding="utf-8")
    os.symlink("two.yaml", folder / "one.yaml")
    os.symlink("one.yaml", folder / "two.yaml")
    os.symlink("..", folder / "up")  # a folder loop: not followed
    doc = run_json("specs")
    by_spec: dict[str, list[str]] = {}
    for r in doc["results"]:
        by_spec.setdefault(r["spec"], []).append(r["status"])
    assert by_spec == {"specs/ok.yaml": ["passed", "passed"], "specs/one.yaml": ["error"],
                       "specs/two.yaml": ["error"]}
    one = next(r for r in doc["results"] if r["spec"] == "specs/one.yaml")
    assert one["message"] == ("specs/one.yaml: cannot read spec: [Errno 40] Too many levels "
                              "of symbolic links: 'specs/one.yaml'")


def test_nul_in_module(run_json: RunJson, good: Path, write_spec: Callable[..., Path]) -> None:
    bad = _spec(write_spec, GOOD.replace("module: ops.py", 'module: "ops\\0.py"'))
    _one_error(run_json, bad, "bad.yaml:1:9: `module` contains a NUL character\n"
               "  hint: give the path to a .py file")


def test_more_than_64_dimensions(run_json: RunJson, good: Path,
                                 write_spec: Callable[..., Path]) -> None:
    bad = _spec(write_spec, GOOD.replace("[3]", "[" + ", ".join(["1"] * 65) + "]"))
    result = _one_error(run_json, bad,
                        "bad.yaml:5:16: `shape` has 65 dimensions; torch tensors have at most 64")
    assert result["function"] == "Mul"


@pytest.mark.parametrize("seed", [2**63, 2**64 + 1, -(2**63) - 1])
def test_seed_out_of_range(run_json: RunJson, good: Path, write_spec: Callable[..., Path],
                           seed: int) -> None:
    bad = _spec(write_spec, GOOD.replace("    inputs:", f"    seed: {seed}\n    inputs:"))
    _one_error(run_json, bad, f"bad.yaml:4:11: `seed` must be below 2**63 and at least -2**63 "
               f"(got {seed})")


@pytest.mark.parametrize(("dtype", "bounds", "message"), [
    ("uint8", "low: -1", "bad.yaml:7:41: `low` (-1) is out of range for uint8 ([0, 255])"),
    ("uint8", "high: 300", "bad.yaml:7:42: `high` (300) is out of range for uint8 (at most 256, "
     "as `high` is exclusive)"),
    ("int8", "low: -200", "bad.yaml:7:40: `low` (-200) is out of range for int8 ([-128, 127])"),
    ("int8", "high: 129", "bad.yaml:7:41: `high` (129) is out of range for int8 (at most 128, "
     "as `high` is exclusive)"),
])
def test_integer_bounds_out_of_range(run_json: RunJson, good: Path,
                                     write_spec: Callable[..., Path], dtype: str, bounds: str,
                                     message: str) -> None:
    extra = f"      - {{shape: [3], dtype: {dtype}, {bounds}}}"
    text = GOOD.replace("Mul:", "Mul:\n    seed: 1").replace(
        "      - shape: [3]", f"      - shape: [3]\n{extra}")
    bad = _spec(write_spec, text)
    _one_error(run_json, bad, message)


@pytest.mark.parametrize(("setting", "shown"), [
    ("atol: .nan", "`atol` must be a finite number (got nan)"),
    ("atol: .inf", "`atol` must be a finite number (got inf)"),
    ("rtol: .nan", "`rtol` must be a finite number (got nan)"),
    ("eps: .inf", "`eps` must be a finite number (got inf)"),
    ("eps: -.inf", "`eps` must be a finite number (got -inf)"),
])
def test_tolerances_must_be_finite(run_json: RunJson, good: Path,
                                   write_spec: Callable[..., Path], setting: str,
                                   shown: str) -> None:
    key = setting.split(":")[0]
    bad = _spec(write_spec, GOOD.replace("    inputs:", f"    {setting}\n    inputs:"))
    column = len(key) + 7
    _one_error(run_json, bad, f"bad.yaml:4:{column}: {shown}\n  hint: e.g. `atol: 1e-5`")


def test_bounds_must_be_finite(run_json: RunJson, good: Path,
                               write_spec: Callable[..., Path]) -> None:
    bad = _spec(write_spec, GOOD.replace("[3]", "[3]\n        high: .inf"))
    _one_error(run_json, bad, "bad.yaml:6:15: `high` must be a finite number (got inf)")


def test_a_big_spec_is_parsed_once(run_json: RunJson, good: Path,
                                   write_spec: Callable[..., Path],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from gradcheck_cli.specs import yamlsource

    lines = ["module: ops.py", "functions:", "  Mul:", "    inputs: [{shape: [2]}]",
             "    cases:"]
    lines += [f"      - {{name: c{i}, inputs: [{{shape: [2]}}]}}" for i in range(2000)]
    write_spec("\n".join(lines) + "\n", "big.yaml")
    parsed: list[int] = []
    real = yamlsource._compose

    def counting(loader: Any, path: str) -> Any:  # both parsers compose the document here
        parsed.append(1)
        return real(loader, path)

    monkeypatch.setattr(yamlsource, "_compose", counting)
    monkeypatch.setattr(yamlsource, "_PARSED", {})
    monkeypatch.setattr(yamlsource, "_parsed_chars", [0])
    doc = run_json("good.yaml", "big.yaml", "--case", "c7", "--check", "gradcheck")
    assert [(r["spec"], r["case"], r["status"]) for r in doc["results"]] == [
        ("big.yaml", "c7", "passed")]
    assert len(parsed) == 2  # good.yaml and big.yaml, once each


def test_repro_scripts_hold_names_as_data(tmp_path: Path) -> None:
    from gradcheck_cli.report import repro
    from gradcheck_cli.results import CheckResult, Status

    module = tmp_path / "ops.py"
    module.write_text("", encoding="utf-8")
    names = ["a b", "a/b", "a?b", '"""\nimport os; os.system("echo owned")\n#', "x" * 300]
    results = [CheckResult(module=str(module), spec=None, function="Op", case=name,
                           device="cpu", check="gradcheck", status=Status.FAILED, seed=0,
                           recipe={"inputs": [{"value": float("nan"), "name": name}]})
               for name in names]
    written = repro.save(results, tmp_path / "repro")
    assert len({p.name for p in written}) == len(names)
    for path in written:
        text = path.read_text(encoding="utf-8")
        compile(text, str(path), "exec")
        assert "owned\")\n" not in text
    # A folder that cannot be made (even by root, unlike a read-only one): below a file.
    (tmp_path / "ro").write_text("", encoding="utf-8")
    warned: list[str] = []
    assert repro.save(results[:1], tmp_path / "ro" / "x", warned.append) == []
    assert warned and warned[0].startswith("cannot write a repro script into ")


@pytest.mark.parametrize("value, message", [
    ("2001-02-30", "bad.yaml:6:14: YAML value `2001-02-30` cannot be read: day is out of "
                   "range for month\n  hint: quote it to make it a string, or correct it"),
    ('"\\U00110000"', "bad.yaml: YAML value cannot be read: chr() arg not in "
                      "range(0x110000)\n  hint: correct the escapes in quoted strings"),
])
def test_a_value_yaml_cannot_build_is_one_error(run_json: RunJson, good: Path,
                                                write_spec: Callable[..., Path], value: str,
                                                message: str) -> None:
    """A date past its month, an escape past Unicode: the spec's error, not a crash of
    ours (it was exit 3, "unexpected error: ValueError")."""
    bad = _spec(write_spec, GOOD + f"        low: {value}\n")
    _one_error(run_json, bad, message)
