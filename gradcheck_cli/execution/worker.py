"""Run jobs where the user's code may crash: the loop inside a worker process, or in-process."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType

from gradcheck_cli.engine.checks import CHECKS
from gradcheck_cli.errors import GradcheckCliError
from gradcheck_cli.execution.cache import cacheable
from gradcheck_cli.execution.dependencies import (
    dependencies,
    generation,
    mark_baseline,
    reading_for,
)
from gradcheck_cli.execution.messages import (
    Discovered,
    Done,
    Finished,
    Importing,
    Message,
    Ready,
    Started,
)
from gradcheck_cli.execution.tasks import Job, error_result
from gradcheck_cli.quiet import quiet_torch_import
from gradcheck_cli.results import Status
from gradcheck_cli.settings import RunOptions
from gradcheck_cli.streams import user_output_to_stderr

# A worker exits with this code, between jobs, when torch's global state could not be put
# back: the pool replaces it and runs again the job it may have sent meanwhile.
RETIRED = 75
_known: dict[Path, tuple[int, list[str]]] = {}


def _dependencies(module: Path) -> list[str]:
    """`dependencies.dependencies`, looked up again only once more modules have loaded or files
    were opened (a scan of every loaded module per passing check would cost milliseconds)."""
    loaded = generation()
    known = _known.get(module)
    if known is None or known[0] != loaded:
        known = _known[module] = (loaded, dependencies(module))
    return known[1]


def _import(path: Path) -> GradcheckCliError | ModuleType:
    """Import the user's file as a job starts; the error for a module that does not
    import, or raises an exit or its own KeyboardInterrupt (a real Ctrl-C goes on up)."""
    from gradcheck_cli.execution import escapes, isolation
    from gradcheck_cli.target.discovery import import_file

    mark_baseline()  # the first time: what loads from now on is the user's doing
    with escapes.watch() as watch:
        try:
            with user_output_to_stderr(), reading_for(path):
                module: ModuleType = isolation.watch_import(path, lambda: import_file(path))
        except GradcheckCliError as exc:
            return exc
        except escapes.ESCAPES as exc:
            escaped = watch.escape(exc, path)
            if escaped is None:
                raise
            return escaped
    return module


def run_job_here(job: Job, options: RunOptions) -> Iterator[Message]:
    """Run one job in this process, yielding Importing, Started(i), Finished(i, ...), ..."""
    from gradcheck_cli.execution.execute import execute

    if job.discover is not None:
        from gradcheck_cli.target.discovery import find_targets

        yield Importing()  # the pool's deadline covers a module that hangs at import
        module = _import(job.discover)
        try:
            if isinstance(module, GradcheckCliError):
                raise module
            with user_output_to_stderr(), reading_for(job.discover):
                names = [t.name for t in find_targets(module, job.discover)]
        except GradcheckCliError as exc:
            yield Finished(-1, error_result(job.discover, None, exc).to_dict())
            return
        yield Discovered(names, _dependencies(job.discover))
        return
    if job.tasks:
        task = job.tasks[0]
        yield Importing()
        loaded = _import(task.module)
        if isinstance(loaded, GradcheckCliError):
            yield Finished(0, error_result(task.module, task.spec, loaded).to_dict())
            return
    first_order_ok: bool | None = None
    for index, task in enumerate(job.tasks):
        yield Started(index)
        started = time.perf_counter()
        with user_output_to_stderr(), reading_for(task.module):
            result = execute(task, options, first_order_ok=first_order_ok)
        result.duration = time.perf_counter() - started
        if CHECKS[task.check].first_order:
            first_order_ok = result.status is Status.PASSED
        # After the check: modules forward or backward imported lazily count too.
        deps = _dependencies(task.module) if cacheable(result) else []
        yield Finished(index, result.to_dict(), deps)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """Linux: be killed when the process that started this one ends (a worker's is the
    fork server, whose own is the run), so a worker stuck in the user's loop never
    outlives a run that was killed. Elsewhere the closed pipe ends an idle worker."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent is already gone
        os._exit(1)


def worker_main(conn: Connection, options: RunOptions, cwd: str | None = None,
                environ: dict[str, str] | None = None, import_autograd: bool = False) -> None:
    """A worker process: receive jobs, send messages, until told to stop (None)."""
    # Ctrl-C is the parent's to handle: it stops the workers and reports what finished.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(os, "setpgid"):
        # A group of its own: the pool kills it whole, with whatever the user's op started
        # (a `sleep 300` child would hold the run's output open after the run).
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
    die_with_parent()
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    if cwd is not None:
        os.chdir(cwd)
    quiet_torch_import()
    import torch

    # The parent runs one check per core: more threads per check would only contend.
    torch.set_num_threads(1)
    if import_autograd:
        from gradcheck_cli.engine.vjp import import_autograd_shapes

        import_autograd_shapes()
    from gradcheck_cli.execution import isolation

    isolation.baseline()  # before any user code: what every check starts from
    try:
        _serve(conn, options)
    except (BrokenPipeError, ConnectionResetError, EOFError):
        # The parent is gone (Ctrl-C, or the run is over): nobody is left to tell.
        return


def _serve(conn: Connection, options: RunOptions) -> None:
    conn.send(Ready())
    while True:
        job = conn.recv()
        if job is None:
            return
        for message in run_job_here(job, options):
            conn.send(message)
        from gradcheck_cli.execution import isolation

        unrestored = isolation.settle()
        conn.send(Done())
        if unrestored:
            # Every later check would start from the wrong state: a fresh worker instead.
            sys.stdout.flush()
            os._exit(RETIRED)
