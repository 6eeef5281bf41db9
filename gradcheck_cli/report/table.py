"""The table report: one row per result, details of failures under it, a summary line.

Everything fits the console's width without splitting a word, a name or a number (see
`narrow` for the results table, `layout` for the rest); lines carry no trailing spaces.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from rich import box
from rich.console import Console, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from gradcheck_cli.report import (
    Advise,
    ReportOptions,
    advice_line,
    entry_error,
    format_error,
    layout,
    narrow,
    result_id,
)
from gradcheck_cli.report.layout import (
    Column,
    Grid,
    Pieces,
    Trimmed,
    console_for,
    fit,
    paragraph,
    shorten_path,
    span,
    wrap_text,
)
from gradcheck_cli.report.safe import shown_all
from gradcheck_cli.results import CheckResult, Status, format_index

STYLES = {
    Status.PASSED: "green",
    Status.FAILED: "bold red",
    Status.ERROR: "bold magenta",
    Status.SKIPPED: "yellow",
}


def _errors_cell(result: CheckResult, split: bool = False) -> Pieces:
    """`w=1.6(wrong)  b=8.2e-11`: one part per input, never broken whatever its name holds
    (`split`: the name and its value two parts, the value never broken); a skip's reason
    in words."""
    parts: list[tuple[str, Text]] = []
    for i, entry in enumerate(result.inputs):
        style = "" if entry.passed else "red"
        value = Text(entry_error(entry), style=style)
        if not entry.passed:
            value.append("(wrong)", style="bold red")
        name = Text(f"{entry.name}=", style=style)
        if split:
            parts += [("  " if i else "", name), ("", value)]
        else:
            parts.append(("  " if i else "", name + value))
    if not result.inputs and result.status is Status.SKIPPED:
        return Pieces.joined((Text(w, style="dim") for w in result.message.split()), " ")
    return Pieces(parts)


def _row(r: CheckResult) -> narrow.Row:
    words = [r.status.value, *(["(cached)"] if r.cached else []),
             *([f"({r.mode})"] if r.mode in ("probe", "reference") else [])]
    status = Pieces.joined((Text(w, style=STYLES[r.status]) for w in words), " ")
    cells = {
        narrow.SPEC: PurePath(r.spec or r.module or "?").name,
        narrow.FUNCTION: r.function or "-",
        narrow.CASE: r.case if r.function else "-",
        narrow.DEVICE: r.device,
        narrow.CHECK: r.check,
        narrow.TIME: f"{r.duration:.2f}s",
    }
    if not r.function:
        return narrow.Row(cells, status, Pieces([]))
    return narrow.Row(cells, status, _errors_cell(r), _errors_cell(r, split=True))


def build_table(results: list[CheckResult], width: int = layout.DEFAULT_WIDTH) -> Grid:
    """The results table fitted to `width` (see `narrow` for what gives way, in which order)."""
    return narrow.results_table([_row(r) for r in shown_all(results)], width)


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


def _jacobian_lines(result: CheckResult, color: bool, width: int) -> list[RenderableType]:
    lines: list[RenderableType] = []
    for name, pictures in (result.jacobians or {}).items():
        rows, columns = pictures["shape"]
        picture = heatmap(pictures, color)
        if picture is None:
            lines.append(paragraph(f"  {name}: Jacobian {rows}x{columns} too large to draw "
                                   "here; use --plot DIR", width, "dim"))
            continue
        shrunk = ", downsampled" if pictures.get("downsampled") else ""
        lines.append(paragraph(f"  analytical − numerical for `{name}` (rows: {rows} output "
                               f"elements, columns: {columns} elements of {name}{shrunk}; "
                               f"largest |difference| {_largest(pictures):.2g}):", width, "dim"))
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


INPUT_COLUMNS = (("input",), ("max abs error", "abs error"), ("max rel error", "rel error"),
                 ("wrong entries", "wrong"), ("worst at",))


def _input_table(result: CheckResult, width: int) -> RenderableType:
    """Per input: max abs and rel errors, wrong entries, where the worst one is. Headers
    shorten (`abs error`) before anything wraps; values never wrap."""
    rows = []
    for entry in result.inputs:
        worst = ""
        if entry.worst is not None and not entry.passed:
            worst = f"{entry.name}{format_index(entry.worst.input_index)}"
        rows.append([entry.name, entry_error(entry),
                     format_error(entry.max_rel_error),
                     f"{entry.wrong_elements}" if entry.numel else "-", worst])
    fitted = [Column(headers, [row[i] for row in rows])
              for i, headers in enumerate(INPUT_COLUMNS)]
    # Only the headers shorten: a column grown part way back would not get its long header.
    widths = fit(fitted, width - 2, 2, grow=())
    table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 2, 0, 0))
    for i, (column, size) in enumerate(zip(fitted, widths)):
        table.add_column(column.header(size), width=size, no_wrap=True,
                         style="dim" if i == len(fitted) - 1 else None)
    for entry, row in zip(result.inputs, rows):
        table.add_row(Text(row[0], style="" if entry.passed else "red"),
                      *(Text(value) for value in row[1:]))
    return Trimmed(Padding(table, (0, 0, 0, 2), expand=False), span(widths, 2) + 2)


def _diagnoses(result: CheckResult, width: int) -> list[RenderableType]:
    """The diagnosis of each input that has one, in the user's terms: what is wrong."""
    return [paragraph(f"  {entry.name}: {entry.diagnosis.kind}: {entry.diagnosis.detail}",
                      width, "yellow")
            for entry in result.inputs if entry.diagnosis is not None]


