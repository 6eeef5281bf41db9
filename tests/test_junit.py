"""The JUnit XML report: well-formed, counts equal to the summary, names CI tools group by."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from gradcheck_cli.report import junit
from gradcheck_cli.results import (
    Advice,
    CheckResult,
    Diagnosis,
    InputError,
    Status,
    Summary,
    Worst,
)


def _results() -> list[CheckResult]:
    passed = CheckResult(
        module="ops/good.py", spec="specs/good.yaml", function="ScaledExp", case="default",
        device="cpu", check="gradcheck", status=Status.PASSED, duration=0.25, line=6,
        location="ops/good.py:6",
    )
    failed = CheckResult(
        module="ops/broken.py", spec="specs/broken.yaml", function="MulAddSwapped",
        case="wide", device="cpu", check="gradcheck", status=Status.FAILED,
        message="gradient of `p` is wrong at 6 of 36 Jacobian entries\nsecond line",
        seed=0, duration=0.01, line=6, location="ops/broken.py:15",
        reproduce="gradcheck-cli specs/broken.yaml --function MulAddSwapped --seed 0",
        inputs=[
            InputError(index=0, name="p", max_abs_error=1.58, max_rel_error=1.9, passed=False,
                       numel=6, wrong_elements=6,
                       worst=Worst(output=0, output_index=[0, 0], input_index=[1, 2],
                                   analytical=0.9401, numerical=-0.6428),
                       diagnosis=Diagnosis(kind="swapped gradients",
                                           detail="p's gradient matches q's")),
            InputError(index=1, name="q", max_abs_error=8.2e-11, max_rel_error=8.2e-11,
                       passed=True, numel=6, wrong_elements=0),
        ],
    )
    error = CheckResult(
        module=None, spec="specs/bad.yaml", function=None, case="default", device="-",
        check="-", status=Status.ERROR, message="specs/bad.yaml:3:1: unknown key `fn`",
        location="specs/bad.yaml:3:1", line=3,
    )
    skipped = CheckResult(
        module="ops/good.py", spec="specs/good.yaml", function="ScaledExp", case="default",
        device="cuda", check="gradgradcheck", status=Status.SKIPPED,
        message="CUDA not available", line=6, location="ops/good.py:6",
    )
    return [passed, failed, error, skipped]


def _parse(results: list[CheckResult], summary: Summary) -> ET.Element:
    return ET.fromstring(junit.document(results, summary).encode("utf-8"))


def _cases(root: ET.Element) -> list[ET.Element]:
    return root.findall("./testsuite/testcase")


def test_counts_match_the_summary() -> None:
    results = _results()
    summary = Summary.of(results, duration=1.5)
    root = _parse(results, summary)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    for element in (root, suites[0]):
        assert element.get("tests") == str(summary.total) == "4"
        assert element.get("failures") == str(summary.failed) == "1"
        assert element.get("errors") == str(summary.error) == "1"
        assert element.get("skipped") == str(summary.skipped) == "1"
        assert float(element.get("time", "")) == pytest.approx(1.5)
    assert suites[0].get("name") == "gradcheck-cli"
    cases = _cases(root)
    assert len(cases) == summary.total
    assert len(root.findall(".//failure")) == summary.failed
    assert len(root.findall(".//error")) == summary.error
    assert len(root.findall(".//skipped")) == summary.skipped


def test_classname_name_file_line_and_time() -> None:
    cases = _cases(_parse(_results(), Summary.of(_results())))
    passed, failed, error, skipped = cases
    assert passed.get("classname") == "ops.good.ScaledExp"
    assert passed.get("name") == "gradcheck[cpu]"
    assert passed.get("file") == "ops/good.py"
    assert passed.get("line") == "6"
    assert float(passed.get("time", "")) == pytest.approx(0.25)
    assert list(passed) == []
    assert failed.get("classname") == "ops.broken.MulAddSwapped"
    assert failed.get("name") == "gradcheck[cpu-wide]"
    assert failed.get("line") == "15"  # the backward's line, where the fix goes
    assert error.get("classname") == "specs.bad"
    assert error.get("file") == "specs/bad.yaml"
    assert error.get("line") == "3"
    assert skipped.get("name") == "gradgradcheck[cuda]"


def test_failure_text_holds_per_input_errors_diagnosis_and_reproduce() -> None:
    root = _parse(_results(), Summary.of(_results()))
    failure = root.find(".//failure")
    assert failure is not None
    assert failure.get("message") == "gradient of `p` is wrong at 6 of 36 Jacobian entries"
    text = failure.text or ""
    assert "second line" in text
    lines = text.splitlines()
    p_row = next(line for line in lines if line.startswith("p "))
    assert p_row.split()[:5] == ["p", "1.6", "1.9", "6", "WRONG"]
    assert "p[1, 2] -> output 0[0, 0]" in p_row
    assert "analytical 0.9401" in p_row and "numerical -0.6428" in p_row
    q_row = next(line for line in lines if line.startswith("q "))
    assert q_row.split() == ["q", "8.2e-11", "8.2e-11", "0", "ok"]
    assert "p: swapped gradients: p's gradient matches q's" in text
    assert "reproduce: gradcheck-cli specs/broken.yaml --function MulAddSwapped --seed 0" in text


def test_error_and_skipped_elements_carry_their_messages() -> None:
    root = _parse(_results(), Summary.of(_results()))
    error = root.find(".//error")
    skipped = root.find(".//skipped")
    assert error is not None and skipped is not None
    assert error.get("message") == "specs/bad.yaml:3:1: unknown key `fn`"
    assert "unknown key `fn`" in (error.text or "")
    assert skipped.get("message") == "CUDA not available"


def test_problem_before_checking_is_named_collect() -> None:
    result = _results()[2]
    assert junit.testcase_name(result) == "collect"
    result.function = "Broken"
    result.module = "pkg/ops.py"
    result.case = "big"
    assert junit.classname(result) == "pkg.ops.Broken"
    assert junit.testcase_name(result) == "collect[big]"


def test_markup_and_illegal_characters_are_safe() -> None:
    """What XML cannot hold (NUL, ESC, a lone surrogate) is shown escaped, not dropped: a
    reader sees that the message held them."""
    result = _results()[1]
    result.message = 'bad <tag> & "quote"\x00\x1b[31m\ud800 end'
    result.function = "Op<T>"
    summary = Summary.of([result])
    text = junit.document([result], summary)
    root = ET.fromstring(text.encode("utf-8"))
    failure = root.find(".//failure")
    assert failure is not None
    assert failure.get("message") == 'bad <tag> & "quote"\\x00\\x1b[31m\\ud800 end'
    assert _cases(root)[0].get("classname") == "ops.broken.Op<T>"


def test_complex_worst_values_are_written_as_complex_numbers() -> None:
    result = _results()[1]
    worst = result.inputs[0].worst
    assert worst is not None
    worst.analytical = [1.5, -2.0]
    worst.numerical = [0.25, 0.0]
    text = junit.details(result)
    assert "(analytical 1.5-2j, numerical 0.25+0j)" in text


def test_no_results_is_a_valid_empty_suite() -> None:
    root = _parse([], Summary())
    assert root.find("testsuite") is not None
    assert root.get("tests") == "0"
    assert _cases(root) == []


@pytest.mark.parametrize(("path", "expected"), [
    ("ops/broken.py", "ops.broken"),
    ("./ops/broken.py", "ops.broken"),
    ("../lib/ops.py", "lib.ops"),
    ("specs\\nested\\op.yaml", "specs.nested.op"),
    ("op.py", "op"),
])
def test_dotted(path: str, expected: str) -> None:
    assert junit.dotted(path) == expected


def test_advice_is_one_line_before_reproduce() -> None:
    result = _results()[1]
    result.advice = [Advice("dodge_kinks"), Advice("more_memory", needed=4096)]
    lines = junit.details(result, advise=lambda a: f"use {a.kind}").splitlines()
    assert lines[-3:] == ["what to do: use dodge_kinks; use more_memory", "",
                          "reproduce: gradcheck-cli specs/broken.yaml --function MulAddSwapped "
                          "--seed 0"]
    # Without a front end's words, the advice is named by its kind.
    assert "what to do: set dodge_kinks; set more_memory (about 4096 bytes)" \
        in junit.details(result)
    root = ET.fromstring(junit.document([result], Summary.of([result]),
                                        advise=lambda a: f"use {a.kind}").encode("utf-8"))
    failure = root.find(".//failure")
    assert failure is not None
    assert "what to do: use dodge_kinks; use more_memory" in (failure.text or "")


def test_no_advice_line_without_advice_or_for_a_skip() -> None:
    failed, skipped = _results()[1], _results()[3]
    assert "what to do" not in junit.details(failed)
    skipped.advice = [Advice("probe_mode")]
    assert "what to do" not in junit.details(skipped)
