"""The table report, byte for byte, against tests/golden/*.txt.

The CLI runs in-process from tests/data (paths in the report are relative to the working
directory) with COLUMNS=120 and NO_COLOR=1; durations are replaced by a placeholder.
The ops use only + and *, so the numbers do not depend on the CPU's vector unit.

To accept new output: `python -m pytest tests/test_table_golden.py --update-goldens`
(or UPDATE_GOLDENS=1), then review the diff of tests/golden/.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest

from gradcheck_cli.cli import main
from gradcheck_cli.report import ReportOptions, table
from gradcheck_cli.results import Advice, CheckResult, Status, Summary

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
GOLDEN = HERE / "golden"
DURATION = re.compile(r"\d+\.\d\ds")
PLACEHOLDER = "#.##s"

CASES = {
    "passing": (["golden/passing.yaml"], 0),
    "failing": (["golden/failing.yaml", "golden/bad_spec.yaml"], 1),
    "filtered": (["golden/failing.yaml", "-k", "HalfSquare", "--check", "gradcheck",
                  "--seed", "3"], 1),
    "inferred": (["golden/ops/arith.py", "-k", "Square", "-k", "SquareAndTriple",
                  "--shape", "2,2"], 0),
}


def normalize(text: str) -> str:
    return DURATION.sub(PLACEHOLDER, text)


@pytest.mark.parametrize("name", sorted(CASES))
def test_table_matches_golden(name, monkeypatch, capsys, update_goldens):
    args, exit_code = CASES[name]
    monkeypatch.chdir(DATA)
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("NO_COLOR", "1")
    for variable in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "LINES"):
        monkeypatch.delenv(variable, raising=False)
    capsys.readouterr()
    # In this process (--jobs 0), and never from or into the cache of passed results.
    code = main([*args, "--device", "cpu", "--format", "table", "--jobs", "0", "--no-cache"])
    out, err = capsys.readouterr()
    assert code == exit_code, out + err
    assert "\x1b[" not in out  # no colour codes
    actual = normalize(out)
    path = GOLDEN / f"{name}.txt"
    if update_goldens:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run pytest with --update-goldens"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, (
        f"the table differs from {path.relative_to(HERE.parent)}; if the change is intended, "
        "rerun with --update-goldens and review the diff"
    )


def test_no_golden_has_trailing_spaces():
    for path in sorted(GOLDEN.glob("*.txt")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert line == line.rstrip(), f"{path.name}:{number}: trailing spaces"


def test_normalize_only_touches_durations():
    line = "ops.py   Square   default   cpu   gradcheck   passed   x=5.8e-11   12.34s"
    assert normalize(line) == line.replace("12.34s", PLACEHOLDER)
    assert normalize("2 passed, 1 failed in 0.57s") == "2 passed, 1 failed in #.##s"
    assert normalize("max abs error 1.58 at w[0, 0]") == "max abs error 1.58 at w[0, 0]"


def _render_table(result: CheckResult, **options: Any) -> list[str]:
    out = io.StringIO()
    table.render([result], ReportOptions(Summary.of([result]), out, **options))
    return out.getvalue().splitlines()


def test_advice_is_one_line_under_a_failure_and_nothing_else_changes(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    result = CheckResult(
        module="ops/op.py", spec="op.yaml", function="Kinked", case="default", device="cpu",
        check="gradcheck", status=Status.FAILED, message="gradient of `x` is wrong", seed=0,
        location="ops/op.py:9", reproduce="gradcheck-cli op.yaml --function Kinked --seed 0")
    plain = _render_table(result)
    result.advice = [Advice("dodge_kinks"), Advice("more_memory", needed=1 << 20)]
    words = {"dodge_kinks": "rerun with --dodge-kinks", "more_memory": "raise --max-memory"}
    advised = _render_table(result, advise=lambda a: words[a.kind])
    line = "  what to do: rerun with --dodge-kinks; raise --max-memory"
    at = plain.index("  reproduce: gradcheck-cli op.yaml --function Kinked --seed 0")
    assert advised == [*plain[:at], line, *plain[at:]]
    # Without the command line's words, the advice is named by its kind.
    assert "  what to do: set dodge_kinks; set more_memory (about 1048576 bytes)" \
        in _render_table(result)
    result.status = Status.PASSED
    # A passed result has no details section: its advice is a note under the table.
    lines = [t for t in _render_table(result) if "what to do" in t]
    assert lines == ["note: op.yaml::Kinked[cpu-gradcheck]: what to do: set dodge_kinks; "
                     "set more_memory (about 1048576 bytes)"]


def test_advice_on_a_passed_result_shows_as_a_note() -> None:
    """A probe verdict worth confirming exactly passes, with advice the table must not lose."""
    import io

    from gradcheck_cli.cli.advice import advise
    from gradcheck_cli.report import ReportOptions, render
    from gradcheck_cli.results import Advice, CheckResult, Status, Summary

    result = CheckResult(module="ops.py", spec=None, function="Big", case="default",
                         device="cpu", check="gradcheck", status=Status.PASSED,
                         advice=[Advice("exact_mode")])
    out = io.StringIO()
    render("table", [result], ReportOptions(Summary.of([result]), out, advise=advise))
    assert "note: ops.py::Big[cpu-gradcheck]: what to do: rerun with --mode exact to be sure" \
        in out.getvalue()
