"""The REPORTERS registry: reports by name, views of results that format and decide nothing.

Importing this module must not import torch (nor rich): the command line's `--format`
choices and the project config's validation read the registry. A reporter's module is
imported only when it renders (`Reporter.load`). Adding a format is one new module with a
`render(results, options)` function, plus one `register(Reporter(...))` line below (see
CONTRIBUTING.md).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from gradcheck_cli.results import Advice, CheckResult, InputError, Summary

Advise = Callable[[Advice], str]


def name_advice(advice: Advice) -> str:
    """`set more_memory (about 2048 bytes)`: advice as its kind, for front ends that word
    none of their own (the command line passes `gradcheck_cli.cli.advice.advise`)."""
    if advice.needed is not None:
        return f"set {advice.kind} (about {advice.needed} bytes)"
    return f"set {advice.kind}"


def advice_line(result: CheckResult, advise: Advise = name_advice) -> str | None:
    """`what to do: rerun with --dodge-kinks; raise --max-memory` for a failure or error
    with advice, else None."""
    if not result.advice or not result.status.is_problem:
        return None
    # The same advice may come from two stages of one check: say it once.
    return "what to do: " + "; ".join(dict.fromkeys(advise(a) for a in result.advice))


@dataclass(frozen=True)
class ReportOptions:
    """What every reporter is given besides the results."""

    summary: Summary
    out: TextIO  # where the report goes (stdout, or a file)
    show_jacobian: bool = False  # draw the difference Jacobian of failing inputs (table)
    advise: Advise = name_advice  # words one Advice in the front end's terms
    quiet: int = 0  # 1: only failures and the summary line; 2: the summary line only


Render = Callable[[list[CheckResult], ReportOptions], None]


@dataclass(frozen=True)
class Reporter:
    name: str
    summary: str  # one line, for --help and the README
    module: str  # the module of this package whose `render(results, options)` writes it

    def load(self) -> Render:
        module = importlib.import_module(f"{__name__}.{self.module}")
        render: Render = module.render
        return render


REPORTERS: dict[str, Reporter] = {}


def register(reporter: Reporter) -> Reporter:
    if reporter.name in REPORTERS:
        raise ValueError(f"reporter {reporter.name!r} is registered twice")
    REPORTERS[reporter.name] = reporter
    return reporter


def render(name: str, results: list[CheckResult], options: ReportOptions) -> None:
    """Write the `name` report of `results`."""
    REPORTERS[name].load()(results, options)


register(Reporter("table", "a table per result, details of failures under it", "table"))
register(Reporter("json", "one JSON document with every result and the summary", "json"))
register(Reporter("junit", "JUnit XML, as CI test-report views read it", "junit"))
register(Reporter("github", "GitHub Actions annotations plus the table", "github"))
register(Reporter("markdown", "a GitHub-flavoured markdown table to paste into a pull request",
                  "markdown"))


def result_id(result: CheckResult) -> str:
    """`specs/op.yaml::MultiplyAdd[cpu-gradcheck]`, as pytest names items."""
    where = result.spec or result.module or "?"
    if result.function is None:
        return where
    params = [result.device, result.check] if not result.before_checks else []
    if result.case != "default":
        params.insert(0, result.case)
    suffix = f"[{'-'.join(params)}]" if params else ""
    return f"{where}::{result.function}{suffix}"


def format_error(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == 0:
        return "0"
    return f"{value:.2g}"


def entry_error(entry: InputError) -> str:
    """An input's largest error as the tables show it: `2.3`, `0`, or `non-finite` when the
    value is not a number (NaN/Inf; the JSON's null, with a note, on a failed input). A
    note alone (a probe's doubt on a passed input) does not make the value non-finite."""
    value = entry.max_abs_error
    if value is None and entry.note and not entry.passed:
        return "non-finite"
    if value is not None and not math.isfinite(value):
        return "non-finite"
    return format_error(value)
