"""The progress bar: on stderr in a terminal (never in CI logs), fed as results finish."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradcheck_cli.results import CheckResult


class ProgressBar:
    """A progress bar on stderr in a terminal (never in CI logs), fed as results finish.

    `stop()` clears it; the command calls it before printing the report, so that an
    interrupted run's report is not drawn over (and again at exit, in case).
    """

    def __init__(self, items: int) -> None:
        self.bar: Any = None
        self.task: Any = None
        if items == 0 or not sys.stderr.isatty() or os.environ.get("CI"):
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.bar = Progress(TextColumn("checking"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.description}"), console=Console(stderr=True),
                            transient=True)
        import atexit

        atexit.register(self.stop)

    def hooks(self) -> dict[str, Any]:
        """The run's `on_start` and `on_result` callbacks (none without a bar)."""
        if self.bar is None:
            return {}
        return {"on_start": self.on_start, "on_result": self.on_result}

    def on_start(self, total: int) -> None:
        self.bar.start()
        self.task = self.bar.add_task("", total=total)

    def on_result(self, result: CheckResult, done: int, total: int) -> None:
        if self.task is not None:
            self.bar.update(self.task, completed=done, total=total,
                            description=f"{result.function or ''} {result.status.value}")
            if done >= total:
                self.stop()

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
