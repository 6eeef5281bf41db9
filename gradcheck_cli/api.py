"""The Python API: settings, collection, a run and its report, as the CLI and plugin use them.

`import gradcheck_cli` re-exports these names lazily, so importing the package still does
not import torch; a run imports it when something must be checked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradcheck_cli.config import ProjectConfig, find_config
from gradcheck_cli.errors import ExitCode, GradcheckCliError, UsageError
from gradcheck_cli.results import CheckResult, Summary
from gradcheck_cli.settings import RunOptions, Settings, resolve
from gradcheck_cli.specs.collect import Item

__all__ = ["Report", "RunOptions", "Settings", "collect", "make_settings", "run", "run_items"]


@dataclass
class Report:
    """What a run found: every result in order, the summary, and notes for the user."""

    results: list[CheckResult]
    summary: Summary
    notes: list[str] = field(default_factory=list)
    allow_empty: bool = False
    # A Function or case chosen that matches nothing (a typo): the run is a usage error.
    selection_error: GradcheckCliError | None = None

    @property
    def exit_code(self) -> ExitCode:
        """As the command line exits: the summary's code, with "nothing collected" allowed
        where the settings allow it (pre-commit, `allow_empty`); a selection that matches
        nothing is a usage error, even under pre-commit."""
        code = self.summary.exit_code
        if code is ExitCode.NO_CHECKS and self.allow_empty:
            return ExitCode.OK
        return code


def make_settings(config: ProjectConfig | None = None, **choices: Any) -> Settings:
    """Settings from the project config (found from the working directory when not given)
    and `choices` by config key (`devices=("cpu",)`, `checks=("gradcheck",)`, `jobs=0`...)."""
    return resolve(config if config is not None else find_config(), choices)


def collect(paths: Sequence[str | Path], settings: Settings,
            ignore: Sequence[str] = ()) -> tuple[list[Item], list[str]]:
    """What `paths` hold to check, and notes for the user (reading files only).

    No paths means the project's specs folder.
    """
    from gradcheck_cli.specs.collect import collect as collect_paths

    given = [str(p) for p in paths]
    if not given:
        if settings.specs_folder is None:
            raise UsageError("give at least one .py file, .yaml spec or folder",
                             hint="e.g. `gradcheck-cli specs/`, or set `specs` under "
                                  "[tool.gradcheck-cli] in pyproject.toml")
        given = [str(settings.specs_folder)]
    return collect_paths(given, tuple(str(i) for i in ignore),
                         specs_folder=settings.specs_folder)


def run_items(items: list[Item], settings: Settings, *,
              on_start: Callable[[int], None] | None = None,
              on_result: Callable[[CheckResult, int, int], None] | None = None,
              elapsed: Callable[[], float] | None = None) -> Report:
    """Check collected items; Ctrl-C stops cleanly with what finished (summary.interrupted)."""
    import time

    from gradcheck_cli.execution.runner import run as run_all
    from gradcheck_cli.quiet import quiet_torch_import

    started = time.perf_counter()
    quiet_torch_import()
    outcome = run_all(items, settings.options, on_result=on_result, on_start=on_start)
    duration = elapsed() if elapsed is not None else time.perf_counter() - started
    summary = Summary.of(outcome.results, duration)
    summary.interrupted = outcome.interrupted
    summary.signal = outcome.signal
    if outcome.selection_error is not None:
        summary.selection_error = str(outcome.selection_error)
    return Report(outcome.results, summary, allow_empty=settings.allow_empty,
                  selection_error=outcome.selection_error)


def run(paths: Sequence[str | Path] = (), settings: Settings | None = None, *,
        ignore: Sequence[str] = ()) -> Report:
    """Collect `paths` and check them: `gradcheck-cli PATHS` without the printing."""
    settings = settings if settings is not None else make_settings()
    items, notes = collect(paths, settings, ignore)
    report = run_items(items, settings)
    report.notes = notes
    return report
