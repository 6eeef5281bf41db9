"""The command line: options -> run -> report -> exit code. Nothing else lives here.

Importing this module must not import torch: `--help` and `--version` stay instant.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from gradcheck_cli import __version__

if TYPE_CHECKING:
    from rich.console import Console
from gradcheck_cli.errors import GradcheckCliError, UsageError

FORMATS = ("table", "json")
EXIT_INTERNAL = 3
EXIT_USAGE = 4


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


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--device", "devices", multiple=True, type=click.Choice(["cpu", "cuda"]),
              help="Device to check on (repeatable). Default: cpu, plus cuda when available.")
@click.option("--check", "checks", multiple=True,
              type=click.Choice(["gradcheck", "gradgradcheck"]),
              help="Check to run (repeatable). Default: both.")
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
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="Report format on stdout.")
@click.option("-v", "--verbose", is_flag=True, help="Show full tracebacks for internal errors.")
@click.version_option(__version__, "--version", prog_name="gradcheck-cli")
def command(paths: tuple[str, ...], devices: tuple[str, ...], checks: tuple[str, ...],
            seed: int | None, atol: float | None, rtol: float | None, eps: float | None,
            shape: tuple[int, ...] | None, functions: tuple[str, ...], cases: tuple[str, ...],
            ignore: tuple[str, ...], fmt: str, verbose: bool) -> int:
    """Check the hand-written backward of custom torch.autograd.Functions.

    PATHS are .py files (Functions found, inputs inferred), .yaml specs, or folders
    (every spec below them).

    Exit codes: 0 all passed, 1 a check failed or errored, 2 interrupted,
    3 internal error, 4 usage error, 5 nothing collected.
    """
    from gradcheck_cli.collect import collect

    if not paths:
        raise UsageError("give at least one .py file, .yaml spec or folder",
                         hint="e.g. `gradcheck-cli specs/`")
    items = collect(list(paths), ignore)
    for value, name in ((atol, "--atol"), (rtol, "--rtol")):
        if value is not None and value < 0:
            raise UsageError(f"{name} must not be negative")
    if eps is not None and eps <= 0:
        raise UsageError("--eps must be positive")
    _quiet_torch_import()
    from gradcheck_cli.runner import RunOptions, run

    options = RunOptions(
        devices=devices or None, checks=checks or None, seed=seed, atol=atol, rtol=rtol,
        eps=eps, shape=shape or (3, 4), functions=functions, cases=cases,
    )
    return _report(run(items, options), fmt)


def _quiet_torch_import() -> None:
    # torch warns at import when numpy is missing; numpy is not needed to check gradients.
    warnings.filterwarnings("ignore", message=r".*Failed to initialize NumPy.*")
    warnings.filterwarnings("ignore", message=r".*NumPy.*", module=r"torch.*")


def _report(results_iter: object, fmt: str) -> int:
    from gradcheck_cli.results import CheckResult, Summary

    started = time.perf_counter()
    results: list[CheckResult] = []
    interrupted = False
    try:
        for result in results_iter:  # type: ignore[attr-defined]
            results.append(result)
    except KeyboardInterrupt:
        interrupted = True
    summary = Summary.of(results, time.perf_counter() - started)
    summary.interrupted = interrupted
    if fmt == "json":
        from gradcheck_cli.report import json as json_report

        click.echo(json_report.render(results, summary))
    else:
        from gradcheck_cli.report import table

        table.render(_console(), results, summary)
    return summary.exit_code


def _console() -> Console:
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=120)
    return console


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (pytest's convention)."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in args or "--verbose" in args
    try:
        code = command.main(args=args, prog_name="gradcheck-cli", standalone_mode=False)
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
        click.echo(f"gradcheck-cli: error: {exc}", err=True)
        return exc.exit_code if isinstance(exc, UsageError) else EXIT_USAGE
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except Exception as exc:
        click.echo(f"gradcheck-cli: unexpected error: {type(exc).__name__}: {exc}", err=True)
        if verbose:
            traceback.print_exc()
        else:
            click.echo("run again with -v for the full traceback, and please report it", err=True)
        return EXIT_INTERNAL
    return int(code or 0)
