"""The command line: options (+ project config) -> run -> report -> exit code. Nothing else.

Importing this module must not import torch: `--help`, `--version` and completion stay
instant, and a fully cached run never imports it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gradcheck_cli.cli.advice import advise
from gradcheck_cli.cli.handler import elapsed
from gradcheck_cli.cli.progress import ProgressBar
from gradcheck_cli.engine.checks import CHECKS, default_checks
from gradcheck_cli.errors import UsageError
from gradcheck_cli.quiet import quiet_torch_import
from gradcheck_cli.report import REPORTERS
from gradcheck_cli.settings import DEVICES, MODES, parse_shard
from gradcheck_cli.version import __version__

if TYPE_CHECKING:

    from gradcheck_cli.api import Report
    from gradcheck_cli.results import CheckResult, Summary
    from gradcheck_cli.settings import Settings

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
          "g": 1 << 30, "gb": 1 << 30, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}


def _shape(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        shape = tuple(int(part) for part in value.replace("x", ",").split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a shape; write it like 2,5") from None
    if any(n < 0 for n in shape):
        raise click.BadParameter("sizes must be non-negative")
    return shape


def _memory(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip().lower().replace(" ", "")
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number):]
    try:
        amount = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        raise click.BadParameter(f"{value!r} is not a size; write it like 2GB or 500MB") from None
    if amount <= 0:
        raise click.BadParameter("must be positive")
    return int(amount)


def _jobs(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    if value == "auto":
        return -1
    try:
        jobs = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give a number of worker processes or auto") from None
    if jobs < 0:
        raise click.BadParameter("must be 0 (in this process), a positive number, or auto")
    return jobs


def _shard(ctx: click.Context, param: click.Parameter, value: str | None
           ) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        return parse_shard(value, "")
    except UsageError as exc:
        raise click.BadParameter(f"{value!r} is not a shard; write I/N, the I-th of N "
                                 "shards (1 <= I <= N), e.g. 2/4") from exc


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--device", "devices", multiple=True, type=click.Choice(DEVICES),
              help="Device to check on (repeatable). Default: cpu, plus cuda when available.")
@click.option("--check", "checks", multiple=True,
              type=click.Choice(tuple(CHECKS)),
              help=f"Check to run (repeatable). Default: {' and '.join(default_checks())}; "
                   "custom ops add opcheck's tests; "
                   f"{', '.join(k.name for k in CHECKS.values() if k.default_when)} join "
                   "where the source or the spec's inputs call for them.")
@click.option("--seed", type=int, default=None,
              help="Seed for inputs and grad_outputs. Default: the spec's, else 0.")
@click.option("--atol", type=float, default=None, help="Absolute tolerance (overrides specs).")
@click.option("--rtol", type=float, default=None, help="Relative tolerance (overrides specs).")
@click.option("--eps", type=float, default=None,
              help="Finite-difference step (overrides specs).")
@click.option("--shape", callback=_shape, default=None, metavar="N,M",
              help="Shape of inferred tensor inputs for a .py without spec. Default: 3,4.")
@click.option("--function", "-k", "functions", multiple=True, metavar="NAME",
              help="Only check this Function (repeatable).")
@click.option("--case", "cases", multiple=True, metavar="NAME",
              help="Only check this case (repeatable).")
@click.option("--ignore", "ignore", multiple=True, type=click.Path(), metavar="PATH",
              help="Leave out this file or folder (repeatable).")
@click.option("--mode", type=click.Choice(MODES), default=None,
              help="reference: backward against autograd through forward (Functions); "
                   "exact: full per-input Jacobians; probe: random directions, for big ops; "
                   "auto (default): reference where it applies, else exact when it fits "
                   "--max-memory and time, else probe.")
@click.option("--max-memory", callback=_memory, default=None, metavar="SIZE",
              help="Memory for Jacobians per check, e.g. 2GB. Default: 1GB, less when "
                   "free memory is short.")
@click.option("-j", "--jobs", callback=_jobs, default=None, metavar="N|auto",
              help="Worker processes (default: auto, one per core; 0: run in this process).")
@click.option("--timeout", type=float, default=None, metavar="SECONDS",
              help="Per-check time limit in worker processes. Default: 120.")
@click.option("--shard", callback=_shard, default=None, metavar="I/N",
              help="Run only the I-th of N shards of the checks (1-based), balanced by "
                   "expected duration; `gradcheck-cli merge` combines the shards' JSON "
                   "reports.")
@click.option("--no-cache", is_flag=True, help="Ignore and do not write cached passes.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Where cached passes live. Default: .gradcheck_cache/ in the project root.")
@click.option("--format", "fmt", type=click.Choice(tuple(REPORTERS)), default=None,
              help="Report on stdout: " + "; ".join(
                  f"{r.name} ({r.summary})" for r in REPORTERS.values()) + ". Default: table.")
@click.option("--junit-xml", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Also write a JUnit XML report to FILE.")
@click.option("--allow-empty", is_flag=True,
              help="Exit 0 when nothing is collected (set automatically under pre-commit).")
@click.option("--capabilities", is_flag=True,
              help="Also show which autograd features each Function supports and which work.")
@click.option("--plot", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Write PNG heatmaps (numerical, analytical, difference) of each failing "
                   "input's Jacobian into DIR (needs matplotlib: gradcheck-cli[plot]).")
@click.option("--show-jacobian", is_flag=True,
              help="Draw the difference Jacobian of failing inputs in the terminal.")
@click.option("--float32", is_flag=True,
              help="Also check float32 gradients against float64 ones (precision loss).")
@click.option("--dtype", "dtypes", type=click.Choice(("bfloat16", "float16")), multiple=True,
              help="Also check the op in this dtype against float64 (repeatable; no "
                   "finite differences in 16 bits).")
@click.option("--dodge-kinks", is_flag=True,
              help="Redraw inputs (next seeds) when the only failures sit at kinks.")
@click.option("--save-repro", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Write a standalone torch script per failed check into DIR.")
@click.option("-q", "--quiet", count=True,
              help="-q: only failures and the summary line; -qq: the summary line only.")
@click.option("-v", "--verbose", is_flag=True, help="Show full tracebacks for internal errors.")
@click.version_option(__version__, "--version", prog_name="gradcheck-cli")
def command(**kwargs: Any) -> int:
    """Check the hand-written backward of custom torch.autograd.Functions.

    PATHS are .py files (their specs in the specs folder are used, else Functions are
    found and inputs inferred), .yaml specs, or folders (every spec below them).
    `gradcheck-cli init FILE.py` writes a starter spec; `gradcheck-cli merge REPORT.json...`
    combines the JSON reports of shards.

    Exit codes: 0 all passed, 1 a check failed or errored, 2 interrupted
    (129 SIGHUP, 143 SIGTERM), 3 internal error, 4 usage error, 5 nothing collected.
    """
    from gradcheck_cli import api
    from gradcheck_cli.config import find_config
    from gradcheck_cli.report.safe import printable, printable_lines

    config = find_config()
    for warning in config.warnings:
        click.echo(f"gradcheck-cli: warning: {printable(warning)}", err=True)
    settings = api.make_settings(config, **choices(kwargs))
    items, notes = api.collect(kwargs["paths"], settings, kwargs["ignore"])
    for note in notes:
        click.echo(f"gradcheck-cli: {printable(str(note))}", err=True)
    if kwargs["plot"]:
        from gradcheck_cli.report import plot

        plot.require_matplotlib()
    quiet_torch_import()
    bar = ProgressBar(len(items))
    try:
        report = api.run_items(items, settings, elapsed=elapsed, **bar.hooks())
    finally:
        bar.stop()
    if kwargs["plot"]:
        from gradcheck_cli.report import plot

        for path in plot.save(report.results, Path(kwargs["plot"])):
            click.echo(f"gradcheck-cli: wrote {printable(str(path))}", err=True)
    if kwargs["save_repro"]:
        from gradcheck_cli.report import repro

        for path in repro.save(report.results, Path(kwargs["save_repro"])):
            click.echo(f"gradcheck-cli: wrote {printable(str(path))}", err=True)
    write_reports(report, settings, kwargs["junit_xml"], kwargs["show_jacobian"])
    if report.selection_error is not None:
        click.echo(f"gradcheck-cli: error: {printable_lines(str(report.selection_error))}",
                   err=True)
    return int(report.exit_code)


def choices(flags: dict[str, Any]) -> dict[str, Any]:
    """The flags given, by project-config key (None: not given, the config decides)."""
    return {
        "devices": flags["devices"], "checks": flags["checks"], "seed": flags["seed"],
        "atol": flags["atol"], "rtol": flags["rtol"], "eps": flags["eps"],
        "shape": flags["shape"], "functions": flags["functions"], "cases": flags["cases"],
        "max_memory": flags["max_memory"], "mode": flags["mode"], "jobs": flags["jobs"],
        "timeout": flags["timeout"], "cache": False if flags["no_cache"] else None,
        "cache_dir": flags["cache_dir"], "format": flags["fmt"], "float32": flags["float32"],
        "bfloat16": "bfloat16" in flags["dtypes"], "float16": "float16" in flags["dtypes"],
        "dodge_kinks": flags["dodge_kinks"], "capabilities": flags["capabilities"],
        "keep_jacobians": bool(flags["plot"] or flags["show_jacobian"]),
        "allow_empty": flags["allow_empty"], "shard": flags["shard"], "quiet": flags["quiet"],
    }


def write_reports(report: Report, settings: Settings, junit_xml: str | None,
                  show_jacobian: bool = False) -> None:
    """The report on stdout in the chosen format, the JUnit file if asked for, and (for
    the github format, under GitHub Actions) the job summary."""
    from gradcheck_cli.report import ReportOptions, render

    render(settings.format, report.results,
           ReportOptions(report.summary, sys.stdout, show_jacobian, advise=advise,
                         quiet=settings.quiet))
    sys.stdout.flush()
    if junit_xml:
        _write_junit(Path(junit_xml), report.results, report.summary)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if settings.format == "github" and step_summary:
        _write_step_summary(Path(step_summary), report)


def _write_step_summary(path: Path, report: Report) -> None:
    """Add the failures and their reproduce commands to the GitHub Actions job summary (a
    file GitHub renders as markdown; each step appends to it)."""
    from gradcheck_cli.report import github
    from gradcheck_cli.report.safe import printable

    try:
        with path.open("a", encoding="utf-8") as out:
            out.write(github.job_summary(report.results, report.summary, advise) + "\n")
    except OSError as exc:
        click.echo(f"gradcheck-cli: warning: cannot write the job summary to "
                   f"{printable(str(path))}: {exc.strerror}; the report above is whole",
                   err=True)


def _write_junit(path: Path, results: list[CheckResult], summary: Summary) -> None:
    from gradcheck_cli.report import junit

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(junit.document(results, summary, advise), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the JUnit report: {exc}", file=str(path)) from None
