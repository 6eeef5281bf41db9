"""Imported once by the fork server, so that every worker forked from it starts with torch.

Only imports: the server runs no torch op, so no thread pool exists to be broken by fork.
"""

import atexit
import contextlib
import os
import signal
import sys

# The fork server is started as `python -c` running multiprocessing.forkserver.main; what
# follows changes its signals and its exit, and must not happen in any other process.
_IN_FORK_SERVER = "multiprocessing.forkserver" in sys.modules and sys.argv == ["-c"]

if _IN_FORK_SERVER:
    # It starts while the command line is still planning, in the terminal's process group:
    # Ctrl-C is the command line's to handle (multiprocessing ignores it here only once the
    # preload is done, and torch's import takes seconds).
    signal.signal(signal.SIGINT, signal.SIG_IGN)

from gradcheck_cli.quiet import quiet_torch_import  # noqa: E402

quiet_torch_import()

import torch  # noqa: E402,F401

import gradcheck_cli.execution.execute  # noqa: E402
import gradcheck_cli.execution.worker  # noqa: E402
from gradcheck_cli.engine.checks import CHECKS  # noqa: E402

# The checks every run makes, with the engine they pull in: imported once here rather
# than by each worker as its first check starts (about 0.1 s a worker).
for _kind in CHECKS.values():
    if _kind.default:
        _kind.load()


def _exit_now() -> None:
    """The server leaves when the run is over (its parent gone). It holds nothing but
    imports, so skip the interpreter's teardown of torch: about half a second during which
    the run's stdout and stderr, which it inherited, stay open, and whoever reads them
    through a pipe (CI, pre-commit, `| tee`) would wait for it after the run has ended.
    Workers leave through os._exit already; registered last, this runs first."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(0)


if _IN_FORK_SERVER:  # anywhere else os._exit(0) would replace the process's exit status
    atexit.register(_exit_now)
    # A run killed outright (SIGKILL, the OOM killer) takes its fork server with it, and
    # so, in turn, the workers (which do the same).
    gradcheck_cli.execution.worker.die_with_parent()
