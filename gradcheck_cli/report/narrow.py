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
4. check names lose their `check` ending (`gradcheck` -> `grad`, `gradgradcheck` -> `gradgrad`),
   and a status's `(reference)` becomes `(ref)`;
5. Case joins Function, as in a result's id: `ScaleBy[negative]` (`default` left out);
6. Spec names are shortened from the left, down to 10 columns (`…oken.yaml`);
7. Spec goes, when every row has the same spec;
8. Time goes;
9. Spec goes, when the rows still tell results apart without it (by Function, case,
   device and check); else it stays, shortened;
10. an entry of the max errors may break after its `=`: `grad_output=` above `2e-10`;
11. Function names (with their case) are shortened in the middle, down to 8 columns
    (`MulA…pped`, `Sca…[neg…]`).

Function, Check, Status and the max errors always stay, and no number or input name is
ever split. Only when they are wider than the console at their narrowest (a console under
about 45 columns, or long input names) does the table run past the edge, rather than cut
a number. Space left over goes back, in order, to Status, Spec and the max errors. The
failure headings and the `reproduce:` lines under the table are never wrapped: they are
copied and pasted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.text import Text

from gradcheck_cli.report.layout import (
    Column,
    Grid,
    Pieces,
    fit,
    shorten_middle,
    shorten_path,
    span,
)

SPEC, FUNCTION, CASE, DEVICE, CHECK, STATUS, ERRORS, TIME = (
    "Spec", "Function", "Case", "Device", "Check", "Status", "Max error per input", "Time")
NAMES = (SPEC, FUNCTION, CASE, DEVICE, CHECK, STATUS, ERRORS, TIME)
BREAKABLE = (STATUS, ERRORS)
GROW = (STATUS, SPEC, ERRORS)  # who gets the space left over, first to last
HEADERS: dict[str, tuple[str, ...]] = {ERRORS: (ERRORS, "Max error")}
SPEC_FLOOR = 10
FUNCTION_FLOOR = 8  # as wide as the header


@dataclass
class Row:
    """One result's cells, as plain strings except the styled status and errors (parts
    that never break: whole entries, and the same entries split after their `=`)."""

    cells: dict[str, str]
    status: Pieces
    errors: Pieces
    errors_split: Pieces | None = None


@dataclass
class Plan:
    """The table as the steps so far left it: columns kept, gap, abbreviations."""

    names: list[str] = field(default_factory=lambda: list(NAMES))
    gap: int = 3
    short_checks: bool = False
    spec_floor: int | None = None
    case_in_function: bool = False
    split_entries: bool = False
    function_floor: int | None = None


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


def _pieces(row: Row, name: str, plan: Plan) -> Pieces:
    if name == STATUS:
        if not plan.short_checks:
            return row.status
        return Pieces([(glue, Text("(ref)", style=part.style) if part.plain == "(reference)"
                        else part) for glue, part in row.status.parts])
    if plan.split_entries and row.errors_split is not None:
        return row.errors_split
    return row.errors


def _floor(name: str, plan: Plan) -> int | None:
    return {SPEC: plan.spec_floor, FUNCTION: plan.function_floor}.get(name)


def columns(rows: Sequence[Row], plan: Plan) -> list[Column]:
    fitted = []
    for name in plan.names:
        headers = HEADERS.get(name, (name,))
        if name in BREAKABLE:
            pieces = [_pieces(r, name, plan) for r in rows]
            fitted.append(Column(headers, [p.plain for p in pieces], True,
                                 tokens=[p.tokens for p in pieces]))
        else:
            fitted.append(Column(headers, [_value(r, name, plan) for r in rows],
                                 floor=_floor(name, plan)))
    return fitted


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


def _drop_spec_if_distinct(plan: Plan, rows: Sequence[Row]) -> None:
    # Ten specs of one Function would give ten rows alike without their Spec: keep it.
    keys = [tuple(r.cells[n] for n in (FUNCTION, CASE, DEVICE, CHECK)) for r in rows]
    if SPEC in plan.names and len(set(keys)) == len(keys):
        plan.names.remove(SPEC)


def _split_entries(plan: Plan, rows: Sequence[Row]) -> None:
    plan.split_entries = True


def _shorten_functions(plan: Plan, rows: Sequence[Row]) -> None:
    plan.function_floor = FUNCTION_FLOOR


def _case_in_function(plan: Plan, rows: Sequence[Row]) -> None:
    if CASE in plan.names:
        plan.names.remove(CASE)
        plan.case_in_function = True


# The order the module's docstring (and the README) gives: change both together.
STEPS = (_narrow_gaps, _drop_when_uniform(DEVICE), _drop_when_uniform(CASE), _short_checks,
         _case_in_function, _shorten_specs, _drop_when_uniform(SPEC), _drop(TIME),
         _drop_spec_if_distinct, _split_entries, _shorten_functions)


def plan_for(rows: Sequence[Row], width: int) -> Plan:
    """The first plan, along STEPS, whose columns fit `width` at their narrowest."""
    plan = Plan()
    for step in STEPS:
        if span([c.least for c in columns(rows, plan)], plan.gap) <= width:
            break
        step(plan, rows)
    return plan


def results_table(rows: Sequence[Row], width: int) -> Grid:
    """The table of `rows` fitted to `width` (wider only when its narrowest form is)."""
    plan = plan_for(rows, width)
    fitted = columns(rows, plan)
    grow = [plan.names.index(n) for n in GROW if n in plan.names]
    widths = fit(fitted, width, plan.gap, grow)
    table = Grid([column.header(size) for column, size in zip(fitted, widths)], widths,
                 plan.gap, right=[name == TIME for name in plan.names])
    for row in rows:
        table.add_row(*(_cell(row, name, plan, size) for name, size in zip(plan.names, widths)))
    return table


def shorten_function(function: str, case: str | None, width: int) -> str:
    """`function`, or `function[case]`, in `width` columns: each part shortened in the
    middle, the case given what the function leaves (and the other way round)."""
    if case is None:
        return shorten_middle(function, width)
    if cell_len(function) + cell_len(case) + 2 <= width:
        return f"{function}[{case}]"
    room = max(width - 2, 2)
    name = shorten_middle(function, max(room // 2, room - cell_len(case), 1))
    return f"{name}[{shorten_middle(case, max(room - cell_len(name), 1))}]"


def _cell(row: Row, name: str, plan: Plan, width: int) -> Text:
    if name in BREAKABLE:
        return _pieces(row, name, plan).wrap(width)
    value = _value(row, name, plan)
    if name == SPEC:
        value = shorten_path(value, width)
    elif name == FUNCTION and cell_len(value) > width:
        case = row.cells[CASE]
        joined = plan.case_in_function and case not in ("default", "-")
        value = shorten_function(row.cells[FUNCTION], case if joined else None, width)
    # Text, not str: a str cell is read as markup, and `ScaleBy[negative]` would lose its case.
    return Text(value)
