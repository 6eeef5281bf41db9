"""GitHub Actions annotations: escaped per GitHub's rules, pointing at the right file and line."""

from __future__ import annotations

import pytest

from gradcheck_cli.report import github
from gradcheck_cli.report.location import Position, split_location
from gradcheck_cli.results import Advice, CheckResult, Status


def _result(status: Status = Status.FAILED, **changes: object) -> CheckResult:
    result = CheckResult(
        module="ops/broken.py", spec="specs/broken.yaml", function="MulAddSwapped",
        case="default", device="cpu", check="gradcheck", status=status,
        message="gradient of `p` is wrong", line=6, location="ops/broken.py:15",
    )
    for key, value in changes.items():
        setattr(result, key, value)
    return result


def _split(command: str) -> tuple[dict[str, str], str]:
    assert command.startswith("::error ")
    head, sep, message = command[len("::error "):].partition("::")
    assert sep
    props = dict(item.split("=", 1) for item in head.split(","))
    return props, message


def test_a_failure_points_at_the_function_class_line() -> None:
    (command,) = github.annotations([_result()])
    assert command == ("::error file=ops/broken.py,line=6,"
                       "title=gradcheck failed%3A MulAddSwapped [cpu]::gradient of `p` is wrong")


def test_an_error_points_at_its_location() -> None:
    (command,) = github.annotations([_result(Status.ERROR)])
    assert command.startswith("::error file=ops/broken.py,line=15,")


def test_only_failed_and_errored_results_are_annotated() -> None:
    results = [_result(Status.PASSED), _result(Status.SKIPPED), _result(Status.FAILED),
               _result(Status.ERROR, check="gradgradcheck", case="wide")]
    commands = github.annotations(results)
    assert len(commands) == 2
    props, _ = _split(commands[1])
    assert props["title"] == "gradgradcheck error%3A MulAddSwapped [cpu-wide]"


def test_message_escapes_newlines_percent_and_keeps_colons_and_commas() -> None:
    result = _result(message="first: a, b\r\nsecond 100%\rover", reproduce="gradcheck-cli x.yaml")
    _, message = _split(github.annotation(result))
    # A CRLF is a line break; a lone CR (it would overwrite the line in a log) is shown.
    assert message == ("first: a, b%0Asecond 100%25\\rover%0Areproduce: gradcheck-cli x.yaml")
    assert "\n" not in github.annotation(result) and "\r" not in github.annotation(result)


def test_properties_escape_colons_commas_and_newlines() -> None:
    result = _result(Status.ERROR, location="dir,with:odd\nname/op.py:7", function="Op,Two")
    command = github.annotation(result)
    props, _ = _split(command)  # splitting on "," still works: commas inside are escaped
    assert props["file"] == "dir%2Cwith%3Aodd\\nname/op.py"  # a name holds no line break
    assert props["line"] == "7"
    assert props["title"] == "gradcheck error%3A Op%2CTwo [cpu]"


def test_without_location_points_at_the_spec() -> None:
    result = _result(Status.ERROR, location=None, function=None, device="-", check="-",
                     message="cannot import ops/broken.py")
    props, message = _split(github.annotation(result))
    assert props == {"file": "specs/broken.yaml",
                     "title": "gradcheck-cli error%3A specs/broken.yaml"}
    assert message == "cannot import ops/broken.py"


def test_column_is_passed_on() -> None:
    result = _result(Status.ERROR, location="specs/broken.yaml:3:9")
    props, _ = _split(github.annotation(result))
    assert (props["file"], props["line"], props["col"]) == ("specs/broken.yaml", "3", "9")


@pytest.mark.parametrize(("text", "expected"), [
    ("ops/op.py:15", Position("ops/op.py", 15)),
    ("spec.yaml:3:7", Position("spec.yaml", 3, 7)),
    ("ops/op.py", Position("ops/op.py")),
    ("C:\\ops\\op.py:15", Position("C:\\ops\\op.py", 15)),
    ("C:\\ops\\op.py", Position("C:\\ops\\op.py")),
])
def test_split_location(text: str, expected: Position) -> None:
    assert split_location(text) == expected


def test_escape_functions() -> None:
    assert github.escape_data("50%\r\nnext: a,b") == "50%25%0D%0Anext: a,b"
    assert github.escape_property("a: b, c%") == "a%3A b%2C c%25"


def test_advice_is_a_line_of_the_message_before_reproduce() -> None:
    result = _result(reproduce="gradcheck-cli x.yaml",
                     advice=[Advice("longer_timeout"), Advice("one_job")])
    (command,) = github.annotations([result], advise=lambda a: f"fix {a.kind}")
    _, message = _split(command)
    assert message == ("gradient of `p` is wrong%0Awhat to do: fix longer_timeout; fix one_job"
                       "%0Areproduce: gradcheck-cli x.yaml")
    _, neutral = _split(github.annotation(result))
    assert "%0Awhat to do: set longer_timeout; set one_job%0A" in neutral
