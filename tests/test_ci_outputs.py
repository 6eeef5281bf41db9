"""What CI and pre-commit see: .py arguments, JUnit XML, GitHub annotations, project config."""

from __future__ import annotations

import json
import os
import re
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from gradcheck_cli.report import format_error


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _not_under_pre_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRE_COMMIT", raising=False)


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

# --- .py files as pre-commit passes them -------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose specs live in `gradspecs/` (set in pyproject.toml), ops in `ops/`."""
    _write(tmp_path / "pyproject.toml", """
        [project]
        name = "demo"

        [tool.gradcheck-cli]
        specs = "gradspecs"
    """)
    _write(tmp_path / "ops" / "square.py", SQUARE)
    _write(tmp_path / "ops" / "other.py", SQUARE)
    _write(tmp_path / "ops" / "lonely.py", SQUARE)
    _write(tmp_path / "gradspecs" / "square.yaml", """
        module: ../ops/square.py
        functions:
          Square:
            inputs: [{shape: [2]}]
            cases:
              - {name: wide, inputs: [{shape: [5]}]}
    """)
    _write(tmp_path / "gradspecs" / "nested" / "square_again.yaml", """
        module: ../../ops/square.py
        defaults: {checks: [gradcheck]}
        functions:
          Square:
            inputs: [{shape: [4]}]
    """)
    _write(tmp_path / "gradspecs" / "other.yaml", """
        module: ../ops/other.py
        functions:
          Square:
            inputs: [{shape: [3]}]
    """)
    # A spec outside the configured folder is not consulted for .py arguments.
    _write(tmp_path / "specs" / "lonely.yaml", """
        module: ../ops/lonely.py
        functions:
          Square:
            inputs: [{shape: [7]}]
    """)
    _write(tmp_path / "notes.yaml", "title: not a spec\nitems: [1, 2]\n")
    _write(tmp_path / "script.py", "print('nothing to see')\n")
    _write(tmp_path / "uses_function.py", """
        from torch.autograd import Function

        def helper(x):
            return Function
    """)
    return tmp_path


def _rows(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(r["spec"], r["function"], r["case"], r["check"], r["status"],
             [i["numel"] for i in r["inputs"]]) for r in doc["results"]]


def test_a_py_file_stands_for_the_specs_that_reference_it(project: Path,
                                                          run_json: Any) -> None:
    doc = run_json("ops/square.py", cwd=project)
    assert doc["_exit_code"] == 0
    assert _rows(doc) == [
        ("gradspecs/square.yaml", "Square", "default", "gradcheck", "passed", [2]),
        ("gradspecs/square.yaml", "Square", "default", "gradgradcheck", "passed", [2, 2]),
        ("gradspecs/square.yaml", "Square", "wide", "gradcheck", "passed", [5]),
        ("gradspecs/square.yaml", "Square", "wide", "gradgradcheck", "passed", [5, 5]),
        ("gradspecs/nested/square_again.yaml", "Square", "default", "gradcheck", "passed", [4]),
    ]
    # The op file and one of its specs, both changed: each spec is checked once.
    both = run_json("ops/square.py", "gradspecs/square.yaml", cwd=project)
    assert _rows(both) == _rows(doc)


def test_a_py_file_without_a_spec_gets_inferred_inputs(project: Path, run_json: Any) -> None:
    doc = run_json("ops/lonely.py", cwd=project)
    assert doc["_exit_code"] == 0
    assert _rows(doc) == [(None, "Square", "default", "gradcheck", "passed", [12]),
                          (None, "Square", "default", "gradgradcheck", "passed", [12, 12])]


def test_the_specs_folder_is_found_from_a_subfolder(project: Path, run_json: Any) -> None:
    doc = run_json("../ops/square.py", cwd=_mkdir(project / "sub"))
    assert [r["spec"] for r in doc["results"]] == (
        [str(project / "gradspecs" / "square.yaml")] * 4
        + [str(project / "gradspecs" / "nested" / "square_again.yaml")])


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


NOTHING = ("script.py", "notes.yaml", "uses_function.py")


