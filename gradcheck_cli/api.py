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

__all__ = ["Report", "RunOptions", "Settings", "assert_gradients", "check", "collect",
           "make_settings", "run", "run_items"]


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
    def passed(self) -> bool:
        """Whether no check failed or errored and at least one passed: a report of skips
        only checked nothing."""
        return self.exit_code is ExitCode.OK and self.summary.passed > 0

    def text(self, width: int = 100, color: bool = False) -> str:
        """The report as the command line's table shows it (failures with their details)."""
        import io

        from rich.console import Console

        from gradcheck_cli.report import ReportOptions
        from gradcheck_cli.report.table import write

        out = io.StringIO()
        console = Console(file=out, width=width, highlight=False, force_terminal=color,
                          color_system="standard" if color else None)
        write(console, self.results, ReportOptions(self.summary, out))
        return out.getvalue()

    def __str__(self) -> str:
        return self.text()

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.text import Text

        yield Text.from_ansi(self.text(width=options.max_width,
                                       color=console.color_system is not None))

    def _repr_markdown_(self) -> str:
        from gradcheck_cli.report import name_advice
        from gradcheck_cli.report.markdown import document

        return document(self.results, self.summary, name_advice)

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


def check(target: Any, *args: Any, dtype: Any = "float64", kwargs: dict[str, Any] | None = None,
          checks: Sequence[str] | str | None = None, devices: Sequence[str] | str | None = None,
          atol: float | None = None, rtol: float | None = None, eps: float | None = None,
          mode: str | None = None, seed: int | None = None, float32: bool | None = None,
          capabilities: bool | None = None, max_memory: int | None = None,
          dodge_kinks: bool | None = None, **target_kwargs: Any) -> Report:
    """Check `target` (an autograd Function subclass, a custom op, an nn.Module or a
    callable) on these arguments in this process, as the command line checks a spec.

    Tensors are cloned; floating ones are converted to `dtype` (float64 unless you say
    otherwise; None keeps theirs). If none of them requires grad every floating tensor is
    checked, else only those that do. Lists and tuples of tensors are passed as lists,
    each tensor checked (named `xs[1]`); keyword arguments are passed by name. The options
    are the command line's (`checks=("gradcheck",)`, `devices="cpu"`, `atol=1e-6`,
    `mode="exact"`, ...), over the project's `[tool.gradcheck-cli]` config; an argument of
    the op named like one of them goes through `kwargs={...}`.
    """
    import time

    from gradcheck_cli.execution.direct import check_object
    from gradcheck_cli.quiet import quiet_torch_import
    from gradcheck_cli.target.objects import target_of

    started = time.perf_counter()
    quiet_torch_import()
    import torch

    chosen = {"checks": (checks,) if isinstance(checks, str) else checks,
              "devices": (devices,) if isinstance(devices, str) else devices,
              "atol": atol, "rtol": rtol, "eps": eps, "mode": mode, "seed": seed,
              "float32": float32, "capabilities": capabilities, "max_memory": max_memory,
              "dodge_kinks": dodge_kinks}
    _validate(chosen)
    given: dict[str, Any] = {k: v for k, v in chosen.items() if v is not None}
    settings = make_settings(None, **given, jobs=0, cache=False)
    if isinstance(dtype, str):
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}: e.g. dtype=torch.float64")
        dtype = getattr(torch, dtype)
    keywords = {**(kwargs or {}), **target_kwargs}
    results = check_object(target_of(target), args, keywords, settings.options, dtype)
    return Report(results, Summary.of(results, time.perf_counter() - started))


def _validate(chosen: dict[str, Any]) -> None:
    """A ValueError naming a mistyped option value (the command line's choices say it there)."""
    from gradcheck_cli.engine.checks import check_names
    from gradcheck_cli.errors import did_you_mean
    from gradcheck_cli.settings import DEVICES, MODES

    def bad(what: str, value: Any, allowed: Sequence[str]) -> ValueError:
        hint = did_you_mean(str(value), tuple(allowed)) or f"one of: {', '.join(allowed)}"
        return ValueError(f"unknown {what} {value!r}: {hint}")

    if chosen["mode"] is not None and chosen["mode"] not in MODES:
        raise bad("mode", chosen["mode"], MODES)
    for name in chosen["checks"] or ():
        if name not in check_names():
            raise bad("check", name, check_names())
    for device in chosen["devices"] or ():
        if str(device).split(":")[0] not in DEVICES:
            raise bad("device", device, DEVICES)


def assert_gradients(target: Any, *args: Any, **options: Any) -> Report:
    """`check(...)`, raising AssertionError whose text is the report (the per-input table
    and each failure's diagnosis) unless every check passed; the report otherwise."""
    report = check(target, *args, **options)
    if report.passed:
        return report
    if report.exit_code is ExitCode.OK:  # every check skipped
        reasons = "; ".join(dict.fromkeys(r.message for r in report.results)) or "no checks"
        raise AssertionError(f"nothing was checked for {_shown_name(target)}: {reasons}")
    raise AssertionError("gradients of " + _shown_name(target) + " are not right:\n"
                         + report.text())


def _shown_name(target: Any) -> str:
    return str(getattr(target, "__name__", None) or getattr(target, "_name", None)
               or type(target).__name__)
