"""The table report: one row per result, details of failures under it, a summary line."""

from __future__ import annotations

import os
from pathlib import PurePath
from typing import Any, TextIO

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from gradcheck_cli.report import Advise, ReportOptions, advice_line, format_error, result_id
from gradcheck_cli.results import CheckResult, Status, format_index

STYLES = {
    Status.PASSED: "green",
    Status.FAILED: "bold red",
    Status.ERROR: "bold magenta",
    Status.SKIPPED: "yellow",
}


def _errors_cell(result: CheckResult) -> Text:
    text = Text()
    for i, entry in enumerate(result.inputs):
        if i:
            text.append("  ")
        value = "non-finite" if entry.note else format_error(entry.max_abs_error)
        # No space inside an entry: a narrow column wraps between inputs, never within one.
        text.append(f"{entry.name}={value}", style="" if entry.passed else "red")
        if not entry.passed:
            text.append("(wrong)", style="bold red")
    if not result.inputs and result.status is Status.SKIPPED:
        text.append(result.message, style="dim")
    return text


def build_table(results: list[CheckResult]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
    # Short fields never wrap; in a narrow terminal names fold and the errors column wraps
    # between inputs (it keeps room for at least one `name=value(wrong)`).
    for name in ("Spec", "Function", "Case"):
        table.add_column(name, overflow="fold")
    for name in ("Device", "Check", "Status"):
        table.add_column(name, no_wrap=True)
    table.add_column("Max error per input", overflow="fold", min_width=16)
    table.add_column("Time", justify="right", no_wrap=True)
    for r in results:
        where = PurePath(r.spec or r.module or "?").name
        table.add_row(
            where,
            r.function or "-",
            r.case if r.function else "-",
            r.device,
            r.check,
            Text(r.status.value + (" (cached)" if r.cached else "")
                 + (" (probe)" if r.mode == "probe" else ""), style=STYLES[r.status]),
            _errors_cell(r) if r.function else Text(""),
            f"{r.duration:.2f}s",
        )
    return table


RAMP = " .:-=+*#%@"
HEATMAP_LIMIT = 48  # rows and columns shown in a terminal


def heatmap(pictures: dict[str, Any], color: bool) -> Text | None:
    """The difference Jacobian as text: one cell per entry, darker where it is more wrong."""
    data = pictures["difference"]
    if not data or len(data) > HEATMAP_LIMIT or len(data[0]) > HEATMAP_LIMIT:
        return None
    largest = max(abs(v) for row in data for v in row) or 1.0
    text = Text()
    for row in data:
        text.append("  │")
        for value in row:
            level = abs(value) / largest
            if color:
                shade = int(55 + 200 * level)
                style = f"on rgb({shade},40,40)" if value > 0 else f"on rgb(40,40,{shade})"
                text.append(" ", style=style if level > 0.01 else "")
            else:
                text.append(RAMP[min(len(RAMP) - 1, int(level * (len(RAMP) - 1) + 0.5))])
        text.append("│\n")
    return text


def _jacobian_lines(result: CheckResult, color: bool) -> list[RenderableType]:
    lines: list[RenderableType] = []
    for name, pictures in (result.jacobians or {}).items():
        rows, columns = pictures["shape"]
        picture = heatmap(pictures, color)
        if picture is None:
            lines.append(Text(f"  {name}: Jacobian {rows}x{columns} too large to draw here; "
                              "use --plot DIR", style="dim"))
            continue
        shrunk = ", downsampled" if pictures.get("downsampled") else ""
        lines.append(Text(f"  analytical − numerical for `{name}` (rows: {rows} output "
                          f"elements, columns: {columns} elements of {name}{shrunk}; "
                          f"largest |difference| {_largest(pictures):.2g}):", style="dim"))
        lines.append(picture)
    return lines


def _largest(pictures: dict[str, Any]) -> float:
    return max(abs(v) for row in pictures["difference"] for v in row)


def _head(result: CheckResult) -> Text:
    head = Text()
    head.append(result.status.value.upper(), style=STYLES[result.status])
    head.append(f" {result_id(result)}")
    if result.seed is not None:
        head.append(f" (seed {result.seed})", style="dim")
    return head


def _details(result: CheckResult, show_jacobian: bool = False,
             color: bool = True) -> RenderableType:
    """Everything under a failure's head line but its reproduce command."""
    lines: list[RenderableType] = []
    if result.location and not result.message.startswith(result.location):
        lines.append(Text(f"  at {result.location}", style="dim"))
    if result.mode_reason:
        lines.append(Text(f"  probe mode: {result.mode_reason}", style="dim"))
    for line in result.message.splitlines() or [""]:
        lines.append(Text("  " + line))
    failing = [e for e in result.inputs if not e.passed]
    if result.inputs and (failing or result.status is Status.FAILED):
        table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 2, 0, 0))
        for column in ("input", "max abs error", "max rel error", "wrong entries", "worst at"):
            table.add_column(column, style="dim" if column == "worst at" else None)
        for entry in result.inputs:
            worst = ""
            if entry.worst is not None and not entry.passed:
                worst = f"{entry.name}{format_index(entry.worst.input_index)}"
            table.add_row(
                Text(entry.name, style="" if entry.passed else "red"),
                format_error(entry.max_abs_error),
                format_error(entry.max_rel_error),
                f"{entry.wrong_elements}" if entry.numel else "-",
                worst,
            )
        lines.append(Group(Text(""), _indent(table)))
        for entry in result.inputs:
            if entry.diagnosis is not None:
                lines.append(Text(f"  {entry.name}: {entry.diagnosis.kind}: "
                                  f"{entry.diagnosis.detail}", style="yellow"))
    if show_jacobian:
        lines.extend(_jacobian_lines(result, color))
    return Group(*lines)


