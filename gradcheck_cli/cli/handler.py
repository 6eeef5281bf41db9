"""The one error handler every verb runs under: known problems, Ctrl-C, and our own bugs."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import click

from gradcheck_cli import signals
from gradcheck_cli.errors import ExitCode, GradcheckCliError
from gradcheck_cli.version import __version__

CRASH_LOG = "gradcheck-cli.log"
_STARTED: list[float] = []


def started_now() -> None:
    """Note when the run began, for the summary's elapsed time."""
    _STARTED[:] = [time.perf_counter()]


def elapsed() -> float:
    return time.perf_counter() - _STARTED[0] if _STARTED else 0.0


def invoke(cmd: click.Command, args: list[str], prog: str) -> int:
    """Run a click command the way every gradcheck-cli verb runs: one error path, one exit code.

    Known problems print a short message (4 for usage, else their own code); Ctrl-C gives
    2; anything unexpected says so, writes a crash log (versions, command line, traceback)
    and gives 3, as pre-commit does.
    """
    verbose = "-v" in args or "--verbose" in args
    try:
        code = cmd.main(args=args, prog_name=prog, standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        return ExitCode.USAGE_ERROR
    except click.UsageError as exc:
        exc.show()
        return ExitCode.USAGE_ERROR
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        return interrupted(exc)
    except GradcheckCliError as exc:
        from gradcheck_cli.report.safe import printable_lines

        click.echo(f"{prog}: error: {printable_lines(str(exc))}", err=True)
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return ExitCode.USAGE_ERROR
    except Exception as exc:
        if _caused_by_ctrl_c(exc):
            return interrupted(exc)
        _unexpected(exc, prog, args, verbose)
        return ExitCode.INTERNAL_ERROR
    return int(code or 0)


def interrupted(exc: BaseException | None = None) -> int:
    """Say so and give exit code 2 (128 + the signal for SIGTERM or SIGHUP), once the
    interrupt has been caught.

    If the KeyboardInterrupt passed through code that Python ran from a string (dataclasses
    and namedtuple build their methods with `exec`), CPython has noted it as unhandled and
    would end the process by SIGINT after we return. Running any string resets that note.
    """
    exec("None")  # resets the flag (see above)
    click.echo("interrupted", err=True)
    while exc is not None and not isinstance(exc, KeyboardInterrupt):
        exc = exc.__cause__ or exc.__context__
    code = signals.exit_code(exc)
    return code if code is not None else ExitCode.INTERRUPTED


def _caused_by_ctrl_c(exc: BaseException) -> bool:
    """Whether Ctrl-C is behind this exception: Python wraps a KeyboardInterrupt raised at
    some moments (a class body's __set_name__, an import) in another exception."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _unexpected(exc: Exception, prog: str, args: list[str], verbose: bool) -> None:
    click.echo(f"{prog}: unexpected error: {type(exc).__name__}: {exc}", err=True)
    log = write_crash_log(prog, args, traceback.format_exc())
    if verbose:
        traceback.print_exc()
    if log is not None:
        click.echo(f"{prog}: the details are in {log}; please attach it to a bug report",
                   err=True)
    elif not verbose:
        click.echo("run again with -v for the full traceback, and please report it", err=True)


def crash_log_folder() -> Path:
    """The cache folder of the project the command runs in (as the project config says)."""
    from gradcheck_cli.config import find_config, project_root

    try:
        config = find_config()
        configured = config.values.get("cache_dir")
        root = config.path.parent if config.path else project_root()
    except Exception:  # the config itself may be what broke; the log must still be written
        configured, root = None, Path.cwd()
    return Path(configured) if configured else root / ".gradcheck_cache"


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:  # removed during the run
        return "(removed)"


def write_crash_log(prog: str, args: list[str], trace: str) -> Path | None:
    """Write versions, the command line and the traceback; where it went, or None."""
    import platform

    torch_version = sys.modules["torch"].__version__ if "torch" in sys.modules else "not imported"
    text = "\n".join([
        f"### {prog} crash log",
        f"gradcheck-cli: {__version__}",
        f"python: {sys.version.split()[0]} ({platform.platform()})",
        f"torch: {torch_version}",
        f"command: {' '.join([prog, *args])}",
        f"cwd: {_cwd()}",
        "",
        trace.rstrip(),
        "",
    ])
    for folder in (crash_log_folder(), Path(tempfile.gettempdir())):
        path = folder / CRASH_LOG
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError:
            continue
        return path
    return None
