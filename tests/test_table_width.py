"""The table report at 60, 80 and 120 columns and between: nothing split, nothing past the edge.

Goldens (tests/golden/width_*.txt) hold the real CLI's output on the specs of
tests/data/golden at each width, as test_table_golden does at 120; the properties are
asserted on them and, for more widths, on the same results parsed from the CLI's JSON and
rendered again. Properties: no line longer than the width but the failure headings and the
`reproduce:` lines (copied and pasted, never wrapped), no trailing spaces, every function
name and `name=value` entry whole on one line of the table, every message and diagnosis
whole once the output's line breaks are read as spaces.

To accept new output: `python -m pytest tests/test_table_width.py --update-goldens`, then
review the diff of tests/golden/.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from gradcheck_cli.cli import main
from gradcheck_cli.report import ReportOptions, entry_error, layout, narrow, table
from gradcheck_cli.results import CheckResult, Diagnosis, InputError, Status, Summary

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
GOLDEN = HERE / "golden"
DURATION = re.compile(r"\d+\.\d\ds")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
SPECS = ["golden/failing.yaml", "golden/passing.yaml", "golden/bad_spec.yaml"]
WIDTHS = (60, 80, 120)


def _plain_env(monkeypatch: pytest.MonkeyPatch, columns: int | None) -> None:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setenv("NO_COLOR", "1")
    for variable in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "LINES"):
        monkeypatch.delenv(variable, raising=False)


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cwd: Path,
         *args: str) -> tuple[int, str]:
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    code = main([*args, "--device", "cpu", "--jobs", "0", "--no-cache"])
    return code, capsys.readouterr().out


def _is_copied(line: str) -> bool:
    """A failure's heading or its reproduce command: never wrapped, whatever the width."""
    return line.startswith(("FAILED ", "ERROR ", "  reproduce: "))


def _table_lines(out: str) -> list[str]:
    return out.split("\n\n", 1)[0].splitlines()


def _entries(result: CheckResult) -> list[str]:
    return [f"{e.name}={entry_error(e)}" + ("" if e.passed else "(wrong)")
            for e in result.inputs]


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def assert_fits(out: str, width: int, results: list[CheckResult]) -> None:
    lines = out.splitlines()
    for line in lines:
        assert line == line.rstrip(), f"trailing spaces: {line!r}"
        if not _is_copied(line):
            assert len(line) <= width, f"{len(line)} > {width} columns: {line!r}"
    rows = _table_lines(out)
    flat = _squeeze(out)
    for result in results:
        if result.capabilities is not None:
            continue
        if result.function:
            assert any(re.search(rf"(?<![\w.]){result.function}\b", row) for row in rows), (
                result.function, rows)
        for entry in _entries(result):
            assert any(entry in row for row in rows), (entry, rows)
        if result.status.is_problem:
            for line in result.message.splitlines():
                assert _squeeze(line) in flat, line
            for e in result.inputs:
                if e.diagnosis is not None:
                    assert _squeeze(e.diagnosis.detail) in flat, e.diagnosis.detail
        elif result.status is Status.SKIPPED and not result.inputs:
            # Cells wrap at spaces: the reason reads whole once rows are read as columns.
            words = result.message.split()
            assert all(any(w in row for row in rows) for w in words), (words, rows)


@pytest.fixture(scope="module")
def golden_results() -> list[CheckResult]:
    """The results of the golden specs, as the CLI's JSON gives them (run once)."""
    cwd = os.getcwd()
    out = io.StringIO()
    try:
        os.chdir(DATA)
        with contextlib.redirect_stdout(out):
            main([*SPECS, "--format", "json", "--device", "cpu", "--jobs", "0", "--no-cache"])
    finally:
        os.chdir(cwd)
    return [CheckResult.from_dict(r) for r in json.loads(out.getvalue())["results"]]


def _render(results: list[CheckResult], width: int) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, highlight=False, color_system=None)
    table.write(console, results, ReportOptions(Summary.of(results), out))
    return out.getvalue()


@pytest.mark.parametrize("width", WIDTHS)
def test_table_at_width_matches_golden(width, monkeypatch, capsys, update_goldens,
                                       golden_results):
    _plain_env(monkeypatch, width)
    code, out = _run(monkeypatch, capsys, DATA, *SPECS, "--format", "table")
    assert code == 1, out
    assert "\x1b[" not in out
    assert_fits(out, width, golden_results)
    actual = DURATION.sub("#.##s", out)
    path = GOLDEN / f"width_{width}.txt"
    if update_goldens:
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run pytest with --update-goldens"
    assert actual == path.read_text(encoding="utf-8"), (
        f"the table differs from {path.relative_to(ROOT)}; if the change is intended, "
        "rerun with --update-goldens and review the diff")


