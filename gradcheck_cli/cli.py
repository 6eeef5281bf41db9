"""The command line: options (+ project config) -> run -> report -> exit code. Nothing else.

Importing this module must not import torch: `--help`, `--version` and completion stay
instant, and a fully cached run never imports it.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gradcheck_cli import __version__
from gradcheck_cli.errors import GradcheckCliError, UsageError
from gradcheck_cli.quiet import quiet_torch_import

if TYPE_CHECKING:
    from rich.console import Console

    from gradcheck_cli.results import CheckResult, Summary
    from gradcheck_cli.runner import RunOutcome

FORMATS = ("table", "json", "junit", "github")
EXIT_INTERNAL = 3
EXIT_USAGE = 4
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


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--device", "devices", multiple=True, type=click.Choice(["cpu", "cuda"]),
              help="Device to check on (repeatable). Default: cpu, plus cuda when available.")
@click.option("--check", "checks", multiple=True,
              type=click.Choice(["gradcheck", "gradgradcheck", "float32", "capabilities"]),
              help="Check to run (repeatable). Default: gradcheck and gradgradcheck.")
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
@click.option("--mode", type=click.Choice(["auto", "exact", "probe"]), default=None,
              help="exact: full per-input Jacobians; probe: random directions, for big ops; "
                   "auto (default): exact when it fits --max-memory and time.")
@click.option("--max-memory", callback=_memory, default=None, metavar="SIZE",
              help="Memory for Jacobians per check, e.g. 2GB. Default: 1GB, less when "
                   "free memory is short.")
@click.option("-j", "--jobs", callback=_jobs, default=None, metavar="N|auto",
              help="Worker processes (default: auto, one per core; 0: run in this process).")
@click.option("--timeout", type=float, default=None, metavar="SECONDS",
              help="Per-check time limit in worker processes. Default: 120.")
@click.option("--no-cache", is_flag=True, help="Ignore and do not write cached passes.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Where cached passes live. Default: .gradcheck_cache/ in the project root.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Report on stdout: table (default), json, junit, github (annotations "
                   "plus the table).")
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
@click.option("--dodge-kinks", is_flag=True,
              help="Redraw inputs (next seeds) when the only failures sit at kinks.")
@click.option("--save-repro", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Write a standalone torch script per failed check into DIR.")
@click.option("-v", "--verbose", is_flag=True, help="Show full tracebacks for internal errors.")
@click.version_option(__version__, "--version", prog_name="gradcheck-cli")
def command(**kwargs: Any) -> int:
    """Check the hand-written backward of custom torch.autograd.Functions.

    PATHS are .py files (their specs in the specs folder are used, else Functions are
    found and inputs inferred), .yaml specs, or folders (every spec below them).
    `gradcheck-cli init FILE.py` writes a starter spec.

    Exit codes: 0 all passed, 1 a check failed or errored, 2 interrupted,
    3 internal error, 4 usage error, 5 nothing collected.
    """
    from gradcheck_cli.config import find_config

    config = find_config()
    for warning in config.warnings:
        click.echo(f"gradcheck-cli: warning: {warning}", err=True)
    settings = _settings(kwargs, config.values, config.path)
    from gradcheck_cli.collect import collect

    paths = list(kwargs["paths"])
    specs_folder = settings["specs_folder"]
    if not paths:
        if specs_folder is None:
            raise UsageError("give at least one .py file, .yaml spec or folder",
                             hint="e.g. `gradcheck-cli specs/`, or set `specs` under "
                                  "[tool.gradcheck-cli] in pyproject.toml")
        paths = [str(specs_folder)]
    items, notes = collect(paths, kwargs["ignore"], specs_folder=specs_folder)
    for note in notes:
        click.echo(f"gradcheck-cli: {note}", err=True)
    if kwargs["plot"]:
        from gradcheck_cli.report import plot

        plot.require_matplotlib()
    quiet_torch_import()
    from gradcheck_cli.runner import run

    outcome = run(items, settings["options"], **_progress(len(items)))
    if kwargs["plot"]:
        from gradcheck_cli.report import plot

        for path in plot.save(outcome.results, Path(kwargs["plot"])):
            click.echo(f"gradcheck-cli: wrote {path}", err=True)
    if kwargs["save_repro"]:
        from gradcheck_cli.report import repro

        for path in repro.save(outcome.results, Path(kwargs["save_repro"])):
            click.echo(f"gradcheck-cli: wrote {path}", err=True)
    return _report(outcome, settings["format"], kwargs["junit_xml"], settings["allow_empty"],
                   kwargs["show_jacobian"])


def _settings(flags: dict[str, Any], config: dict[str, Any],
              config_path: Path | None) -> dict[str, Any]:
    """Flags win over [tool.gradcheck-cli], which wins over the defaults."""
    from gradcheck_cli.runner import DEFAULT_MAX_MEMORY, DEFAULT_TIMEOUT, RunOptions
    from gradcheck_cli.specfile import ALL_CHECKS

    def pick(flag: Any, key: str, default: Any = None) -> Any:
        if flag not in (None, ()):
            return flag
        return config.get(key, default)

    atol, rtol = pick(flags["atol"], "atol"), pick(flags["rtol"], "rtol")
    for name, value in (("atol", atol), ("rtol", rtol)):
        if value is not None and value < 0:
            raise UsageError(f"--{name} must not be negative")
    eps = pick(flags["eps"], "eps")
    if eps is not None and eps <= 0:
        raise UsageError("--eps must be positive")
    devices = tuple(pick(flags["devices"], "devices", ()) or ()) or None
    checks = tuple(pick(flags["checks"], "checks", ()) or ()) or None
    for device in devices or ():
        if device not in ("cpu", "cuda"):
            raise UsageError(f"unknown device `{device}` in the project config")
    for check in checks or ():
        if check not in ALL_CHECKS:
            raise UsageError(f"unknown check `{check}` in the project config")
    fmt = pick(flags["fmt"], "format", "table")
    if fmt not in FORMATS:
        raise UsageError(f"unknown format `{fmt}` in the project config",
                         hint=f"one of: {', '.join(FORMATS)}")
    jobs = flags["jobs"]
    if jobs is None:
        configured = config.get("jobs", "auto")
        jobs = -1 if configured == "auto" else int(configured)
    root = config_path.parent if config_path else _project_root()
    use_cache = not flags["no_cache"] and config.get("cache", True)
    cache_dir = Path(pick(flags["cache_dir"], "cache_dir", root / ".gradcheck_cache"))
    specs = config.get("specs")
    specs_folder = Path(specs) if specs else (root / "specs" if (root / "specs").is_dir()
                                              else None)
    timeout = float(pick(flags["timeout"], "timeout", DEFAULT_TIMEOUT))
    if timeout <= 0:
        raise UsageError("--timeout must be positive")
    options = RunOptions(
        devices=devices, checks=checks, seed=pick(flags["seed"], "seed"),
        atol=atol, rtol=rtol, eps=eps,
        shape=flags["shape"] or (3, 4), functions=flags["functions"], cases=flags["cases"],
        max_memory=flags["max_memory"] or DEFAULT_MAX_MEMORY,
        mode=flags["mode"] or "auto", jobs=jobs, timeout=timeout,
        cache_dir=cache_dir if use_cache else None,
        float32=flags["float32"], dodge_kinks=flags["dodge_kinks"],
        capabilities=flags["capabilities"],
        keep_jacobians=bool(flags["plot"] or flags["show_jacobian"]),
    )
    allow_empty = flags["allow_empty"] or bool(os.environ.get("PRE_COMMIT"))
    return {"options": options, "format": fmt, "specs_folder": specs_folder,
            "allow_empty": allow_empty}


def _project_root() -> Path:
    """The nearest folder above the working directory holding pyproject.toml or .git."""
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
            return folder
    return here


def _progress(items: int) -> dict[str, Any]:
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


def _report(outcome: RunOutcome, fmt: str, junit_xml: str | None, allow_empty: bool,
            show_jacobian: bool = False) -> int:
    from gradcheck_cli.results import Summary

    results = outcome.results
    summary = Summary.of(results, _elapsed())
    summary.interrupted = outcome.interrupted
    if fmt == "json":
        from gradcheck_cli.report import json as json_report

        click.echo(json_report.render(results, summary))
    elif fmt == "junit":
        from gradcheck_cli.report import junit

        click.echo(junit.render(results, summary))
    else:
        from gradcheck_cli.report import table

        table.render(_console(), results, summary, show_jacobian)
        if fmt == "github":
            from gradcheck_cli.report import github

            for line in github.annotations(results):
                click.echo(line)
    if junit_xml:
        _write_junit(Path(junit_xml), results, summary)
    code = summary.exit_code
    if code == 5 and allow_empty:
        return 0
    return code


def _write_junit(path: Path, results: list[CheckResult], summary: Summary) -> None:
    from gradcheck_cli.report import junit

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(junit.render(results, summary), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the JUnit report: {exc}", file=str(path)) from None


_STARTED: list[float] = []


def _elapsed() -> float:
    import time

    return time.perf_counter() - _STARTED[0] if _STARTED else 0.0


def _console() -> Console:
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=120)
    return console


def invoke(cmd: click.Command, args: list[str], prog: str) -> int:
    """Run a click command the way every gradcheck-cli verb runs: one error path, one exit code.

    Known problems print a short message (4 for usage, else their own code); Ctrl-C gives
    2; anything unexpected says so, with the traceback under -v, and gives 3.
    """
    verbose = "-v" in args or "--verbose" in args
    try:
        code = cmd.main(args=args, prog_name=prog, standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        return EXIT_USAGE
    except click.UsageError as exc:
        exc.show()
        return EXIT_USAGE
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return 2
    except GradcheckCliError as exc:
        click.echo(f"{prog}: error: {exc}", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except Exception as exc:
        click.echo(f"{prog}: unexpected error: {type(exc).__name__}: {exc}", err=True)
        if verbose:
            traceback.print_exc()
        else:
            click.echo("run again with -v for the full traceback, and please report it", err=True)
        return EXIT_INTERNAL
    return int(code or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (pytest's convention)."""
    import time

    _STARTED[:] = [time.perf_counter()]
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "init":
        from gradcheck_cli.scaffold import command as init

        return invoke(init, args[1:], "gradcheck-cli init")
    return invoke(command, args, "gradcheck-cli")