def _details(result: CheckResult, width: int, show_jacobian: bool = False,
             color: bool = True) -> list[RenderableType]:
    """Everything under a failure's head line but its advice and reproduce command: plain
    words first (the diagnosis), then where, then the numbers for those who want them."""
    lines = _diagnoses(result, width)
    if result.location and not result.message.startswith(result.location):
        location = shorten_path(result.location, max(width - len("  at "), 1))
        lines.append(Text(f"  at {location}", style="dim"))
    if result.mode_reason:
        lines.append(paragraph(f"  {result.mode} mode: {result.mode_reason}", width, "dim"))
    if result.inputs_inferred is not None:
        lines.append(paragraph(f"  inputs inferred: {result.inputs_inferred}", width, "dim"))
    for line in result.message.splitlines() or [""]:
        lines.append(paragraph("  " + line, width))
    failing = [e for e in result.inputs if not e.passed]
    if result.inputs and (failing or result.status is Status.FAILED):
        lines.append(Text(""))
        lines.append(_input_table(result, width))
    if show_jacobian:
        lines.extend(_jacobian_lines(result, color, width))
    return lines


CAPABILITY_STYLES = {"ok": "green", "fail": "bold red", "n/a": "dim"}


def capability_table(results: list[CheckResult], width: int = layout.DEFAULT_WIDTH
                     ) -> Trimmed | None:
    """One column per capability when that fits `width` (headers wrap between words),
    else one cell of `name=status` entries per row, wrapped between entries."""
    rows = [r for r in results if r.capabilities]
    if not rows:
        return None
    names = list(dict.fromkeys(k for r in rows for k in (r.capabilities or {})))
    keys = [Column(("Function",), [r.function or "-" for r in rows]),
            Column(("Case",), [r.case for r in rows])]
    wide = [*keys, *(Column((n.replace("_", " "),), [(r.capabilities or {}).get(n, {}).get(
        "status", "") for r in rows], breakable=True) for n in names)]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title="Capabilities",
                  title_justify="left")
    if span([c.least for c in wide], 3) <= width:
        widths = fit(wide, width, 3)
        for column, size in zip(wide, widths):
            table.add_column(column.headers[0], width=size, no_wrap=not column.breakable)
        for r in rows:
            caps = r.capabilities or {}
            table.add_row(Text(r.function or "-"), Text(r.case), *(
                Text(caps[n]["status"], style=CAPABILITY_STYLES.get(caps[n]["status"], ""))
                if n in caps else Text("") for n in names))
        return Trimmed(table, span(widths, 3))
    cells = [_capability_entries(r.capabilities or {}) for r in rows]
    long = [*keys, Column(("Capabilities",), [c.plain for c in cells], breakable=True)]
    widths = fit(long, width, 3)
    for column, size in zip(long, widths):
        table.add_column(column.headers[0], width=size, no_wrap=not column.breakable)
    for r, cell in zip(rows, cells):
        table.add_row(Text(r.function or "-"), Text(r.case), wrap_text(cell, widths[-1]))
    return Trimmed(table, span(widths, 3))


def _capability_entries(caps: dict[str, dict[str, str]]) -> Text:
    text = Text()
    for i, (name, cap) in enumerate(caps.items()):
        if i:
            text.append("  ")
        text.append(f"{name}=")
        text.append(cap["status"], style=CAPABILITY_STYLES.get(cap["status"], ""))
    return text