def _indent(table: Table) -> RenderableType:
    from rich.padding import Padding

    return Padding(table, (0, 0, 0, 2), expand=False)


CAPABILITY_STYLES = {"ok": "green", "fail": "bold red", "n/a": "dim"}


def capability_table(results: list[CheckResult]) -> Table | None:
    rows = [r for r in results if r.capabilities]
    if not rows:
        return None
    names = list(dict.fromkeys(k for r in rows for k in (r.capabilities or {})))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title="Capabilities",
                  title_justify="left")
    table.add_column("Function")
    table.add_column("Case")
    for name in names:
        table.add_column(name.replace("_", " "))
    for r in rows:
        caps = r.capabilities or {}
        table.add_row(r.function or "-", r.case, *(
            Text(caps[n]["status"], style=CAPABILITY_STYLES.get(caps[n]["status"], ""))
            if n in caps else Text("") for n in names))
    return table


def _capability_notes(results: list[CheckResult]) -> list[Text]:
    notes = []
    for r in results:
        for name, cap in (r.capabilities or {}).items():
            if cap["status"] == "fail":
                notes.append(Text(f"  {r.function} [{r.case}] {name}: {cap['reason']}",
                                  style="red"))
    return notes


def _notes(results: list[CheckResult], advise: Advise) -> list[Text]:
    """Why a check ran in probe mode, notes on inputs that passed (failures say more), and
    advice on a result that passed (e.g. a probe verdict worth confirming exactly)."""
    notes = []
    for r in results:
        if r.status.is_problem:
            continue
        if r.mode_reason:
            notes.append(Text(f"note: {result_id(r)}: probe mode: {r.mode_reason}", style="dim"))
        for entry in r.inputs:
            if entry.note:
                notes.append(Text(f"note: {result_id(r)}: {entry.name}: {entry.note}",
                                  style="dim"))
        if r.advice:
            words = "; ".join(dict.fromkeys(advise(a) for a in r.advice))
            notes.append(Text(f"note: {result_id(r)}: what to do: {words}", style="dim"))
    return notes


def console_for(out: TextIO) -> Console:
    """A console over `out`: the terminal's width, else (a pipe, a file) 120 columns unless
    COLUMNS says otherwise."""
    console = Console(file=out, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(file=out, highlight=False, width=120)
    return console


def render(results: list[CheckResult], options: ReportOptions) -> None:
    write(console_for(options.out), results, options)


def write(console: Console, results: list[CheckResult], options: ReportOptions) -> None:
    plain = [r for r in results if r.capabilities is None]
    if plain:
        console.print(build_table(plain))
    capabilities = capability_table(results)
    if capabilities is not None:
        console.print()
        console.print(capabilities)
        for note in _capability_notes(results):
            console.print(note)
    notes = _notes(results, options.advise)
    if notes:
        console.print()
        for note in notes:
            console.print(note)
    problems = [r for r in results if r.status.is_problem]
    for result in problems:
        console.print()
        # The result's id and its reproduce command get copied and pasted: never wrapped.
        console.print(_head(result), soft_wrap=True)
        console.print(_details(result, options.show_jacobian, console.color_system is not None))
        advice = advice_line(result, options.advise)
        if advice:
            console.print(Text(f"  {advice}", style="yellow"))
        if result.reproduce:
            console.print(Text(f"  reproduce: {result.reproduce}", style="dim"), soft_wrap=True)
    if problems:
        console.print()
    code = options.summary.exit_code
    style = "bold red" if code == 1 else "bold green" if code == 0 else "bold yellow"
    console.print(Text(options.summary.line(), style=style))
