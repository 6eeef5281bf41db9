"""The markdown report: GitHub-flavoured, the results and what went wrong, for a pull request."""

from __future__ import annotations

import re

from gradcheck_cli.report import Advise, ReportOptions, advice_line, entry_error, result_id
from gradcheck_cli.report.safe import shown
from gradcheck_cli.results import CheckResult, Status, Summary

COLUMNS = ("Spec", "Function", "Case", "Device", "Check", "Status", "Max error per input")
MARKS = {Status.PASSED: "✅", Status.FAILED: "❌", Status.ERROR: "💥", Status.SKIPPED: "⏭️"}
MESSAGE_LINES = 5  # of a failure's message: a pull request wants the gist

# What markdown may read as markup (emphasis, code, links, HTML, strike-through, a table's
# column break, an entity); a backslash makes each literal. An underscore inside a word is
# never emphasis in GFM, so `grad_output` stays as it is.
_SPECIAL = re.compile(r"([\\`*\[\]<|~]|&(?=#?\w+;)|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
# Messages quote names in single backticks: those spans stay code, a lone backtick is text.
_SPAN = re.compile(r"(`[^`]+`)")
# What would start a heading, a list item or a quote at the beginning of a line.
_BLOCK_START = re.compile(r"^(\d*)([#+\-=>]|(?<=\d)[.)])")
_BACKTICKS = re.compile(r"`+")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def escape(text: str) -> str:
    """`text` as literal markdown, on one line: a table cell's or a heading's."""
    return _SPECIAL.sub(r"\\\1", _one_line(text))


def prose(text: str) -> str:
    """One line of a message as markdown: its `code` spans kept, everything else literal."""
    parts = _SPAN.split(_one_line(text))
    line = "".join(part if i % 2 else _SPECIAL.sub(r"\\\1", part)
                   for i, part in enumerate(parts))
    return _BLOCK_START.sub(r"\1\\\2", line)


def code(text: str) -> str:
    """`text` as one code span, whatever backticks it holds."""
    text = _one_line(text)
    fence = "`" * (1 + max((len(run) for run in _BACKTICKS.findall(text)), default=0))
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def code_block(text: str, language: str = "sh") -> list[str]:
    """`text` as a fenced code block, its fence longer than any backtick run inside."""
    fence = "`" * max(3, 1 + max((len(run) for run in _BACKTICKS.findall(text)), default=0))
    return [fence + language, *text.splitlines(), fence]


def _errors_cell(result: CheckResult) -> str:
    if result.capabilities is not None:
        return ", ".join(escape(f"{name} {cap['status']}")
                         for name, cap in result.capabilities.items())
    if not result.inputs and result.status is Status.SKIPPED:
        return escape((result.message.strip().splitlines() or [""])[0])
    entries = []
    for entry in result.inputs:
        text = escape(f"{entry.name}={entry_error(entry)}")
        entries.append(text if entry.passed else f"**{text} (wrong)**")
    return ", ".join(entries)


def _status_cell(result: CheckResult) -> str:
    text = f"{MARKS[result.status]} {result.status.value}"
    if result.cached:
        text += " (cached)"
    if result.mode in ("probe", "reference"):
        text += f" ({result.mode})"
    return text


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table(results: list[CheckResult]) -> list[str]:
    """The results table: one row per result (names escaped: see `safe`)."""
    lines = [_row(list(COLUMNS)), _row(["---"] * len(COLUMNS))]
    for r in map(shown, results):
        lines.append(_row([
            escape(r.spec or r.module or "?"),
            escape(r.function or "-"),
            escape(r.case if r.function else "-"),
            escape(r.device),
            escape(r.check),
            _status_cell(r),
            _errors_cell(r) if r.function else "",
        ]))
    return lines


def section(result: CheckResult, advise: Advise) -> list[str]:
    """What went wrong with one failed or errored result, and the command that reruns it."""
    result = shown(result)
    head = f"#### {MARKS[result.status]} {result.status.value.upper()} {code(result_id(result))}"
    if result.seed is not None:
        head += f" (seed {result.seed})"
    lines = [head, ""]
    if result.location and not result.message.startswith(result.location):
        lines += [f"at {code(result.location)}", ""]
    if result.mode_reason:
        lines += [prose(f"{result.mode} mode: {result.mode_reason}"), ""]
    message = [line for line in result.message.splitlines() if line.strip()]
    if len(message) > MESSAGE_LINES:
        message = [*message[:MESSAGE_LINES], "…"]
    if message:
        lines += [*(f"> {prose(line)}" for line in message), ""]
    diagnoses = [f"- {code(e.name)}: {prose(f'{e.diagnosis.kind}: {e.diagnosis.detail}')}"
                 for e in result.inputs if e.diagnosis is not None]
    if diagnoses:
        lines += [*diagnoses, ""]
    advice = advice_line(result, advise)
    if advice:
        lines += [prose(advice), ""]
    if result.reproduce:
        lines += ["reproduce:", "", *code_block(result.reproduce), ""]
    return lines


def document(results: list[CheckResult], summary: Summary, advise: Advise) -> str:
    """The whole report: a summary heading, the table, a section per failure or error."""
    lines = [f"### gradcheck-cli: {escape(summary.line())}", ""]
    if results:
        lines += [*table(results), ""]
    for result in results:
        if result.status.is_problem:
            lines += section(result, advise)
    # Trailing spaces would be hard line breaks in markdown.
    return "\n".join(line.rstrip() for line in lines).rstrip("\n") + "\n"


def render(results: list[CheckResult], options: ReportOptions) -> None:
    options.out.write(document(results, options.summary, options.advise))
