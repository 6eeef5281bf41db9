"""The markdown report: a golden file of real results, escaping, and what a pull request needs.

The golden run is tests/data/golden (the ops use only + and *, so the numbers do not depend
on the CPU's vector unit), run from tests/data so that paths are relative to it; the
summary's duration is replaced by a placeholder. To accept new output:
`python -m pytest tests/test_markdown.py --update-goldens`, then review the diff.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest

from gradcheck_cli.report import REPORTERS, ReportOptions, markdown, render
from gradcheck_cli.results import Advice, CheckResult, Diagnosis, InputError, Status, Summary

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
GOLDEN = HERE / "golden" / "markdown.md"
SPECS = ("golden/passing.yaml", "golden/failing.yaml", "golden/bad_spec.yaml")


DURATION = re.compile(r" in \d+\.\d\ds")


def normalize(text: str) -> str:
    """The summary's duration as `#.##s`, as the table goldens write it."""
    return DURATION.sub(" in #.##s", text)


def _write(results: list[CheckResult], summary: Summary | None = None, **options: Any) -> str:
    out = io.StringIO()
    render("markdown", results, ReportOptions(summary or Summary.of(results), out, **options))
    return out.getvalue()


def _summary(doc: dict[str, Any]) -> Summary:
    counts = doc["summary"]
    return Summary(counts["passed"], counts["failed"], counts["error"], counts["skipped"],
                   counts["duration"])


def _check_golden(actual: str, update: bool) -> None:
    if update:
        GOLDEN.write_text(actual, encoding="utf-8")
        return
    assert GOLDEN.exists(), f"{GOLDEN} is missing: run pytest with --update-goldens"
    assert actual == GOLDEN.read_text(encoding="utf-8"), (
        "the markdown report differs from tests/golden/markdown.md; if the change is "
        "intended, rerun with --update-goldens and review the diff")


def test_markdown_of_real_results_matches_golden(run_json, update_goldens) -> None:
    doc = run_json(*SPECS, cwd=DATA)
    assert doc["_exit_code"] == 1
    results = [CheckResult.from_dict(r) for r in doc["results"]]
    _check_golden(normalize(_write(results, _summary(doc))), update_goldens)


def test_format_markdown_on_the_command_line(run_cli) -> None:
    code, out, err = run_cli(*SPECS, "--format", "markdown", cwd=DATA)
    assert code == 1, err
    assert normalize(out) == GOLDEN.read_text(encoding="utf-8")


def _failed(**changes: Any) -> CheckResult:
    result = CheckResult(
        module="ops/broken.py", spec="specs/broken.yaml", function="MulAddSwapped",
        case="default", device="cpu", check="gradcheck", status=Status.FAILED,
        message="gradient of `p` is wrong\nsecond line", seed=0, line=6,
        location="ops/broken.py:15",
        reproduce="gradcheck-cli specs/broken.yaml --function MulAddSwapped --seed 0",
        inputs=[InputError(index=0, name="p", max_abs_error=1.58, max_rel_error=1.9,
                           passed=False, numel=6, wrong_elements=6,
                           diagnosis=Diagnosis("swapped", "`p` holds the gradient of `q`")),
                InputError(index=1, name="q", max_abs_error=0.0, max_rel_error=0.0,
                           passed=True, numel=6)],
    )
    for key, value in changes.items():
        setattr(result, key, value)
    return result


def _row(text: str, function: str) -> str:
    (row,) = [line for line in text.splitlines() if line.startswith("| ") and function in line]
    return row


def test_cells_escape_pipes_and_backticks() -> None:
    result = _failed(function="Op|Two`x`", spec="specs/a|b.yaml", case="c*se")
    row = _row(_write([result]), "Op")
    assert row == ("| specs/a\\|b.yaml | Op\\|Two\\`x\\` | c\\*se | cpu | gradcheck | ❌ failed "
                   "| **p=1.6 (wrong)**, q=0 |")
    # Unescaped, the row still has exactly the table's seven cells.
    assert row.replace("\\|", "").count("|") == len(markdown.COLUMNS) + 1


