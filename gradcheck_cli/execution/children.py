"""Processes the user's code started in this process (in-process runs): found and ended.

Workers run in their own process group, which the pool kills; a run in this process
(`-j 0`, the pytest plugin) cannot kill its own group, so it ends the processes that
appeared below it while a job ran (Linux: read from /proc; elsewhere nothing is done).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process /proc shows (empty where there is no /proc)."""
    found: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields follow the last ')'.
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[1].isdigit():
            found[int(entry.name)] = int(fields[1])
    return found


def descendants(pid: int | None = None) -> set[int]:
    """The processes below `pid` (this process by default), children's children too."""
    parents = _parents()
    below: set[int] = set()
    frontier = {os.getpid() if pid is None else pid}
    while frontier:
        frontier = {child for child, parent in parents.items()
                    if parent in frontier and child not in below}
        below |= frontier
    return below


@contextlib.contextmanager
def ended_after() -> Iterator[None]:
    """Kill the processes that appear below this one while the block runs, however it
    ends: a `sleep 300` the op started must not keep the run's piped output open."""
    before = descendants()
    try:
        yield
    finally:
        for pid in descendants() - before:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
