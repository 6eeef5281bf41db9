"""The progress bar: on stderr in a terminal (never in CI logs), fed as results finish."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradcheck_cli.results import CheckResult


def progress_hooks(items: int) -> dict[str, Any]:
    """A progress bar on stderr in a terminal (never in CI logs), fed as results finish."""
    if items == 0 or not sys.stderr.isatty() or os.environ.get("CI"):
        return {}
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    progress = Progress(TextColumn("checking"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.description}"), console=Console(stderr=True),
                        transient=True)
    state: dict[str, Any] = {}

    def on_start(total: int) -> None:
        progress.start()
        state["task"] = progress.add_task("", total=total)

    def on_result(result: CheckResult, done: int, total: int) -> None:
        if "task" in state:
            progress.update(state["task"], completed=done, total=total,
                            description=f"{result.function or ''} {result.status.value}")
            if done >= total:
                progress.stop()

    import atexit

    atexit.register(progress.stop)
    return {"on_start": on_start, "on_result": on_result}