def test_a_skipped_result_shows_its_reason_in_the_errors_cell() -> None:
    result = _failed(status=Status.SKIPPED, inputs=[], message="needs <CUDA> | a GPU\nmore")
    assert _row(_write([result]), "MulAddSwapped").endswith(
        "| ⏭️ skipped | needs \\<CUDA> \\| a GPU |")


def test_failure_section_has_message_diagnosis_and_reproduce_block() -> None:
    lines = _write([_failed()]).splitlines()
    start = lines.index("#### ❌ FAILED `specs/broken.yaml::MulAddSwapped[cpu-gradcheck]` "
                        "(seed 0)")
    assert lines[start + 1:] == [
        "",
        "at `ops/broken.py:15`",
        "",
        "> gradient of `p` is wrong",
        "> second line",
        "",
        "- `p`: swapped: `p` holds the gradient of `q`",
        "",
        "reproduce:",
        "",
        "```sh",
        "gradcheck-cli specs/broken.yaml --function MulAddSwapped --seed 0",
        "```",
    ]


def test_passed_and_skipped_results_get_no_section() -> None:
    text = _write([_failed(status=Status.PASSED), _failed(status=Status.SKIPPED)])
    assert "####" not in text and "reproduce" not in text


def test_advice_is_one_line_under_the_failure() -> None:
    result = _failed(advice=[Advice("dodge_kinks"), Advice("more_memory", needed=2048),
                             Advice("dodge_kinks")])
    words = {"dodge_kinks": "rerun with --dodge-kinks", "more_memory": "raise --max-memory"}
    lines = _write([result], advise=lambda a: words[a.kind]).splitlines()
    assert "what to do: rerun with --dodge-kinks; raise --max-memory" in lines
    assert lines.index("what to do: rerun with --dodge-kinks; raise --max-memory") \
        < lines.index("reproduce:")
    neutral = _write([result])
    assert "what to do: set dodge_kinks; set more_memory (about 2048 bytes)" in neutral


def test_no_trailing_spaces_and_one_final_newline() -> None:
    results = [_failed(), _failed(status=Status.ERROR, function=None, check="-", device="-",
                                  inputs=[], message="bad spec  \n\n  hint: fix it  ")]
    text = _write(results)
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert all(line == line.rstrip() for line in text.splitlines())
    assert "> hint: fix it" in text.splitlines()


def test_long_messages_are_cut() -> None:
    message = "\n".join(f"line {i}" for i in range(20))
    text = _write([_failed(message=message)])
    quoted = [line for line in text.splitlines() if line.startswith("> ")]
    assert quoted == [f"> line {i}" for i in range(markdown.MESSAGE_LINES)] + ["> …"]


def test_no_results_is_the_heading_alone() -> None:
    assert _write([], Summary()) == "### gradcheck-cli: no checks ran in 0.00s\n"


@pytest.mark.parametrize(("text", "expected"), [
    ("plain", "`plain`"),
    ("a`b", "``a`b``"),
    ("`x`", "`` `x` ``"),
    ("two\nlines", "`two lines`"),
])
def test_code_span(text: str, expected: str) -> None:
    assert markdown.code(text) == expected


def test_code_block_fence_outgrows_backticks_inside() -> None:
    assert markdown.code_block("echo ````") == ["`````sh", "echo ````", "`````"]
    assert markdown.code_block("echo") == ["```sh", "echo", "```"]


@pytest.mark.parametrize(("text", "expected"), [
    ("key `shpae` is unknown", "key `shpae` is unknown"),
    ("a lone ` backtick", "a lone \\` backtick"),
    ("# not a heading", "\\# not a heading"),
    ("- not a list", "\\- not a list"),
    ("1. not a list", "1\\. not a list"),
    ("grad_output and _private_ *bold*", "grad_output and \\_private\\_ \\*bold\\*"),
    ("x[0] <tag> &amp; a & b", "x\\[0\\] \\<tag> \\&amp; a & b"),
])
def test_prose(text: str, expected: str) -> None:
    assert markdown.prose(text) == expected


def test_markdown_is_registered() -> None:
    assert REPORTERS["markdown"].load() is markdown.render
