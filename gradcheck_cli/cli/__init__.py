"""The command line: pick the verb, run it through the one error handler, return the exit code.

Importing this package must not import torch: `--help`, `--version` and completion stay
instant, and a fully cached run never imports it. It imports nothing else either, so that
Ctrl-C in the first instant is caught by `main` like any other.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence

EXIT_INTERRUPTED = 2  # errors.ExitCode.INTERRUPTED, before anything is imported


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (pytest's convention).

    As the process's entry point (no `argv`), a thread the user's code started and never
    ended cannot keep the process alive after the report: it exits with the code.
    """
    try:
        from gradcheck_cli import signals

        previous = signals.install()
    except KeyboardInterrupt:  # Ctrl-C in the very first instant
        exec("None")  # see `_main`
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    try:
        code = _main(argv)
    finally:
        signals.restore(previous)
    if argv is None:
        _exit_past_user_threads(code)
    return code


def _exit_past_user_threads(code: int) -> None:
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        import os

        os._exit(code)


def _main(argv: Sequence[str] | None) -> int:
    try:
        from gradcheck_cli.cli.handler import invoke, started_now

        started_now()
        args = list(sys.argv[1:] if argv is None else argv)
        if args and args[0] == "init":
            from gradcheck_cli.cli.init import command as init

            return invoke(init, args[1:], "gradcheck-cli init")
        if args and args[0] == "merge":
            from gradcheck_cli.cli.merge import command as merge

            return invoke(merge, args[1:], "gradcheck-cli merge")
        from gradcheck_cli.cli.check import command

        return invoke(command, args, "gradcheck-cli")
    except KeyboardInterrupt as exc:  # while importing, before the handler could catch it
        exec("None")  # resets CPython's unhandled-KeyboardInterrupt flag: handler.interrupted
        sys.stderr.write("interrupted\n")
        signum = getattr(exc, "signum", None)
        return 128 + signum if isinstance(signum, int) else EXIT_INTERRUPTED