@pytest.mark.parametrize("width", range(60, 121, 4))
def test_every_width_from_60_to_120_fits(width, golden_results):
    assert_fits(_render(golden_results, width), width, golden_results)


def test_columns_give_way_in_the_documented_order(golden_results):
    """Wider first: everything; then the steps of `narrow`'s docstring, one by one."""
    rows = [table._row(r) for r in golden_results if r.capabilities is None]
    kept = {w: narrow.plan_for(rows, w).names for w in (140, 100, 80, 70, 60)}
    assert kept[140] == list(narrow.NAMES)
    # Every row is on the cpu; `default` and `negative` say something: the case stays.
    assert kept[100] == [n for n in narrow.NAMES if n != narrow.DEVICE]
    # The case joins the function's name, the spec names shorten; the time stays.
    assert kept[80] == [narrow.SPEC, narrow.FUNCTION, narrow.CHECK, narrow.STATUS,
                        narrow.ERRORS, narrow.TIME]
    assert kept[60] == [narrow.FUNCTION, narrow.CHECK, narrow.STATUS, narrow.ERRORS]
    rows_at_60 = _table_lines(_render(golden_results, 60))
    assert any("ScaleBy[negative]" in row for row in rows_at_60)
    assert not any("ScaleBy[default]" in row or "gradgradcheck" in row for row in rows_at_60)
    assert any(" gradgrad " in row for row in rows_at_60)


def test_at_40_columns_the_identifying_columns_stay_shortened(golden_results):
    """Function (with its case) and Check stay, shortened in the middle; entries break
    after their `=` before a name is cut; no number is split."""
    rows = [table._row(r) for r in golden_results if r.capabilities is None]
    plan = narrow.plan_for(rows, 40)
    assert plan.names == [narrow.FUNCTION, narrow.CHECK, narrow.STATUS, narrow.ERRORS]
    assert plan.split_entries and plan.function_floor == narrow.FUNCTION_FLOOR
    lines = _table_lines(_render(golden_results, 40))
    functions = [line.split()[0] for line in lines[2:] if line[:1] not in (" ", "")]
    assert functions[:3] == ["MulA…ped", "MulA…ped", "Half…are"]
    assert "S…y[n…e]" in functions and "Square" in functions  # short names stay whole
    assert all(len(f) <= narrow.FUNCTION_FLOOR for f in functions)
    flat = "\n".join(lines)
    for result in golden_results:
        for entry in result.inputs:
            value = entry_error(entry) + ("" if entry.passed else "(wrong)")
            assert re.search(rf"{re.escape(entry.name)}=(\n +)?{re.escape(value)}(\s|$)",
                             flat), (entry.name, value)


def test_rows_that_only_the_spec_tells_apart_keep_the_spec():
    """Ten specs of one Function: without Spec the rows would look alike."""
    results = [_result(spec=f"specs/variant_{i}.yaml", function="MultiplyAddSwapped",
                       status=Status.PASSED,
                       inputs=[InputError(0, "grad_output", 6.9e-12, 1e-11, True, 4, 0)])
               for i in range(10)]
    for width in (40, 60, 80):
        rows = [row for row in _table_lines(_render(results, width)) if ".yaml" in row]
        assert _table_lines(_render(results, width))[0].startswith("Spec ")
        assert len({row.split()[0] for row in rows}) == 10, rows
        assert all("6.9e-12" in row for row in rows) or sum(
            "6.9e-12" in row for row in _table_lines(_render(results, width))) == 10
    distinct = [_result(function=f"F{i}", status=Status.PASSED) for i in range(3)]
    assert narrow.plan_for([table._row(r) for r in distinct], 20).names[0] == narrow.FUNCTION


def test_the_readme_demo_at_80_columns_keeps_names_and_time(tmp_path, monkeypatch, capsys):
    """The issue's case: `MultiplyAddSwapped` was folded into three lines, `…=5.`/`e-11`
    split, and the Time column gone."""
    (tmp_path / "specs" / "ops").mkdir(parents=True)
    shutil.copy(ROOT / "specs" / "broken.yaml", tmp_path / "specs")
    shutil.copy(ROOT / "specs" / "ops" / "broken.py", tmp_path / "specs" / "ops")
    _plain_env(monkeypatch, 80)
    code, out = _run(monkeypatch, capsys, tmp_path, "specs/broken.yaml")
    assert code == 1
    rows = _table_lines(out)
    assert rows[0].split() == ["Spec", "Function", "Check", "Status", "Max", "error", "per",
                               "input", "Time"]
    assert sum("MultiplyAddSwapped" in row for row in rows) == 2
    assert all(re.search(r"\d\.\d\ds$", row) for row in rows[2:] if "MultiplyAdd" in row)
    assert max(len(line) for line in out.splitlines() if not _is_copied(line)) <= 80


