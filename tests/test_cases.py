"""The data-driven cases of tests/cases/, each run through the real command line.

A case is a pair of files: `<name>.py`, an ordinary user module (one op or a few, correct or
with a planted bug), and `<name>.yaml`, what running it must give. Adding a case is adding a
pair; no test changes. The .yaml holds:

  spec:       the spec's body (`module: <name>.py` is added); absent: the CLI gets the .py
  args:       extra command-line arguments (a list of strings)
  exit_code:  the exit code of the run
  results:    every result of the run, none left out, each a mapping of
    function, check, status    (required), case (default `default`),
    device     (default `cpu`; `-` for a result that belongs to no device),
    inputs     the names of the checked inputs, in order (optional),
    wrong      the names of the inputs whose gradient is wrong, in order (default: none),
    diagnosis  {input name: diagnosis kind} of every diagnosed input (default: none),
    message / message_starts / message_has (a list)   the message, exactly or in part,
    at         text on the line the result's location names: the first line holding it
               after `class <function>` in the .py

The run is `gradcheck-cli [spec.yaml | <name>.py] --format json --device cpu --jobs 0
--no-cache` in a temp folder holding copies of the files (see conftest's `run_json`).
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import line_of

CASES = Path(__file__).resolve().parent / "cases"
CASE_KEYS = {"spec", "args", "exit_code", "results"}
RESULT_KEYS = {"function", "case", "check", "status", "device", "inputs", "wrong", "diagnosis",
               "message", "message_starts", "message_has", "at"}
STATUSES = {"passed", "failed", "error", "skipped"}


def _names() -> list[str]:
    return sorted(path.stem for path in CASES.glob("*.yaml"))


def _load(name: str) -> dict[str, Any]:
    case = yaml.safe_load((CASES / f"{name}.yaml").read_text(encoding="utf-8"))
    assert isinstance(case, dict), f"{name}.yaml: not a mapping"
    assert set(case) <= CASE_KEYS, f"{name}.yaml: unknown keys {set(case) - CASE_KEYS}"
    assert {"exit_code", "results"} <= set(case), f"{name}.yaml: needs exit_code and results"
    for entry in case["results"]:
        assert set(entry) <= RESULT_KEYS, f"{name}.yaml: unknown keys {set(entry) - RESULT_KEYS}"
        assert {"function", "check", "status"} <= set(entry), f"{name}.yaml: {entry}"
        assert entry["status"] in STATUSES, f"{name}.yaml: {entry}"
    return case


def _key(result: dict[str, Any]) -> tuple[str, str, str]:
    return (result["function"], result.get("case", "default"), result["check"])


def test_every_case_is_a_pair() -> None:
    ops = {path.stem for path in CASES.glob("*.py")}
    assert ops == set(_names()), "each tests/cases/<name>.py needs its <name>.yaml and back"
    assert len(ops) >= 12


def _check_result(name: str, expected: dict[str, Any], got: dict[str, Any]) -> None:
    where = f"{name}: {_key(expected)}"
    assert got["status"] == expected["status"], (where, got["message"])
    assert got["device"] == expected.get("device", "cpu"), where
    inputs = got["inputs"]
    if "inputs" in expected:
        assert [i["name"] for i in inputs] == expected["inputs"], where
    assert [i["name"] for i in inputs if not i["passed"]] == expected.get("wrong", []), where
    diagnosed = {i["name"]: i["diagnosis"]["kind"] for i in inputs if i["diagnosis"]}
    assert diagnosed == expected.get("diagnosis", {}), where
    message = got["message"]
    if "message" in expected:
        assert message == expected["message"], where
    assert message.startswith(expected.get("message_starts", "")), (where, message)
    for part in expected.get("message_has", []):
        assert part in message, (where, part, message)
    if "at" in expected:
        line = line_of(CASES / f"{name}.py", expected["at"],
                       after=f"class {expected['function']}(")
        assert got["location"] == f"{name}.py:{line}", where


@pytest.mark.parametrize("name", _names())
def test_case(name: str, tmp_path: Path, run_json: Any) -> None:
    case = _load(name)
    shutil.copy(CASES / f"{name}.py", tmp_path / f"{name}.py")
    target = f"{name}.py"
    if "spec" in case:
        spec = {"module": f"{name}.py", **case["spec"]}
        (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False),
                                            encoding="utf-8")
        target = "spec.yaml"
    doc = run_json(target, *case.get("args", []), cwd=tmp_path)

    got = {}
    for result in doc["results"]:
        assert _key(result) not in got, f"two results for {_key(result)}"
        got[_key(result)] = result
    expected = {_key(entry): entry for entry in case["results"]}
    assert len(expected) == len(case["results"]), f"{name}.yaml repeats a result"
    assert set(got) == set(expected), {k: v["status"] for k, v in got.items()}
    for key, entry in expected.items():
        _check_result(name, entry, got[key])
    assert doc["_exit_code"] == case["exit_code"]
    counts = Counter(r["status"] for r in doc["results"])
    assert {s: doc["summary"][s] for s in STATUSES} == {s: counts[s] for s in STATUSES}