def _capability_notes(results: list[CheckResult], width: int) -> list[Text]:
    notes = []
    for r in results:
        for name, cap in (r.capabilities or {}).items():
            if cap["status"] == "fail":
                notes.append(paragraph(f"  {r.function} [{r.case}] {name}: {cap['reason']}",
                                       width, "red"))
    return notes


def _notes(results: list[CheckResult], advise: Advise, width: int) -> list[Text]:
    """Why a check ran in probe mode, notes on inputs that passed (failures say more), and
    advice on a result that passed (e.g. a probe verdict worth confirming exactly)."""
    notes: list[str] = []
    inferred: dict[tuple[str | None, str | None, str], str] = {}
    for r in results:
        if r.inputs_inferred is not None:
            # Once per Function x case: every check of it ran on the same inputs.
            inferred.setdefault((r.module, r.function, r.case), r.inputs_inferred)
    for (module, function, case), shown in inferred.items():
        what = function if case == "default" else f"{function}[{case}]"
        notes.append(f"note: {module}::{what}: inputs inferred: {shown}")
    if inferred:
        modules = " ".join(dict.fromkeys(str(m) for m, _, _ in inferred))
        notes.append(f"note: to pin these inputs in an editable spec: gradcheck-cli init "
                     f"{modules}")
    for r in results:
        if r.status.is_problem:
            continue
        if r.mode_reason and r.mode != "reference":  # a reference pass's evidence: JSON's
            notes.append(f"note: {result_id(r)}: {r.mode} mode: {r.mode_reason}")
        for entry in r.inputs:
            if entry.note:
                notes.append(f"note: {result_id(r)}: {entry.name}: {entry.note}")
        if r.advice:
            words = "; ".join(dict.fromkeys(advise(a) for a in r.advice))
            notes.append(f"note: {result_id(r)}: what to do: {words}")
    return [paragraph(note, width, "dim") for note in notes]


def _emit(console: Console, item: RenderableType) -> None:
    """Print what is already fitted to the width: rich must neither re-wrap nor crop it."""
    if isinstance(item, Text):
        console.print(item, soft_wrap=True)
    else:
        console.print(item, crop=False)


def render(results: list[CheckResult], options: ReportOptions) -> None:
    write(console_for(options.out), results, options)


def write(console: Console, results: list[CheckResult], options: ReportOptions) -> None:
    """The table, capabilities and notes, each failure's details, the summary line; with
    `quiet` 1 only the failures (their rows and details) and the summary line, with 2 the
    summary line alone."""
    results = shown_all(results)
    width = console.width
    problems = [r for r in results if r.status.is_problem]
    if options.quiet == 0:
        _overview(console, results, options, width)
    elif options.quiet == 1 and any(r.capabilities is None for r in problems):
        _emit(console, build_table([r for r in problems if r.capabilities is None], width))
    if options.quiet < 2:
        _failures(console, problems, options, width)
    code = options.summary.exit_code
    style = "bold red" if code == 1 else "bold green" if code == 0 else "bold yellow"
    _emit(console, paragraph(options.summary.line(), width, style))


def _overview(console: Console, results: list[CheckResult], options: ReportOptions,
              width: int) -> None:
    """Every result's row, the capability matrix and the notes."""
    plain = [r for r in results if r.capabilities is None]
    if plain:
        _emit(console, build_table(plain, width))
    capabilities = capability_table(results, width)
    if capabilities is not None:
        console.print()
        _emit(console, capabilities)
        for note in _capability_notes(results, width):
            _emit(console, note)
    notes = _notes(results, options.advise, width)
    if notes:
        console.print()
        for note in notes:
            _emit(console, note)


def _failures(console: Console, problems: list[CheckResult], options: ReportOptions,
              width: int) -> None:
    """Under the table, each failed or errored result: its details, advice, reproduce."""
    for result in problems:
        console.print()
        # The result's id and its reproduce command get copied and pasted: never wrapped.
        console.print(_head(result), soft_wrap=True)
        for item in _details(result, width, options.show_jacobian,
                             console.color_system is not None):
            _emit(console, item)
        advice = advice_line(result, options.advise)
        if advice:
            _emit(console, paragraph(f"  {advice}", width, "yellow"))
        if result.reproduce:
            console.print(Text(f"  reproduce: {result.reproduce}", style="dim"), soft_wrap=True)
    if problems:
        console.print()
