"""Shared fixtures: write ops and specs into tmp_path, run the real CLI in-process.

`run_cli(*args, cwd=...)` calls `gradcheck_cli.cli.main([...])` with the working directory
set to `cwd` (paths in the output are relative to it) and returns
`(exit_code, stdout, stderr)`. `run_json(...)` does the same with `--format json` and
returns the parsed document, after checking that stdout is exactly one JSON document and
that the exit code agrees with the document's summary.

Unless told otherwise both helpers add `--device cpu` (`cpu_only=False` to leave it out),
so that the results are the same on a machine with CUDA, and `--jobs 0 --no-cache`
(`in_process=False` to leave them out): the checks run in the test's own process, which is
fast and lets a test look at the user module's state, and no cached pass hides a check.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gradcheck_cli.cli import main

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite tests/golden/*.txt from the current output (or set UPDATE_GOLDENS=1)",
    )


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens")) or os.environ.get(
        "UPDATE_GOLDENS", ""
    ) not in ("", "0")


@pytest.fixture(autouse=True)
def _forget_user_modules(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Each test imports its own files: drop what it imported from the temp folders afterwards.

    gradcheck-cli imports a user file once per process; tests run many "processes" in one.
    """
    saved_path = list(sys.path)
    yield
    sys.path[:] = saved_path
    from gradcheck_cli.target import discovery

    base = str(tmp_path_factory.getbasetemp().resolve())
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(base):
            del sys.modules[name]
    loaded = getattr(discovery, "_loaded", {})  # the per-process import cache
    for path in list(loaded):
        if str(path).startswith(base):
            del loaded[path]


def _write(base: Path, name: str, text: str) -> Path:
    path = base / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture
def write_op(tmp_path: Path) -> Callable[..., Path]:
    """write_op(source, name="ops.py") -> path of a Python file under tmp_path."""

    def write(source: str, name: str = "ops.py") -> Path:
        return _write(tmp_path, name, source)

    return write


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """write_spec(text_or_mapping, name="spec.yaml") -> path of a spec under tmp_path.

    A mapping is dumped with PyYAML; a string is written as is (dedented).
    """

    def write(content: str | dict[str, Any], name: str = "spec.yaml") -> Path:
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        return _write(tmp_path, name, text)

    return write


def _argv(args: tuple[str, ...], cpu_only: bool, in_process: bool) -> list[str]:
    argv = [str(a) for a in args]
    if {"--help", "-h", "--version"} & set(argv) or (argv and argv[0] == "init"):
        return argv
    if cpu_only and "--device" not in argv:
        argv += ["--device", "cpu"]
    if in_process and not {"-j", "--jobs"} & set(argv):
        argv += ["--jobs", "0"]
    if in_process and "--no-cache" not in argv:
        argv += ["--no-cache"]
    return argv


RunCli = Callable[..., tuple[int, str, str]]


@pytest.fixture(autouse=True)
def _table_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table's width follows COLUMNS when stdout is no terminal, and pytest-xdist sets
    it to 80 in its workers: tests read rows at the goldens' width unless they set their own.
    """
    monkeypatch.setenv("COLUMNS", "120")


@pytest.fixture
def run_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> RunCli:
    """run_cli(*args, cwd=tmp_path, cpu_only=True, in_process=True) -> (code, stdout, stderr)."""

    def run(*args: str, cwd: Path | str | None = None, cpu_only: bool = True,
            in_process: bool = True) -> tuple[int, str, str]:
        monkeypatch.chdir(cwd if cwd is not None else tmp_path)
        capsys.readouterr()
        code = main(_argv(args, cpu_only, in_process))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def run_json(run_cli: RunCli) -> Callable[..., dict[str, Any]]:
    """run_json(*args, cwd=tmp_path, cpu_only=True, in_process=True) -> the parsed JSON report.

    The document gets an extra key `_exit_code` holding the process exit code, and
    `_stderr` holding what went to stderr.
    """

    def run(*args: str, cwd: Path | str | None = None, cpu_only: bool = True,
            in_process: bool = True) -> dict[str, Any]:
        code, out, err = run_cli(*args, "--format", "json", cwd=cwd, cpu_only=cpu_only,
                                 in_process=in_process)
        try:
            doc = json.loads(out)
        except json.JSONDecodeError as exc:  # pragma: no cover - a failure message
            raise AssertionError(f"stdout is not one JSON document: {exc}\n{out}\n{err}") from None
        assert doc["summary"]["exit_code"] == code, (doc["summary"], code)
        doc["_exit_code"] = code
        doc["_stderr"] = err
        return doc

    return run


def only(doc: dict[str, Any], **where: Any) -> dict[str, Any]:
    """The single result matching every `key=value` of `where`."""
    found = [r for r in doc["results"] if all(r.get(k) == v for k, v in where.items())]
    assert len(found) == 1, (where, [_short(r) for r in doc["results"]])
    return found[0]


def statuses(doc: dict[str, Any]) -> dict[tuple[str | None, str], str]:
    """{(function, check): status} for a single-case, single-device run."""
    table: dict[tuple[str | None, str], str] = {}
    for r in doc["results"]:
        key = (r["function"], r["check"])
        assert key not in table, f"duplicate result for {key}"
        table[key] = r["status"]
    return table


def errors_by_name(result: dict[str, Any]) -> dict[str, float]:
    return {i["name"]: i["max_abs_error"] for i in result["inputs"]}


def _short(result: dict[str, Any]) -> str:
    return (f"{result['function']}[{result['case']}-{result['device']}-{result['check']}]"
            f"={result['status']}: {result['message'][:200]}")


def line_of(path: Path, text: str, after: str | None = None) -> int:
    """The 1-based number of the first line of `path` containing `text` (the first after
    the line containing `after`, when given): locations asserted without hard-coding them.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    start = line_of(path, after) if after is not None else 0
    for number, line in enumerate(lines[start:], start + 1):
        if text in line:
            return number
    raise AssertionError(f"no line containing {text!r} in {path}"
                         + (f" after {after!r}" if after is not None else ""))
