"""Where a result points in the user's files, as a (path, line, column) triple."""

from __future__ import annotations

from typing import NamedTuple

from gradcheck_cli.results import CheckResult


class Position(NamedTuple):
    """A file and, where known, a 1-based line and column in it."""

    path: str
    line: int | None = None
    column: int | None = None


def split_location(location: str) -> Position:
    """`ops/op.py:15` or `spec.yaml:3:7` -> its parts; a bare path keeps line None.

    Splits from the right, so Windows paths (`C:\\ops\\op.py:15`) keep their drive.
    """
    numbers: list[int] = []
    path = location
    while len(numbers) < 2:
        head, sep, tail = path.rpartition(":")
        if not sep or not head or not tail.isdigit():
            break
        numbers.insert(0, int(tail))
        path = head
    line = numbers[0] if numbers else None
    column = numbers[1] if len(numbers) > 1 else None
    return Position(path, line, column)


def position(result: CheckResult) -> Position | None:
    """The result's `location` when it has one, else its spec (or module) file, else None."""
    if result.location:
        return split_location(result.location)
    where = result.spec or result.module
    return Position(where) if where else None