@pytest.mark.parametrize("paths", [NOTHING[:1], NOTHING[1:2], NOTHING[2:], NOTHING])
def test_nothing_to_check_exits_5_but_0_in_the_hook(project: Path, run_cli: Any,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    paths: tuple[str, ...]) -> None:
    code, out, err = run_cli(*paths, cwd=project)
    assert code == 5, err
    assert out.splitlines()[-1].startswith("no checks ran in ")
    if "script.py" in paths:
        assert "script.py: no autograd Function in it, nothing to check" in err
    if "notes.yaml" in paths:
        assert "notes.yaml: not a gradcheck spec" in err
    code, _, _ = run_cli(*paths, "--allow-empty", cwd=project)
    assert code == 0
    monkeypatch.setenv("PRE_COMMIT", "1")
    code, out, err = run_cli(*paths, cwd=project)
    assert code == 0, err


def test_hook_selection_mixing_checkable_and_other_files(project: Path, run_json: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRE_COMMIT", "1")
    doc = run_json(*NOTHING, "ops/other.py", "notes.yaml", cwd=project)
    assert doc["_exit_code"] == 0
    assert [(r["spec"], r["status"]) for r in doc["results"]] == [
        ("gradspecs/other.yaml", "passed")] * 2


# --- JUnit XML -----------------------------------------------------------------------------

KERNELS = '''
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


class Half(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return g * y * 0.5, g * x * 0.5


class Raises(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        raise ValueError("50% of the time\\nit works every time")
'''

KERNELS_SPEC = '''
module: ops/kernels.py
defaults:
  devices: [cpu]
functions:
  Square:
    devices: [cpu, cuda]
    inputs: [{shape: [3]}]
    cases:
      - {name: wide, inputs: [{shape: [6]}]}
  Half:
    inputs: [{shape: [3], name: left}, {shape: [3], name: right}]
    cases:
      - {name: "odd,case", inputs: [{shape: [2], name: left}, {shape: [2], name: right}]}
  Raises:
    checks: [gradcheck]
    inputs: [{shape: [2]}]
  Missing:
    inputs: [{shape: [2]}]
'''


@pytest.fixture
def kernels(tmp_path: Path) -> Path:
    _write(tmp_path / "ops" / "kernels.py", KERNELS)
    _write(tmp_path / "spec.yaml", KERNELS_SPEC)
    return tmp_path


def _class_line(path: Path, name: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.startswith(f"class {name}("):
            return number
    raise AssertionError(f"no class {name} in {path}")


def _line_of(path: Path, text: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


def _case_name(result: dict[str, Any]) -> str:
    params = [result["device"]] if result["device"] != "-" else []
    if result["case"] != "default":
        params.append(result["case"])
    base = result["check"] if result["check"] != "-" else "collect"
    return base + (f"[{'-'.join(params)}]" if params else "")


_TAG = {"failed": "failure", "error": "error", "skipped": "skipped", "passed": None}


def _check_junit(root: ET.Element, doc: dict[str, Any]) -> None:
    summary = doc["summary"]
    total = summary["passed"] + summary["failed"] + summary["error"] + summary["skipped"]
    assert total == len(doc["results"])
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    assert len(suites) == 1
    for element in (root, suites[0]):
        assert int(element.get("tests")) == total
        assert int(element.get("failures")) == summary["failed"]
        assert int(element.get("errors")) == summary["error"]
        assert int(element.get("skipped")) == summary["skipped"]
    cases = suites[0].findall("testcase")
    assert len(cases) == total
    for case, result in zip(cases, doc["results"]):
        module = result["module"].removesuffix(".py").replace("/", ".")
        expected_class = f"{module}.{result['function']}"
        assert case.get("classname") == expected_class
        assert case.get("name") == _case_name(result)
        children = [child.tag for child in case]
        tag = _TAG[result["status"]]
        assert children == ([tag] if tag else []), (case.get("name"), children)
        if tag:
            outcome = case.find(tag)
            first = result["message"].strip().splitlines()[0]
            assert outcome.get("message") == first
            assert first in outcome.text


def test_junit_file_is_written_beside_the_json_report(kernels: Path, run_json: Any) -> None:
    doc = run_json("spec.yaml", "--junit-xml", "reports/ci/junit.xml", cwd=kernels,
                   cpu_only=False)
    assert doc["_exit_code"] == 1
    root = ET.parse(kernels / "reports" / "ci" / "junit.xml").getroot()
    _check_junit(root, doc)
    names = [(c.get("classname"), c.get("name")) for c in root.iter("testcase")]
    assert ("ops.kernels.Square", "gradcheck[cpu]") in names
    assert ("ops.kernels.Square", "gradgradcheck[cpu-wide]") in names
    assert ("ops.kernels.Half", "gradcheck[cpu-odd,case]") in names
    assert ("ops.kernels.Missing", "collect") in names
    import torch

    if not torch.cuda.is_available():
        skipped = [c for c in root.iter("testcase") if c.find("skipped") is not None]
        assert {c.get("name") for c in skipped} == {
            "gradcheck[cuda]", "gradgradcheck[cuda]", "gradcheck[cuda-wide]",
            "gradgradcheck[cuda-wide]"}
        assert all("CUDA not available" in c.find("skipped").get("message") for c in skipped)
    # A failure names every input and its errors.
    half = only_case(root, "ops.kernels.Half", "gradcheck[cpu]")
    failure = half.find("failure")
    assert failure is not None
    result = next(r for r in doc["results"] if r["function"] == "Half"
                  and r["check"] == "gradcheck" and r["case"] == "default")
    for entry in result["inputs"]:
        assert entry["name"] in ("left", "right")
        row = next(line for line in failure.text.splitlines()
                   if line.startswith(entry["name"] + " "))
        assert format_error(entry["max_abs_error"]) in row
        assert "WRONG" in row
    assert "gradient of `left` is wrong" in failure.text
    assert "gradient of `right` is wrong" in failure.text
    assert "reproduce: gradcheck-cli spec.yaml --function Half" in failure.text
    raises = only_case(root, "ops.kernels.Raises", "gradcheck[cpu]").find("error")
    assert raises is not None and "50% of the time" in raises.text
    missing = only_case(root, "ops.kernels.Missing", "collect").find("error")
    assert missing is not None and "`Missing` is not defined" in missing.get("message")


def only_case(root: ET.Element, classname: str, name: str) -> ET.Element:
    found = [c for c in root.iter("testcase")
             if c.get("classname") == classname and c.get("name") == name]
    assert len(found) == 1, (classname, name)
    return found[0]


def test_format_junit_prints_the_xml(kernels: Path, run_cli: Any, run_json: Any) -> None:
    code, out, _ = run_cli("spec.yaml", "--format", "junit", cwd=kernels, cpu_only=False)
    assert code == 1
    assert out.startswith('<?xml version="1.0" encoding="utf-8"?>')
    root = ET.fromstring(out.encode())
    doc = run_json("spec.yaml", cwd=kernels, cpu_only=False)
    _check_junit(root, doc)


def test_junit_for_a_passing_run_and_an_empty_one(tmp_path: Path, run_cli: Any) -> None:
    _write(tmp_path / "ops" / "kernels.py", SQUARE)
    _write(tmp_path / "spec.yaml", "module: ops/kernels.py\nfunctions:\n"
           "  Square:\n    inputs: [{shape: [2]}]\n")
    code, out, _ = run_cli("spec.yaml", "--format", "junit", cwd=tmp_path)
    assert code == 0
    root = ET.fromstring(out.encode())
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "0", "0")
    assert all(len(case) == 0 for case in root.iter("testcase"))
    _write(tmp_path / "empty" / "README.md", "nothing\n")
    code, out, _ = run_cli("empty", "--format", "junit", "--junit-xml", "e.xml",
                           "--allow-empty", cwd=tmp_path)
    assert code == 0
    for text in (out, (tmp_path / "e.xml").read_text()):
        root = ET.fromstring(text.encode())
        assert root.get("tests") == "0"
        assert list(root.iter("testcase")) == []


# --- GitHub annotations ------------------------------------------------------------------

_ANNOTATION = re.compile(r"^::error (?P<props>[^:]*)::(?P<message>.*)$")


def _unescape(text: str) -> str:
    return (text.replace("%0A", "\n").replace("%0D", "\r").replace("%3A", ":")
            .replace("%2C", ",").replace("%25", "%"))


def _annotations(out: str) -> list[tuple[dict[str, str], str, str]]:
    found = []
    for line in out.splitlines():
        if line.startswith("::"):
            match = _ANNOTATION.match(line)
            assert match, line
            props = dict(item.split("=", 1) for item in match["props"].split(","))
            found.append((props, match["message"], line))
    return found


def test_github_annotations_point_at_the_function_class_line(kernels: Path, run_cli: Any,
                                                             run_json: Any) -> None:
    code, out, _ = run_cli("spec.yaml", "--format", "github", cwd=kernels)
    assert code == 1
    doc = run_json("spec.yaml", cwd=kernels)
    bad = [r for r in doc["results"] if r["status"] in ("failed", "error")]
    annotations = _annotations(out)
    assert len(annotations) == len(bad)
    # The table is printed as well.
    summary = doc["summary"]
    assert f"{summary['passed']} passed, {summary['failed']} failed" in out.splitlines()[-1] \
        or any(line.startswith(f"{summary['passed']} passed") for line in out.splitlines())
    op = kernels / "ops" / "kernels.py"
    for (props, message, raw), result in zip(annotations, bad):
        assert "\n" not in raw and "\r" not in raw
        title = _unescape(props["title"])
        if result["status"] == "failed":
            # A wrong gradient: on the Function's `class` line, in the op file.
            assert props["file"] == "ops/kernels.py"
            assert int(props["line"]) == _class_line(op, result["function"])
            assert title.startswith(f"{result['check']} failed: {result['function']} [cpu")
        elif result["function"] == "Raises":
            # An exception: the line that raised.
            assert props["file"] == "ops/kernels.py"
            assert int(props["line"]) == _line_of(op, "raise ValueError(")
        elif result["function"] == "Missing":
            assert props["file"] == "spec.yaml"
            assert int(props["line"]) == _line_of(kernels / "spec.yaml", "  Missing:")
        decoded = _unescape(message)
        assert decoded.startswith(result["message"].strip())
        if result["reproduce"]:
            assert decoded.endswith(f"\nreproduce: {result['reproduce']}")
    failures = [a for a, r in zip(annotations, bad) if r["status"] == "failed"]
    assert {int(p["line"]) for p, _, _ in failures} == {_class_line(op, "Half")}
    odd = [p for p, _, _ in failures if "odd" in p["title"]]
    assert [p["title"] for p in odd] == ["gradcheck failed%3A Half [cpu-odd%2Ccase]"]
    # A multi-line message (two wrong inputs, then the reproduce line) stays on one line.
    half = next(m for p, m, _ in failures if "odd" not in p["title"])
    assert half.count("%0A") >= 2
    assert "gradient of `left` is wrong" in half.split("%0A")[0]
    raises = next(m for (p, m, _), r in zip(annotations, bad) if r["function"] == "Raises")
    assert raises.startswith("ValueError in backward: 50%25 of the time")


def test_github_annotations_for_a_spec_and_module_that_do_not_load(tmp_path: Path,
                                                                   run_cli: Any) -> None:
    _write(tmp_path / "ops" / "bad.py", "import torch\n\n\nx = (\n")
    _write(tmp_path / "bad.yaml", "module: ops/bad.py\nfunctions:\n  F:\n    inputs: [1]\n")
    _write(tmp_path / "broken.yaml", "module: ops/bad.py\nfunctions: [\n")
    code, out, _ = run_cli("bad.yaml", "broken.yaml", "--format", "github", cwd=tmp_path)
    assert code == 1
    annotations = _annotations(out)
    assert [(p["file"], p.get("line")) for p, _, _ in annotations] == [
        ("ops/bad.py", "4"), ("broken.yaml", "2")]
    assert annotations[0][0]["title"].startswith("gradcheck-cli error%3A ")


# --- project config ------------------------------------------------------------------------

CONFIG_OPS = '''
import os
from pathlib import Path

import torch


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        Path(os.environ["GRADCHECK_TEST_PIDS"]).open("a").write(f"{os.getpid()}\\n")
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class Half(Square):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return x * g
'''


def _configured(tmp_path: Path, table: str) -> Path:
    _write(tmp_path / "pyproject.toml", "[project]\nname = 'demo'\n\n[tool.gradcheck-cli]\n"
           + textwrap.dedent(table))
    _write(tmp_path / "ops" / "ops.py", CONFIG_OPS)
    _write(tmp_path / "gradspecs" / "ops.yaml", """
        module: ../ops/ops.py
        functions:
          Square:
            inputs: [{shape: [3]}]
          Half:
            inputs: [{shape: [3]}]
    """)
    return _mkdir(tmp_path / "deep" / "er")


def _pids(path: Path) -> set[int]:
    return {int(line) for line in path.read_text().split()} if path.exists() else set()


def test_config_applies_from_a_subfolder_and_flags_win(tmp_path: Path, run_cli: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = _configured(tmp_path, """
        specs = "gradspecs"
        format = "json"
        checks = ["gradcheck"]
        devices = ["cuda"]
        atol = 10.0
        seed = 5
        jobs = 0
        cache_dir = ".cachex"
    """)
    pids = tmp_path / "pids"
    monkeypatch.setenv("GRADCHECK_TEST_PIDS", str(pids))
    import torch

    cuda = torch.cuda.is_available()
    # No PATH: the configured specs folder; its format, checks, devices, seed, tolerances.
    code, out, err = run_cli(cwd=cwd, cpu_only=False, in_process=False)
    doc = json.loads(out)
    assert [(r["function"], r["device"], r["check"]) for r in doc["results"]] == [
        ("Square", "cuda", "gradcheck"), ("Half", "cuda", "gradcheck")]
    if not cuda:
        assert [r["status"] for r in doc["results"]] == ["skipped", "skipped"]
        assert code == 0
    assert all(r["spec"].endswith("gradspecs/ops.yaml") for r in doc["results"])
    # Flags win over each of them.
    code, out, err = run_cli("--device", "cpu", cwd=cwd, cpu_only=False, in_process=False)
    doc = json.loads(out)
    assert code == 0, err
    assert [(r["function"], r["check"], r["status"], r["seed"]) for r in doc["results"]] == [
        ("Square", "gradcheck", "passed", 5), ("Half", "gradcheck", "passed", 5)]
    assert _pids(pids) == {os.getpid()}, "jobs = 0 runs the checks in this process"
    entries = [p for p in (tmp_path / ".cachex").rglob("*.json")
               if p.name != "durations.json"]  # what --shard weighs checks by
    assert len(entries) == 2  # cache_dir is relative to the pyproject.toml
    code, out, err = run_cli("--device", "cpu", "--atol", "1e-5", "--seed", "0",
                             "--check", "gradgradcheck", "--check", "gradcheck",
                             "--format", "table", cwd=cwd, cpu_only=False, in_process=False)
    assert code == 1, err
    assert out.startswith("Spec ")
    assert "FAILED" in out and "Half[cpu-gradcheck] (seed 0)" in out
    assert out.splitlines()[-1].startswith("3 passed, 1 failed in ")
    code, out, err = run_cli("--device", "cpu", "--no-cache", "--atol", "1e-5",
                             cwd=cwd, cpu_only=False, in_process=False)
    doc = json.loads(out)
    assert [r["cached"] for r in doc["results"]] == [False, False]
    assert [r["status"] for r in doc["results"]] == ["passed", "failed"]
    # An explicit PATH replaces the specs folder.
    code, out, err = run_cli(str(tmp_path / "ops" / "ops.py"), "--device", "cpu", "-k", "Square",
                             cwd=cwd, cpu_only=False, in_process=False)
    doc = json.loads(out)
    assert [r["spec"].endswith("gradspecs/ops.yaml") for r in doc["results"]] == [True]


def test_config_cache_off(tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = _configured(tmp_path, """
        specs = "gradspecs"
        checks = ["gradcheck"]
        devices = ["cpu"]
        jobs = 0
        cache = false
    """)
    monkeypatch.setenv("GRADCHECK_TEST_PIDS", str(tmp_path / "pids"))
    code, out, err = run_cli("-k", "Square", cwd=cwd, cpu_only=False, in_process=False)
    assert code == 0, err
    assert out.splitlines()[-1].startswith("1 passed in ")
    assert not (tmp_path / ".gradcheck_cache").exists()
    assert not list(tmp_path.rglob("*.json"))


HANG = '''
import time

import torch


class Hang(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        while True:
            time.sleep(1)

    @staticmethod
    def backward(ctx, g):
        return g
'''


def test_config_jobs_and_timeout(tmp_path: Path, run_json: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = _configured(tmp_path, """
        specs = "gradspecs"
        checks = ["gradcheck"]
        jobs = 1
        timeout = 6
        cache = false
    """)
    _write(tmp_path / "ops" / "hang.py", HANG)
    _write(tmp_path / "gradspecs" / "zz_hang.yaml",
           "module: ../ops/hang.py\nfunctions:\n  Hang:\n    inputs: [{shape: [2]}]\n")
    pids = tmp_path / "pids"
    monkeypatch.setenv("GRADCHECK_TEST_PIDS", str(pids))
    # Square first, then Hang in the same worker: one worker start.
    doc = run_json("-k", "Hang", "-k", "Square", cwd=cwd, in_process=False)
    assert [(r["function"], r["status"]) for r in doc["results"]] == [
        ("Square", "passed"), ("Hang", "error")], [r["message"] for r in doc["results"]]
    assert "timed out after 6s" in doc["results"][1]["message"]
    assert _pids(pids) and os.getpid() not in _pids(pids), "jobs = 1 runs checks in a worker"
    pids.unlink()
    doc = run_json("-k", "Square", "-j", "0", cwd=cwd, in_process=False)
    assert [r["status"] for r in doc["results"]] == ["passed"]
    assert os.getpid() in _pids(pids)


@pytest.mark.parametrize(("line", "suggestion"), [
    ("timout = 5", "did you mean `timeout`?"),
    ("spec = 'gradspecs'", "did you mean `specs`?"),
    ("cache-dir = 'x'", "did you mean `cache_dir`?"),
])
def test_an_unknown_config_key_warns_with_a_suggestion(tmp_path: Path, run_cli: Any,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       line: str, suggestion: str) -> None:
    cwd = _configured(tmp_path, line + "\n")
    monkeypatch.setenv("GRADCHECK_TEST_PIDS", str(tmp_path / "pids"))
    spec = str(tmp_path / "gradspecs" / "ops.yaml")
    code, out, err = run_cli(spec, "-k", "Square", cwd=cwd)
    assert code == 0
    key = line.split("=")[0].strip()
    warning = next(w for w in err.splitlines() if "warning" in w)
    assert f"unknown key `{key}`" in warning
    assert suggestion in warning
    assert "pyproject.toml" in warning
    assert out.splitlines()[-1].startswith("2 passed in ")


def test_a_bad_config_value_is_a_warning_or_usage_error(tmp_path: Path, run_cli: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADCHECK_TEST_PIDS", str(tmp_path / "pids"))
    cwd = _configured(tmp_path, 'timeout = "soon"\n')
    spec = str(tmp_path / "gradspecs" / "ops.yaml")
    code, _, err = run_cli(spec, "-k", "Square", cwd=cwd)
    assert code == 0
    assert "`timeout` must be a number of seconds, not a string ('soon'); ignored" in err
    _configured(tmp_path, 'format = "xml"\n')
    code, out, err = run_cli(spec, cwd=cwd)
    assert code == 4
    assert out == ""
    assert "unknown format `xml`" in err