def test_failure_details_put_the_diagnosis_first(golden_results):
    out = _render(golden_results, 120).splitlines()
    head = out.index("FAILED golden/failing.yaml::MulAddSwapped[cpu-gradcheck] (seed 0)")
    assert out[head + 1].startswith("  w: swapped: the gradient returned for `w` is the "
                                    "gradient of `x`")
    numbers = next(i for i, line in enumerate(out) if "gradient of `w` is wrong at" in line)
    table_head = next(i for i, line in enumerate(out) if line.startswith("  input  max abs"))
    diagnosis_x = next(i for i, line in enumerate(out) if line.startswith("  x: swapped:"))
    assert head < diagnosis_x < out.index("  at golden/ops/arith.py:64") < numbers < table_head
    # Without a diagnosis, the details are as they were: where, then the message.
    short = out.index("ERROR golden/failing.yaml::ShortBackward[cpu-gradcheck] (seed 0)")
    assert out[short + 1] == "  at golden/ops/arith.py:91"


def _result(**fields: object) -> CheckResult:
    base: dict[str, object] = dict(
        module="ops/op.py", spec="specs/op.yaml", function="F", case="default", device="cpu",
        check="gradcheck", status=Status.FAILED, seed=0)
    base.update(fields)
    return CheckResult(**base)


def test_long_paths_are_shortened_from_the_left_and_tokens_never_split():
    location = "/home/someone/projects/a/very/long/path/to/the/ops/broken_operations.py:17"
    message = ("gradient of `w` is wrong at 12 of 144 Jacobian entries, max abs error 1.23 "
               "at w[10, 200] -> output 0[10, 200] (analytical 0.9401, numerical -0.2895)")
    result = _result(
        spec="a/very/long/path/to/specs/with_a_rather_long_file_name.yaml",
        function="MultiplyAddSwapped", location=location, message=message,
        inputs=[InputError(0, "weight_matrix", 1.23, 2.0, False, 144, 12,
                           diagnosis=Diagnosis("swapped", "the gradient returned for "
                                               "`weight_matrix` is the gradient of `x`")),
                InputError(1, "grad_output0", 5.2e-11, 5.2e-11, True, 144, 0)],
        reproduce="gradcheck-cli a/very/long/path/to/specs/with_a_rather_long_file_name.yaml "
                  "--function MultiplyAddSwapped --seed 0")
    for width in (60, 72, 80):
        out = _render([result], width)
        assert_fits(out, width, [result])
        at = [line for line in out.splitlines() if line.startswith("  at ")]
        assert len(at) == 1 and at[0].endswith("/ops/broken_operations.py:17"), at
        assert ("  at …/" in at[0]) == (width < len("  at ") + len(location)), at
        assert "w[10, 200]" in out and "0[10, 200]" in out
    assert "with_a_rather_long_file_name.yaml" in _render([result], 160)


def test_path_and_wrap_helpers():
    assert layout.shorten_path("specs/ops/broken.yaml", 30) == "specs/ops/broken.yaml"
    assert layout.shorten_path("specs/ops/broken.yaml", 18) == "…/ops/broken.yaml"
    assert layout.shorten_path("specs/ops/broken.yaml", 14) == "…/broken.yaml"
    assert layout.shorten_path("specs/ops/broken.yaml", 10) == "…oken.yaml"
    assert layout.wrap("  a bb `c d e` [1, 2] {k: v}", 9) == ["  a bb", "`c d e`", "[1, 2]",
                                                              "{k: v}"]
    assert layout.wrap("word", 2) == ["word"]  # a token wider than the line stays whole
    assert layout.wrap("", 10) == [""]
    assert narrow.short_check("gradgradcheck") == "gradgrad"
    assert narrow.short_check("float32") == "float32"


def test_capabilities_fit_or_become_one_cell_of_entries():
    names = ["first_order", "second_order", "forward_ad", "vmap", "undefined_grad",
             "non_contiguous", "cuda", "cpu_cuda_agreement"]
    caps = {n: {"status": "ok" if i % 3 else "n/a", "reason": ""} for i, n in enumerate(names)}
    caps["vmap"] = {"status": "fail", "reason": "vmap over the batch raised RuntimeError"}
    result = _result(check="capabilities", status=Status.FAILED, capabilities=caps,
                     function="SquareAndTriple", message="vmap: fails")
    wide = _render([result], 120)
    assert "undefined" in wide and "agreement" in wide
    for width in (60, 80):
        out = _render([result], width)
        assert_fits(out, width, [result])
        for n in names:
            assert f"{n}={caps[n]['status']}" in out


