"""Hostile names in what the tool writes (issue 12, items 9, 12 and 13): control characters
and markup shown literally, numbers never split, JUnit names and annotation titles unique,
long names in files, a --plot folder that cannot be made a warning."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from gradcheck_cli.report import ReportOptions, github, junit, table
from gradcheck_cli.results import CheckResult, InputError, Status, Summary

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


class Boom(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        raise ValueError("bad \\x1b[31mred\\x1b[0m \\u202eevil\\x07 [bold]x[/bold]")

    @staticmethod
    def backward(ctx, g):
        return g
'''

CASE = "a\rb\bc\x00d\x9b\u202eZ"  # CR, backspace, NUL, a C1 CSI, a right-to-left override
INPUT = "x\x1b[2Jy"  # "clear the screen"
LINK = "[link=http://e.vil]q[/link]"
SPEC_NAME = "sp\x1b[31mec.yaml"
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

RunCli = Callable[..., tuple[int, str, str]]


def _spec() -> dict[str, Any]:
    return {"module": "ops.py", "functions": {
        "Mul": {"inputs": [{"shape": [3], "name": INPUT}],
                "cases": [{"name": "[red]x[/]", "inputs": [{"shape": [3]}]},
                          {"name": CASE, "inputs": [{"shape": [3]}]}]},
        "Wrong": {"inputs": [{"shape": [3], "name": LINK}]},
        "Boom": {"inputs": [{"shape": [3]}]},
    }}


@pytest.fixture
def hostile(write_op: Callable[..., Path], tmp_path: Path) -> Path:
    write_op(OPS)
    # The spec's own file name carries an escape sequence too (a path from the user).
    (tmp_path / SPEC_NAME).write_text(yaml.safe_dump(_spec()), encoding="utf-8")
    return tmp_path


def _no_raw_controls(text: str) -> None:
    found = sorted({hex(ord(c)) for c in RAW.findall(text)})
    assert not found, found


def test_the_table_shows_control_characters_escaped_and_markup_literally(hostile, run_cli):
    code, out, err = run_cli(SPEC_NAME)
    assert code == 1
    _no_raw_controls(out + err)
    assert "Traceback" not in err
    rows = out.split("\n\n", 1)[0].splitlines()
    spec = "sp\\x1b[31mec.yaml"
    assert [r.split()[:4] for r in rows[2:] if "Mul" in r] == [
        [spec, "Mul", "default", "grad"], [spec, "Mul", "default", "gradgrad"],
        [spec, "Mul", "[red]x[/]", "grad"], [spec, "Mul", "[red]x[/]", "gradgrad"],
        [spec, "Mul", "a\\rb\\x08c\\x00d\\x9b\\u202eZ", "grad"],
        [spec, "Mul", "a\\rb\\x08c\\x00d\\x9b\\u202eZ", "gradgrad"]]
    assert any("passed  x\\x1b[2Jy=2e-10 " in r or "x\\x1b[2Jy=" in r for r in rows)
    assert any("failed" in r.split() and f"{LINK}=0.5(wrong)" in r for r in rows)
    lines = out.splitlines()
    assert "ERROR sp\\x1b[31mec.yaml::Boom[cpu-gradcheck] (seed 0)" in lines
    assert ("  ValueError in forward: bad \\x1b[31mred\\x1b[0m \\u202eevil\\x07 "
            "[bold]x[/bold]") in lines
    # Every element is off by exactly 0.5 (reference mode): the worst is the first.
    assert f"  {LINK}  0.5            0.14           3              {LINK}[0]" in lines


def test_markup_is_not_read_even_with_colours_on(hostile, run_cli, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    code, out, _ = run_cli(SPEC_NAME)
    assert code == 1
    assert "\x1b[" in out  # colours, and nothing else: no hyperlink (OSC 8), no clear
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    _no_raw_controls(plain)
    assert "\x1b]8;" not in out
    assert "[red]x[/]" in plain and f"{LINK}=0.5(wrong)" in plain


@pytest.mark.parametrize("fmt", ["github", "markdown", "junit"])
def test_ci_formats_escape_control_characters(hostile, run_cli, fmt):
    code, out, err = run_cli(SPEC_NAME, "--format", fmt)
    assert code == 1
    _no_raw_controls(out + err)
    assert "\\x1b[31mred" in out or "\\\\x1b\\[31mred" in out  # markdown escapes `\` and `[`


def test_github_message_and_title_are_escaped(hostile, run_cli):
    code, out, _ = run_cli(SPEC_NAME, "--format", "github")
    assert code == 1
    lines = [line for line in out.splitlines() if line.startswith("::error")]
    assert lines[0] == (
        "::error file=ops.py,line=27,title=gradcheck error%3A Boom [cpu]::ValueError in "
        "forward: bad \\x1b[31mred\\x1b[0m \\u202eevil\\x07 [bold]x[/bold]%0Areproduce: "
        "gradcheck-cli 'sp\\x1b[31mec.yaml' --function Boom --case default --device cpu "
        "--check gradcheck --seed 0")


def test_json_keeps_the_names_as_they_are(hostile, run_json):
    doc = run_json(SPEC_NAME)
    assert {r["case"] for r in doc["results"]} == {"default", "[red]x[/]", CASE}
    mul = next(r for r in doc["results"] if r["function"] == "Mul" and r["case"] == "default")
    assert mul["inputs"][0]["name"] == INPUT


# --- JUnit ids and annotation titles --------------------------------------------------

def _title(command: str) -> str:
    found = re.search(r"title=([^:]*)::", command)
    assert found is not None, command
    return found.group(1)


def test_ten_specs_of_one_function_are_ten_distinct_junit_test_cases(write_op, write_spec,
                                                                     run_cli, tmp_path):
    write_op(OPS)
    for i in range(10):
        write_spec({"module": "../ops.py", "functions": {"Wrong": {"inputs": [{"shape": [2]}]}}},
                   f"specs/s{i}.yaml")
    code, out, _ = run_cli("specs", "--junit-xml", "j.xml", "--format", "github")
    assert code == 1
    cases = ET.parse(tmp_path / "j.xml").getroot().iter("testcase")
    names = [(c.get("classname"), c.get("name")) for c in cases]
    assert len(names) == 20 and len(set(names)) == 20
    assert ("ops.Wrong", "gradcheck[cpu] (specs/s3.yaml)") in names
    titles = [_title(line) for line in out.splitlines() if line.startswith("::error")]
    assert len(titles) == 10 and len(set(titles)) == 10
    assert "gradcheck failed%3A Wrong [cpu] (specs/s3.yaml)" in titles


def test_a_unique_name_is_as_it_was():
    result = CheckResult(module="ops/op.py", spec="s.yaml", function="F", case="wide",
                         device="cpu", check="gradcheck", status=Status.PASSED)
    assert junit.testcase_names([result]) == [("ops.op.F", "gradcheck[cpu-wide]")]


def test_names_stay_unique_when_cut():
    # Two 300-character cases alike but for their last character, in two specs each.
    results = [CheckResult(module="ops.py", spec=spec, function="F", case="c" * 299 + end,
                           device="cpu", check="gradcheck", status=Status.FAILED)
               for spec in ("a.yaml", "b.yaml") for end in "xy"]
    names = junit.testcase_names(results)
    assert len(set(names)) == 4
    assert all(len(name) <= 200 and "…#" in name for _, name in names)
    titles = [_title(a) for a in github.annotations(results)]
    assert len(set(titles)) == 4 and all(len(t) <= 220 for t in titles)


# --- a 300-character case name in files ----------------------------------------------

def test_a_300_character_case_with_junit_plot_and_repro(write_op, write_spec, run_cli,
                                                        tmp_path):
    pytest.importorskip("matplotlib")
    write_op(OPS)
    long = "c" * 300
    cases = [{"name": long, "inputs": [{"shape": [2]}]},
             {"name": long[:-1] + "d", "inputs": [{"shape": [2]}]}]
    write_spec({"module": "ops.py", "functions": {
        "Wrong": {"inputs": [{"shape": [2]}], "cases": cases}}})
    code, out, err = run_cli("spec.yaml", "--check", "gradcheck", "--junit-xml", "j.xml",
                             "--plot", "plots", "--save-repro", "repro")
    assert code == 1 and "Traceback" not in err and "warning" not in err
    plots = sorted((tmp_path / "plots").iterdir())
    scripts = sorted((tmp_path / "repro").iterdir())
    assert len(plots) == 3 and len(scripts) == 3  # default and the two long cases
    for path in plots + scripts:
        assert len(path.name.encode()) < 255 and path.stat().st_size > 0
        assert f"wrote {path.relative_to(tmp_path)}" in err
    names = [c.get("name") for c in ET.parse(tmp_path / "j.xml").getroot().iter("testcase")]
    assert len(set(names)) == 3
    assert "Wrong[" + long + "]" not in out.split("\n\n", 1)[0]  # the table cut it...
    assert f"FAILED spec.yaml::Wrong[{long}-cpu-gradcheck] (seed 0)" in out  # ...not the id


def test_plot_into_a_folder_that_cannot_be_made_is_one_warning(write_op, write_spec, run_cli,
                                                               tmp_path):
    pytest.importorskip("matplotlib")
    write_op(OPS)
    write_spec({"module": "ops.py", "functions": {
        "Wrong": {"inputs": [{"shape": [2]}], "cases": [{"name": "two", "inputs": [
            {"shape": [3]}]}]},
        "Mul": {"inputs": [{"shape": [2]}]}}})
    expected_code, expected_out, _ = run_cli("spec.yaml", "--format", "json")
    # Root writes into a read-only folder: a folder below a regular file stops anyone.
    (tmp_path / "afile").write_text("", encoding="utf-8")
    code, out, err = run_cli("spec.yaml", "--format", "json", "--plot", "afile/plots")
    assert code == expected_code == 1
    assert "Traceback" not in err
    assert err.splitlines() == [
        "gradcheck-cli: warning: cannot write a plot into afile/plots: Not a directory "
        "(2 not written; the results are not affected)"]
    strip = [{k: v for k, v in r.items() if k not in ("duration", "jacobians")}
             for r in json.loads(out)["results"]]
    assert strip == [{k: v for k, v in r.items() if k not in ("duration", "jacobians")}
                     for r in json.loads(expected_out)["results"]]


# --- what the table shows -------------------------------------------------------------

def _render(results: list[CheckResult], width: int) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, highlight=False, color_system=None)
    table.write(console, results, ReportOptions(Summary.of(results), out))
    return out.getvalue()


def test_a_probe_doubt_on_a_passed_input_shows_its_error_not_non_finite():
    note = ("probe mode: a random-direction check differs by 2.27 (noise threshold 1.1) but "
            "the 2 elements it points to are within atol/rtol")
    result = CheckResult(module="ops.py", spec="s.yaml", function="F", case="default",
                         device="cpu", check="gradcheck", status=Status.PASSED, mode="probe",
                         inputs=[InputError(0, "x", 2.27, 0.1, True, 4, 0, note=note)])
    again = CheckResult.from_dict(json.loads(json.dumps(result.to_dict())))
    for shown in (result, again):
        out = _render([shown], 120)
        assert "x=2.3 " in out.splitlines()[2] + " "
        assert "non-finite" not in out
        assert f"note: s.yaml::F[cpu-gradcheck]: x: {note}" in " ".join(out.split("\n"))
    # A failed input whose JSON says null (NaN or Inf), with its note, is non-finite.
    bad = InputError(0, "x", None, None, False, 4, 4, note="numerical gradient not finite")
    failed = CheckResult(module="ops.py", spec="s.yaml", function="F", case="default",
                         device="cpu", check="gradcheck", status=Status.ERROR, inputs=[bad])
    assert "x=non-finite(wrong)" in _render([failed], 120)


def _errors_column(out: str) -> str:
    """The max-error cells of a rendered table, one line of text per line of the table."""
    lines = out.split("\n\n", 1)[0].splitlines()
    start = lines[0].index("Max error")
    return "\n".join(line[start:] for line in lines[2:] if not line.startswith(("1 ", "2 ")))


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_names_with_spaces_and_brackets_never_split_a_number(width):
    names = ["a b", " grad_output_of_something", "w`q", "p[0", "{k", "lead", "x"]
    values = [6.9e-12, 2.27, 1.5e-300, 0.0, 123456.0, 3.3e-11, 0.5]
    inputs = [InputError(i, n, v, v, i % 2 == 0, 4, 0 if i % 2 == 0 else 1)
              for i, (n, v) in enumerate(zip(names, values))]
    results = [CheckResult(module="ops.py", spec="s.yaml", function=f, case="default",
                           device="cpu", check="gradcheck", status=Status.FAILED,
                           inputs=inputs) for f in ("MultiplyAddSwappedAgain", "Other")]
    rows = _errors_column(_render(results, width))
    for entry in inputs:
        value = f"{entry.max_abs_error:.2g}" if entry.max_abs_error else "0"
        mark = "" if entry.passed else "(wrong)"
        assert re.search(rf"(^|  ){re.escape(entry.name)}=\n?{re.escape(value + mark)}(  |$)",
                         rows, re.M), (entry.name, value, rows)


@pytest.mark.parametrize("width", [40, 60, 80, 120])
@pytest.mark.parametrize("first", [" lead", " 9a-b{8b`_}z[y"])
def test_an_entry_is_never_cropped(width, first):
    """The case that printed `lead=6.9e-12(wron…`: a name starting with a space made its
    entry one column wider than the table had measured."""
    inputs = [InputError(0, first, 6.9e-12, 1.0, False, 4, 1),
              InputError(1, "y{", 2.0, 1.0, True, 4, 0)]
    result = CheckResult(module="o.py", spec="s.yaml", function="MultiplyAddSwapped",
                         case="default", device="cpu", check="gradgradcheck",
                         status=Status.SKIPPED, inputs=inputs, cached=True, mode="probe")
    rows = _errors_column(_render([result], width))
    assert re.search(rf"^{re.escape(first)}=\n?6\.9e-12\(wrong\)(  |$)", rows, re.M), rows
    assert re.search(r"(^|  )y\{=\n?2$", rows, re.M), rows


def test_paths_in_the_command_lines_own_messages_are_escaped(tmp_path: Path) -> None:
    """Usage errors, notes and `wrote` lines print the user's paths: escaped too."""
    import subprocess
    import sys

    name = "bad\x1b[31mname.py"
    proc = subprocess.run([sys.executable, "-m", "gradcheck_cli", name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4
    assert "\x1b" not in proc.stderr
    assert "no such file or folder: bad\\x1b[31mname.py" in proc.stderr
