"""How the results table fits the console: what it wraps, abbreviates or drops, in which order.

The table is as wide as the console (`layout.output_width`: COLUMNS, else the terminal's
width, else 120) and never splits a word, a name or a number across lines. First the
cells that can wrap do, between their entries only: the max-error cell between
`w=1.2(wrong)` and `x=...`, a status between `passed` and `(cached)`, a skip reason
between words. When the columns at their narrowest still do not fit, the table gives up,
in this order, until they do:

1. the gaps between columns narrow from 3 spaces to 2;
2. Device goes, when every row has the same device;
3. Case goes, when every row has the same case (say, all `default`);
4. check names lose their `check` ending (`gradcheck` -> `grad`, `gradgradcheck` -> `gradgrad`);
5. Case joins Function, as in a result's id: `ScaleBy[negative]` (`default` left out);
6. Spec names are shortened from the left, down to 10 columns (`…oken.yaml`);
7. Spec goes, when every row has the same spec;
8. Time goes;
9. Spec goes.

Function, Status and the max errors always stay, whole. Only when they alone are wider
than the console (a console under about 60 columns, or a very long name) does the table
run past the edge, rather than cut a name. Space left over goes back, in order, to
Status, Spec and the max errors. The failure headings and the `reproduce:` lines under
the table are never wrapped: they are copied and pasted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rich import box
from rich.table import Table
from rich.text import Text

from gradcheck_cli.report.layout import Column, fit, shorten_path, span, wrap_text

SPEC, FUNCTION, CASE, DEVICE, CHECK, STATUS, ERRORS, TIME = (
    "Spec", "Function", "Case", "Device", "Check", "Status", "Max error per input", "Time")
NAMES = (SPEC, FUNCTION, CASE, DEVICE, CHECK, STATUS, ERRORS, TIME)
BREAKABLE = (STATUS, ERRORS)
GROW = (STATUS, SPEC, ERRORS)  # who gets the space left over, first to last
HEADERS: dict[str, tuple[str, ...]] = {ERRORS: (ERRORS, "Max error")}
SPEC_FLOOR = 10


@dataclass
class Row:
    """One result's cells, as plain strings except the styled status and errors."""

    cells: dict[str, str]
    status: Text
    errors: Text


@dataclass
class Plan:
    """The table as the steps so far left it: columns kept, gap, abbreviations."""

    names: list[str] = field(default_factory=lambda: list(NAMES))
    gap: int = 3
    short_checks: bool = False
    spec_floor: int | None = None
    case_in_function: bool = False


def short_check(name: str) -> str:
    """`gradcheck` -> `grad`, `gradgradcheck` -> `gradgrad`; other names as they are."""
    return name[:-len("check")] if name.endswith("check") and name != "check" else name


def _value(row: Row, name: str, plan: Plan) -> str:
    value = row.cells[name]
    if name == CHECK and plan.short_checks:
        return short_check(value)
    if name == FUNCTION and plan.case_in_function and row.cells[CASE] not in ("default", "-"):
        return f"{value}[{row.cells[CASE]}]"
    return value


def _plain(rows: Sequence[Row], name: str, plan: Plan) -> list[str]:
    if name == STATUS:
        return [r.status.plain for r in rows]
    if name == ERRORS:
        return [r.errors.plain for r in rows]
    return [_value(r, name, plan) for r in rows]


def columns(rows: Sequence[Row], plan: Plan) -> list[Column]:
    return [Column(HEADERS.get(name, (name,)), _plain(rows, name, plan), name in BREAKABLE,
                   plan.spec_floor if name == SPEC else None)
            for name in plan.names]


def _uniform(values: Sequence[str]) -> bool:
    # `-` stands for "no check ran": it does not make a column informative.
    return len({v for v in values if v != "-"}) <= 1


def _narrow_gaps(plan: Plan, rows: Sequence[Row]) -> None:
    plan.gap = 2


def _drop_when_uniform(name: str) -> Callable[[Plan, Sequence[Row]], None]:
    def step(plan: Plan, rows: Sequence[Row]) -> None:
        if name in plan.names and _uniform([r.cells[name] for r in rows]):
            plan.names.remove(name)
    return step


def _short_checks(plan: Plan, rows: Sequence[Row]) -> None:
    plan.short_checks = True


def _shorten_specs(plan: Plan, rows: Sequence[Row]) -> None:
    plan.spec_floor = SPEC_FLOOR


def _drop(name: str) -> Callable[[Plan, Sequence[Row]], None]:
    def step(plan: Plan, rows: Sequence[Row]) -> None:
        if name in plan.names:
            plan.names.remove(name)
    return step


def _case_in_function(plan: Plan, rows: Sequence[Row]) -> None:
    if CASE in plan.names:
        plan.names.remove(CASE)
        plan.case_in_function = True


# The order the module's docstring (and the README) gives: change both together.
STEPS = (_narrow_gaps, _drop_when_uniform(DEVICE), _drop_when_uniform(CASE), _short_checks,
         _case_in_function, _shorten_specs, _drop_when_uniform(SPEC), _drop(TIME), _drop(SPEC))


def plan_for(rows: Sequence[Row], width: int) -> Plan:
    """The first plan, along STEPS, whose columns fit `width` at their narrowest."""
    plan = Plan()
    for step in STEPS:
        if span([c.least for c in columns(rows, plan)], plan.gap) <= width:
            break
        step(plan, rows)
    return plan


def results_table(rows: Sequence[Row], width: int) -> tuple[Table, int]:
    """The table of `rows` fitted to `width`, and the width it needs (more than `width`
    only when its narrowest form is wider)."""
    plan = plan_for(rows, width)
    fitted = columns(rows, plan)
    grow = [plan.names.index(n) for n in GROW if n in plan.names]
    widths = fit(fitted, width, plan.gap, grow)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False,
                  padding=(0, 1) if plan.gap == 3 else (0, 1, 0, 0))
    for name, column, size in zip(plan.names, fitted, widths):
        table.add_column(column.header(size), width=size, no_wrap=name not in BREAKABLE,
                         justify="right" if name == TIME else "left")
    for row in rows:
        table.add_row(*(_cell(row, name, plan, size) for name, size in zip(plan.names, widths)))
    return table, span(widths, plan.gap)


def _cell(row: Row, name: str, plan: Plan, width: int) -> Text:
    if name == STATUS:
        return wrap_text(row.status, width)
    if name == ERRORS:
        return wrap_text(row.errors, width)
    value = _value(row, name, plan)
    # Text, not str: a str cell is read as markup, and `ScaleBy[negative]` would lose its case.
    return Text(shorten_path(value, width) if name == SPEC else value)