def test_force_color_keeps_the_real_width(monkeypatch):
    """FORCE_COLOR on a pipe is a terminal to rich, of 80 columns: colours, not a width."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)
    assert layout.console_for(io.StringIO()).width == 120
    monkeypatch.setenv("COLUMNS", "100")
    out = io.StringIO()
    console = layout.console_for(out)
    assert console.width == 100 and console.color_system is not None
    result = _result(message="gradient of `x` is wrong " * 12,
                     inputs=[InputError(0, "x", 1.5, 0.5, False, 25, 5)])
    table.write(console, [result], ReportOptions(Summary.of([result]), out))
    assert "\x1b[" in out.getvalue()
    plain = ANSI.sub("", out.getvalue())
    assert_fits(plain, 100, [result])
    assert max(len(line) for line in plain.splitlines() if not _is_copied(line)) > 80


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_a_terminal_gives_its_own_width(monkeypatch):
    import fcntl
    import struct
    import termios

    monkeypatch.delenv("COLUMNS", raising=False)
    leader, follower = os.openpty()
    try:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 72, 0, 0))
        with os.fdopen(follower, "w", closefd=False) as terminal:
            assert layout.output_width(terminal) == 72
            monkeypatch.setenv("COLUMNS", "90")
            assert layout.output_width(terminal) == 90
    finally:
        os.close(leader)
        os.close(follower)


def _rich_table(grid: layout.Grid) -> layout.Trimmed:
    """The grid's columns and cells in the rich Table the results table used to be."""
    from rich import box
    from rich.table import Table

    drawn = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False,
                  padding=(0, 1) if grid.gap == 3 else (0, 1, 0, 0))
    for header, size, right in zip(grid.headers, grid.widths, grid.right):
        drawn.add_column(header, width=size, justify="right" if right else "left")
    for row in grid.rows:
        drawn.add_row(*(cell.copy() for cell in row))
    return layout.Trimmed(drawn, layout.span(grid.widths, grid.gap))


@pytest.mark.parametrize("seed", range(40))
def test_the_grid_draws_what_richs_table_drew(seed: int) -> None:
    """Fitted columns of random words (styled, some cells wrapped over several lines, a
    header wrapping in a narrow column, a right-justified column), drawn by `Grid` and by
    rich's Table: the same characters on every line."""
    import random

    from rich.cells import cell_len
    from rich.text import Text

    rng = random.Random(seed)
    words = ["passed", "(reference)", "x=2e-10", "w=1.2(wrong)", "ScaleBy", "a", "cpu",
             "gradgradcheck", "(cached)", "error", "ünïcødé", "名前", "-"]
    count = rng.randint(1, 6)
    gap = rng.choice([2, 3])
    headers = [rng.choice(["Spec", "Max error", "Function", "Time", "Case"])
               for _ in range(count)]
    # As `fit` makes them: never narrower than a header's longest word.
    widths = [rng.randint(max(map(len, h.split())), 14) for h in headers]
    right = [rng.random() < 0.2 for _ in widths]
    grid = layout.Grid(headers, widths, gap, right)
    for _ in range(rng.randint(0, 6)):
        cells = []
        for width in widths:
            pieces = [w for w in rng.sample(words, rng.randint(0, 3)) if cell_len(w) <= width]
            lines, line = [], ""
            for piece in pieces:  # wrapped to the column between pieces, as `Pieces` does
                if line and cell_len(line) + 1 + cell_len(piece) > width:
                    lines.append(line)
                    line = piece
                else:
                    line = f"{line} {piece}" if line else piece
            lines.append(line)
            cells.append(Text("\n".join(lines), style=rng.choice(["", "red", "bold green"])))
        grid.add_row(*cells)

    def drawn(renderable: object) -> str:
        out = io.StringIO()
        Console(file=out, width=60, no_color=True, highlight=False).print(renderable,
                                                                            crop=False)
        return out.getvalue()

    assert drawn(grid) == drawn(_rich_table(grid))


def test_the_grids_headers_are_bold_in_colour() -> None:
    """As rich's Table drew them (a Text's own style alone is not rendered)."""
    from rich.text import Text

    grid = layout.Grid(["Spec", "Time"], [6, 5], 3, [False, True])
    grid.add_row(Text("a.yaml"), Text("0.01s"))
    out = io.StringIO()
    Console(file=out, width=60, force_terminal=True, color_system="standard").print(grid)
    head = out.getvalue().splitlines()[0]
    assert head.startswith("\x1b[1mSpec") and "Time" in head
    assert "\x1b[1m" not in out.getvalue().splitlines()[2]
