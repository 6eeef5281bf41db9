"""Worker processes that survive the user's code: per-check timeouts, crashes, replacement."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any

from gradcheck_cli.errors import GradcheckCliError
from gradcheck_cli.execution.messages import Done, Finished, Importing, Message, Ready, Started
from gradcheck_cli.execution.tasks import Job, Task, error_result, next_job, task_result
from gradcheck_cli.results import NO_CHECK, Advice, CheckResult
from gradcheck_cli.settings import RunOptions
from gradcheck_cli.specs.collect import display

Handler = Callable[[Message, Job], list[Job]]


def _context() -> Any:  # a ForkServerContext or SpawnContext
    """Fork workers from a server that imported torch once (fast starts and replacements);
    spawn them where there is no fork server (Windows). Never fork this process itself:
    it may hold threads, and fork copies their locks held. The fork server listens on a
    socket in the temp folder, whose path a long TMPDIR makes too long for AF_UNIX."""
    if "forkserver" in multiprocessing.get_all_start_methods() and _socket_fits():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["gradcheck_cli.preload"])
        return context
    return multiprocessing.get_context("spawn")


# The longest AF_UNIX path (108 bytes on Linux, 104 on macOS, with the final NUL), less
# what multiprocessing adds below the temp folder (`/pymp-XXXXXXXX/listener-XXXXXXXX`).
_SOCKET_ROOM = 103 - 36


def _socket_fits() -> bool:
    import tempfile

    return len(os.fsencode(tempfile.gettempdir())) <= _SOCKET_ROOM


def start_server() -> None:
    """Start the fork server now, without waiting for it: it imports torch (seconds) while
    this process is still planning the run, and the first worker starts that much sooner."""
    context = _context()
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


class _Worker:
    def __init__(self, context: Any, options: RunOptions, import_autograd: bool) -> None:
        from gradcheck_cli.execution.worker import worker_main

        parent, child = context.Pipe()
        self.conn: Connection = parent
        # A forked worker inherits the fork server's working directory and environment,
        # which are those of the first pool of this process: hand it the current ones.
        self.proc: BaseProcess = context.Process(
            target=worker_main,
            args=(child, options, os.getcwd(), dict(os.environ), import_autograd), daemon=True)
        self.proc.start()
        child.close()
        self.job: Job | None = None
        self.acknowledged = False  # the worker said it began the job (Importing, Started)
        self.index: int | None = None  # the task running now; None while importing
        self.deadline: float | None = None
        self.started = time.monotonic()

    def send(self, job: Job) -> None:
        self.job = job
        self.acknowledged = False
        self.index = None
        self.deadline = None
        self.conn.send(job)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.kill_group()
        self.conn.close()

    def kill_group(self) -> None:
        """Kill what the user's code started in the worker (its process group, see
        `worker.worker_main`); a worker that never made its group leaves nothing to kill."""
        if self.proc.pid is not None and hasattr(os, "killpg"):
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " — out of memory?" if name == "SIGKILL" else ""
        return f"worker crashed ({name}){hint}"
    return f"worker exited with code {exitcode} (the code called exit()?)"


class WorkerPool:
    """Up to `size` spawned workers running jobs; a dead or hung worker is replaced."""

    def __init__(self, size: int, options: RunOptions, import_autograd: bool = False) -> None:
        self.size = max(1, size)
        self.options = options
        # Whether each worker imports what torch.autograd.grad needs first: worth it for
        # a large batch (see `vjp`), not for a few checks.
        self.import_autograd = import_autograd
        self.context = _context()
        self.workers: list[_Worker] = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        interrupted = kind is not None
        for worker in self.workers:
            if interrupted:
                worker.kill()
            else:
                worker.stop()
        for worker in self.workers:
            worker.proc.join(2 if not interrupted else 0.1)
            if worker.proc.is_alive():
                worker.kill()
            else:
                worker.kill_group()
        self.workers.clear()

    def run(self, jobs: list[Job], handle: Handler, skip: Callable[[Task], bool]) -> None:
        """Run every job; `handle` gets each message and may return new jobs to queue."""
        queue: deque[Job] = deque(jobs)
        timeout = self.options.timeout
        while True:
            for worker in list(self.workers):
                if worker.job is None and not worker.proc.is_alive():
                    self.workers.remove(worker)  # retired between jobs (see `worker`)
                    worker.kill()
                elif worker.job is None and queue:
                    job = next_job(queue, skip)
                    if job is not None:
                        worker.send(job)
            while queue and len(self.workers) < self.size:
                job = next_job(queue, skip)
                if job is None:
                    break
                worker = _Worker(self.context, self.options, self.import_autograd)
                self.workers.append(worker)
                worker.send(job)
            busy = [w for w in self.workers if w.job is not None]
            if not busy and not queue:
                return
            now = time.monotonic()
            deadlines = [w.deadline for w in busy if w.deadline is not None]
            wait_for = max(0.0, min(deadlines) - now) if deadlines else None
            wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], wait_for)
            for worker in list(busy):
                self._drain(worker, queue, handle, timeout)

    def _drain(self, worker: _Worker, queue: deque[Job], handle: Handler,
               timeout: float) -> None:
        job = worker.job
        assert job is not None
        try:
            while worker.conn.poll():
                message: Message = worker.conn.recv()
                if isinstance(message, (Importing, Started)):
                    worker.acknowledged = True
                    if isinstance(message, Started):
                        worker.index = message.index
                    worker.started = time.monotonic()
                    worker.deadline = worker.started + timeout
                elif isinstance(message, Done):
                    worker.job = None
                    worker.deadline = None
                    return
                elif not isinstance(message, Ready):
                    queue.extend(handle(message, job))
        except (EOFError, OSError):
            pass
        if not worker.proc.is_alive():
            self._lost(worker, queue, handle, _death(worker.proc.exitcode))
        elif worker.deadline is not None and time.monotonic() > worker.deadline:
            self._lost(worker, queue, handle, f"timed out after {timeout:g}s", timed_out=True)

    def _lost(self, worker: _Worker, queue: deque[Job], handle: Handler, why: str,
              timed_out: bool = False) -> None:
        """The worker died or hung: report the task it was on, and replace the worker.

        After a crash the job's other checks are requeued (double backward may crash where
        backward did not); after a timeout they are reported unrun, since the same forward
        would hang them too and each would cost the whole time limit again.
        """
        from gradcheck_cli.execution.worker import RETIRED

        job = worker.job
        self.workers.remove(worker)
        worker.kill()
        if job is None:
            return
        if worker.proc.exitcode == RETIRED and not worker.acknowledged:
            queue.appendleft(job)  # sent as it retired: never begun
            return
        # The time limit is the front end's to word (a flag, an option, a keyword argument).
        hint = (" (a hang, or a check too slow for the time limit: shrink the inputs, or "
                "allow it more time)" if timed_out else "")
        advice = [Advice("longer_timeout")] if timed_out else []
        spent = time.monotonic() - worker.started
        if job.discover is not None:
            result = error_result(job.discover, None, GradcheckCliError(
                f"{why} while importing {display(job.discover)}{hint}"))
            result.duration = spent
            result.advice = advice
            handle(Finished(-1, result.to_dict()), job)
            return
        if worker.index is None:  # still importing the module
            task = job.tasks[0]
            broken = task_result(task, self.options, f"{why} while importing the module{hint}")
            broken.function = None
            broken.device = broken.check = NO_CHECK
            broken.duration = spent
            broken.advice = advice
            handle(Finished(0, broken.to_dict()), job)
            return
        index = worker.index
        lost = self._failure(job.tasks[index], why + hint)
        lost.duration = spent
        lost.advice = advice
        handle(Finished(index, lost.to_dict()), job)
        rest = job.tasks[index + 1:]
        if rest and timed_out:
            for offset, task in enumerate(rest, start=index + 1):
                unrun = self._failure(task, f"not run: the {job.tasks[index].check} of this "
                                            f"Function before it {why}")
                handle(Finished(offset, unrun.to_dict()), job)
        elif rest:
            queue.appendleft(Job(tasks=rest))

    def _failure(self, task: Task, why: str) -> CheckResult:
        result = task_result(task, self.options, why)
        if task.spec is not None and task.spec_line:
            # The worker is gone with the Function's line; the spec's line for it is known.
            result.location = f"{display(task.spec)}:{task.spec_line}"
        return result
