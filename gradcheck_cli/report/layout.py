"""Text that fits the console: its width, wraps between tokens, short paths, no trailing spaces.

A *token* is what a line never breaks inside: a word, a number, a name, `name=value`, and
anything in backticks, brackets or braces whole (`` `x @ w.t()` ``, `w[0, 0]`,
`{shape: [3, 4], name: x}`). Lines break only at the spaces between tokens; a token wider
than the whole line gets a line of its own and runs past the edge rather than be cut.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TextIO

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.text import Text

# Not a terminal (a log, a file, a pipe): wide enough for a row of the table on one line.
DEFAULT_WIDTH = 120
ELLIPSIS = "…"

_TOKEN = re.compile(r"(?:`[^`\n]*`|\[[^\]\n]*\]|\{[^}\n]*\}|[^\s`\[{]|[`\[{])+")


def output_width(out: TextIO) -> int:
    """The columns to fill: COLUMNS when set, else the width of the terminal `out` is, else 120.

    Rich alone would take FORCE_COLOR (or TTY_COMPATIBLE) on a pipe as a terminal of 80
    columns, since a pipe has no size; colours are forced, not a narrow width.
    """
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        terminal = out.isatty()
    except (AttributeError, ValueError, OSError):
        terminal = False
    if not terminal:
        return DEFAULT_WIDTH
    try:
        return os.get_terminal_size(out.fileno()).columns or DEFAULT_WIDTH
    except (AttributeError, ValueError, OSError):
        return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def console_for(out: TextIO) -> Console:
    """A console over `out`, `output_width(out)` columns wide; colours as rich decides them
    (a terminal, FORCE_COLOR, NO_COLOR)."""
    return Console(file=out, highlight=False, width=output_width(out))


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def longest_token(texts: Iterable[str]) -> int:
    return max((cell_len(t) for text in texts for t in tokens(text)), default=0)


def _line_starts(plain: str, width: int) -> list[int]:
    """Where each line after the first starts when `plain` (one line) wraps at `width`:
    greedily, at the spaces between tokens, as many tokens on a line as fit."""
    starts: list[int] = []
    line_start = 0
    first = True
    for match in _TOKEN.finditer(plain):
        if not first and cell_len(plain[line_start:match.end()]) > width:
            starts.append(match.start())
            line_start = match.start()
        first = False
    return starts


def wrap(line: str, width: int) -> list[str]:
    """`line` as lines of at most `width` columns (see the module's docstring); its
    indentation stays on the first line, continuation lines start at the margin."""
    bounds = [0, *_line_starts(line, width), len(line)]
    return [line[a:b].rstrip() for a, b in itertools.pairwise(bounds)]


def wrap_text(text: Text, width: int) -> Text:
    """A styled one-line `text` wrapped as `wrap` does, lines joined by newlines."""
    starts = _line_starts(text.plain, width)
    if not starts:
        return text
    lines = text.divide(starts)
    for line in lines:
        line.rstrip()
    return Text("\n").join(lines)


def paragraph(text: str, width: int, style: str = "") -> Text:
    """Each line of `text` wrapped to `width`: print it with soft_wrap=True (no re-wrapping)."""
    lines = [part for line in (text.splitlines() or [""]) for part in wrap(line, width)]
    return Text("\n".join(lines), style=style)


def _head(text: str, cells: int) -> str:
    """The longest start of `text` at most `cells` columns wide."""
    taken = 0
    for i, char in enumerate(text):
        taken += cell_len(char)
        if taken > cells:
            return text[:i]
    return text


def shorten_middle(text: str, width: int) -> str:
    """`MulAdd…apped`: `text` cut in the middle to `width` columns, both ends kept (names
    differ at their ends as often as at their starts: `LinearV1`, `LinearV2`)."""
    if cell_len(text) <= width:
        return text
    keep = max(width - 1, 0)
    head = _head(text, (keep + 1) // 2)
    tail = _head(text[::-1], keep - cell_len(head))[::-1]
    return head + ELLIPSIS + tail


def shorten_path(path: str, width: int) -> str:
    """`…/ops/broken.yaml`: `path` cut from the left to `width` columns, at a `/` when one
    leaves some of the name (else inside the name, `…oken.yaml`)."""
    if cell_len(path) <= width:
        return path
    parts = path.split("/")
    for start in range(1, len(parts)):
        shorter = ELLIPSIS + "/" + "/".join(parts[start:])
        if cell_len(shorter) <= width:
            return shorter
    keep = max(width - 1, 0)
    return ELLIPSIS + path[len(path) - keep:] if keep else ELLIPSIS


@dataclass
class Column:
    """A column to fit: its header (then shorter forms of it), its cells' plain text, and
    whether the cells (and, at the last form, the header) may wrap between tokens."""

    headers: tuple[str, ...]
    cells: Sequence[str]
    breakable: bool = False
    floor: int | None = None  # the cells may be shortened (with an ellipsis) down to this
    # The parts each cell breaks between, when not its tokens (see `Pieces`).
    tokens: Sequence[Sequence[str]] | None = None

    @property
    def full(self) -> int:
        longest = max((cell_len(line) for cell in self.cells for line in cell.splitlines()),
                      default=0)
        return max(cell_len(self.headers[0]), longest)

    @property
    def least(self) -> int:
        last = self.headers[-1]
        if self.breakable:
            parts = (max((cell_len(t) for cell in self.tokens for t in cell), default=0)
                     if self.tokens is not None else longest_token(self.cells))
            return max(longest_token([last]), parts, 1)
        least = max((cell_len(c) for c in self.cells), default=0)
        if self.floor is not None:
            least = min(least, self.floor)
        return max(cell_len(last), least, 1)

    def header(self, width: int) -> str:
        return next((h for h in self.headers if cell_len(h) <= width), self.headers[-1])


def span(widths: Sequence[int], gap: int) -> int:
    """The width of columns `widths` wide with `gap` columns between each two."""
    return sum(widths) + gap * max(len(widths) - 1, 0)


def fit(columns: Sequence[Column], room: int, gap: int,
        grow: Sequence[int] | None = None) -> list[int]:
    """Column widths: every column whole when that fits in `room`; else each at its least,
    and what is left given to the columns `grow` names (indices, in order) up to their full
    widths. The sum may exceed `room` only when the least widths already do."""
    full = [c.full for c in columns]
    if span(full, gap) <= room:
        return full
    widths = [c.least for c in columns]
    spare = room - span(widths, gap)
    for index in grow if grow is not None else range(len(columns)):
        add = max(0, min(full[index] - widths[index], spare))
        widths[index] += add
        spare -= add
    return widths


@dataclass
class Pieces:
    """A cell's parts, each never broken across lines (`x=6.9e-12(wrong)`, a word), with
    what goes before each when it shares a line with the one before (`"  "`, `" "`, or
    `""` for the value after `name=`). Unlike `tokens`, a part may hold spaces and
    brackets: a user's name is one part whatever it holds."""

    parts: list[tuple[str, Text]]

    @classmethod
    def joined(cls, parts: Iterable[Text], glue: str) -> Pieces:
        return cls([(glue if i else "", part) for i, part in enumerate(parts)])

    @property
    def plain(self) -> str:
        return "".join(glue + part.plain for glue, part in self.parts)

    @property
    def tokens(self) -> list[str]:
        return [part.plain for _, part in self.parts]

    def _groups(self) -> list[list[tuple[str, Text]]]:
        # A part glued on with "" (a value after its `name=`) goes with the one before it
        # onto a new line, unless the two together are wider than the line.
        groups: list[list[tuple[str, Text]]] = []
        for glue, part in self.parts:
            if groups and glue == "":
                groups[-1].append((glue, part))
            else:
                groups.append([(glue, part)])
        return groups

    def wrap(self, width: int) -> Text:
        """The parts, as many on a line as fit `width`; a part wider gets a line of its own."""
        text = Text()
        used = 0
        for group in self._groups():
            size = sum(cell_len(part.plain) for _, part in group)
            if used and used + cell_len(group[0][0]) + size > width and size <= width:
                text.append("\n")  # the whole group on a line of its own
                used = 0
            for glue, part in group:
                if used and used + cell_len(glue) + cell_len(part.plain) <= width:
                    text.append(glue)
                    used += cell_len(glue)
                elif used:
                    text.append("\n")
                    used = 0
                text.append_text(part)
                used += cell_len(part.plain)
        return text


class Trimmed:
    """`renderable` drawn `width` columns wide (the console's when None; more than the
    console's only to keep a name whole), every line without trailing spaces."""

    def __init__(self, renderable: RenderableType, width: int | None = None) -> None:
        self.renderable = renderable
        self.width = width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(self.width or 0, options.max_width)
        drawn = options.update(width=width, no_wrap=False, overflow=None)
        for line in console.render_lines(self.renderable, drawn, pad=False):
            yield from rstrip(line)
            yield Segment.line()


class Grid:
    """A table of columns already fitted (`fit`), drawn as rich's
    `Table(box=SIMPLE_HEAD, show_edge=False, pad_edge=False)` draws it: bold headers
    (bottom-aligned), a rule under them, `gap` spaces between columns, cells top-aligned,
    every line without trailing spaces. Rich's Table measures and renders each cell again
    (most of a cached run's time for a big batch); the widths are known here, so each line
    is only joined.

    Cells are one-line or already wrapped (newlines) to their column; a line still wider
    is cut with an ellipsis, as rich cuts it."""

    def __init__(self, headers: Sequence[str], widths: Sequence[int], gap: int,
                 right: Sequence[bool] | None = None) -> None:
        self.headers = list(headers)
        self.widths = list(widths)
        self.gap = gap
        self.right = list(right) if right is not None else [False] * len(self.widths)
        self.rows: list[list[Text]] = []

    def add_row(self, *cells: Text) -> None:
        self.rows.append(list(cells))

    def _lines(self, cells: Sequence[Text], style: str = "", bottom: bool = False
               ) -> list[Text]:
        columns = [self._cell_lines(cell, width)
                   for cell, width in zip(cells, self.widths)]
        height = max((len(lines) for lines in columns), default=0)
        if bottom:  # rich aligns headers on their last line
            columns = [[Text()] * (height - len(lines)) + lines for lines in columns]
        glue = " " * self.gap
        drawn = []
        for row in range(height):
            line = Text()
            for index, (lines, width) in enumerate(zip(columns, self.widths)):
                if index:
                    line.append(glue)
                part = lines[row] if row < len(lines) else Text()
                room = width - cell_len(part.plain)
                if self.right[index]:
                    line.append(" " * room)
                    line.append_text(part)
                else:
                    line.append_text(part)
                    line.append(" " * room)
            line.rstrip()
            if style:  # as a span: a Text's own style alone is not rendered
                line.stylize(style, 0, len(line))
            drawn.append(line)
        return drawn

    @staticmethod
    def _cell_lines(cell: Text, width: int) -> list[Text]:
        lines = list(cell.split("\n")) if "\n" in cell.plain else [cell]
        for line in lines:
            if cell_len(line.plain) > width:
                line.truncate(width, overflow="ellipsis")
        return lines

    def lines(self) -> list[Text]:
        """The header, the rule and the rows, line by line."""
        headers = [Text("\n".join(wrap(header, width)))
                   for header, width in zip(self.headers, self.widths)]
        rule = Text("─" * span(self.widths, self.gap))
        lines = [*self._lines(headers, "bold", bottom=True), rule]
        for row in self.rows:
            lines.extend(self._lines(row))
        return lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines():
            yield from line.render(console)
            yield Segment.line()


def rstrip(line: list[Segment]) -> list[Segment]:
    """`line` without the spaces at its end (a space with a background colour is drawing)."""
    segments = list(line)
    while segments:
        text, style, control = segments[-1]
        if control or (style is not None and style.bgcolor is not None):
            break
        kept = text.rstrip(" ")
        if kept:
            segments[-1] = Segment(kept, style)
            break
        segments.pop()
    return segments
