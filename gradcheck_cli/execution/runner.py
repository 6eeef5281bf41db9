"""Plan -> results: expand specs into tasks, reuse cached passes, run the rest, never stop early.

Planning reads YAML only; the user's modules are imported where the checks run (in worker
processes, see `pool`, or in this process with `jobs=0`), so a module that hangs, aborts
or raises at import costs only its own results.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from gradcheck_cli.engine import cost
from gradcheck_cli.engine.checks import CHECKS
from gradcheck_cli.execution.messages import Discovered, Finished, Message
from gradcheck_cli.execution.plan import (
    Seen,
    cuda_possible,
    discovered_tasks,
    group,
    plan_spec,
    unmatched_selection,
)
from gradcheck_cli.execution.shard import (
    Durations,
    Piece,
    job_piece,
    module_piece,
    problem_piece,
    record_durations,
    split,
)
from gradcheck_cli.execution.tasks import (
    Job,
    RunOutcome,
    Task,
    next_job,
    task_result,
    worker_count,
)
from gradcheck_cli.results import CheckResult, Results, ShardInfo, Status
from gradcheck_cli.settings import RunOptions
from gradcheck_cli.specs.collect import Item, display
from gradcheck_cli.specs.specfile import TensorInput, leaves

if TYPE_CHECKING:
    from gradcheck_cli.execution.cache import Cache

Progress = Callable[[CheckResult, int, int], None]
ORDER_STRIDE = 1_000_000  # room for each path's tasks in the report order


class _Collector:
    """Orders results, merges the duplicates a broken module or Function produces."""

    def __init__(self, on_result: Progress | None,
                 before_torch: Callable[[], None] | None = None) -> None:
        self.by_order: dict[float, CheckResult] = {}
        # Runs just before this process imports torch to ask about CUDA.
        self.before_torch = before_torch
        self.broken: set[tuple[str | None, str | None, str | None]] = set()
        self.seen = Seen()  # the names planned, for typos in -k / --case
        self.undiscovered = 0  # bare .py files whose Functions are not known yet
        self.discovered = 0  # checks of bare .py files, found as they were imported
        self.on_result = on_result
        self.total = 0
        self.pending: dict[float, Task] = {}  # planned to run, no result yet

    def known_broken(self, task: Task) -> bool:
        spec = display(task.spec) if task.spec else None
        module = display(task.module)
        return ((spec, module, None) in self.broken
                or (spec, module, task.function) in self.broken)

    def add(self, order: float, result: CheckResult) -> None:
        if result.before_checks:
            # A module that does not import, or a Function it lacks: one result, not one per check.
            key = (result.spec, result.module, result.function)
            if key in self.broken:
                return
            self.broken.add(key)
        self.by_order[order] = result
        self.pending.pop(order, None)
        if self.on_result is not None:
            self.on_result(result, len(self.by_order), self.total)

    def results(self) -> list[CheckResult]:
        return [self.by_order[k] for k in sorted(self.by_order)]

    def mark_unfinished(self, options: RunOptions, why: str) -> None:
        """After an interrupt: each planned check that did not finish is skipped with the
        reason, so JUnit and JSON list it rather than leave it out."""
        for order, task in sorted(self.pending.items()):
            if not self.known_broken(task):
                self.by_order[order] = task_result(task, options, f"not run: {why}",
                                                   Status.SKIPPED)
        self.pending.clear()


def run(items: list[Item], options: RunOptions, on_result: Progress | None = None,
        on_start: Callable[[int], None] | None = None) -> RunOutcome:
    """Check everything in `items` (or one shard of it: `options.shard`); Ctrl-C stops
    cleanly with what finished so far."""
    from gradcheck_cli.execution.cache import Cache

    outcome = RunOutcome()
    started = False

    def start_workers_server() -> None:
        nonlocal started
        if not started and options.jobs != 0:
            from gradcheck_cli.execution.pool import start_server

            start_server()
            started = True

    # Where torch must be asked about CUDA, the fork server starts first, so that its import
    # of torch and this process's overlap.
    collector = _Collector(on_result, before_torch=start_workers_server)
    cache = Cache(options.cache_dir) if options.cache_dir is not None else None
    work = _Work(options, collector, cache)
    info: ShardInfo | None = None
    try:
        pieces: Iterable[Piece] = _pieces(items, options, collector)
        if options.shard is not None:
            pieces, info = _my_shard(list(pieces), work)
        for piece in pieces:
            work.take(piece)
            if work.to_run or work.discover:
                # Something must run: workers will be needed, start loading torch for them.
                start_workers_server()
        collector.total = len(collector.by_order) + len(work.to_run) + len(work.discover)
        if on_start is not None:
            on_start(collector.total)
        if work.to_run or work.discover:
            _execute_all(work)
    except KeyboardInterrupt as exc:
        outcome.interrupted = True
        outcome.signal = getattr(exc, "signum", None)
        name = getattr(exc, "name", None)
        collector.mark_unfinished(options, f"the run was interrupted ({name or 'Ctrl-C'})")
    if not outcome.interrupted and not collector.undiscovered:
        outcome.selection_error = unmatched_selection(options, collector.seen)
    if info is not None:
        info.checks += collector.discovered
        info.planned += collector.discovered
        info.order = [int(order) for order in sorted(collector.by_order)]
    outcome.results = Results(collector.results(), info)
    if options.shard is None and options.cache_dir is not None:
        # For a later run's --shard to weigh each check by its time (see `shard`).
        record_durations(options.cache_dir, outcome.results)
    return outcome


def _pieces(items: list[Item], options: RunOptions, collector: _Collector) -> Iterator[Piece]:
    """The run's plan, piece by piece (see `shard`), in the order of the paths given."""
    for index, item in enumerate(items):
        # Results are reported in the order of the paths given, then of the plan.
        order = index * ORDER_STRIDE
        if item.kind == "module":
            yield module_piece(item.path, order)
            continue
        tasks: list[Task] = []
        for entry in plan_spec(item.path, options, before_torch=collector.before_torch,
                               seen=collector.seen):
            order += 1
            if isinstance(entry, CheckResult):
                yield problem_piece(entry, order)
            else:
                entry.order = order
                tasks.append(entry)
        for job in group(tasks):
            yield job_piece(job.tasks)


def _my_shard(pieces: list[Piece], work: _Work) -> tuple[list[Piece], ShardInfo]:
    """This run's shard of the whole plan, weighed by the durations recorded so far."""
    mine, info = split(pieces, work.options, Durations(work.options.cache_dir))
    if info.undiscovered:
        # Functions of a .py in another shard are never seen here: -k cannot be judged.
        work.collector.seen.complete = False
    return mine, info


class _Work:
    """What is left to run as the plan is read: tasks, and .py files to discover."""

    def __init__(self, options: RunOptions, collector: _Collector, cache: Cache | None) -> None:
        self.options = options
        self.collector = collector
        self.cache = cache
        self.to_run: list[Task] = []
        self.discover: list[Job] = []

    def answer(self, task: Task) -> CheckResult | None:
        """The result known without running (CUDA absent, a cached pass), else None."""
        if task.device.startswith("cuda") and not cuda_possible(self.collector.before_torch):
            return task_result(task, self.options, "CUDA not available", Status.SKIPPED)
        return self.cache.lookup(task, self.options) if self.cache is not None else None

    def take(self, piece: Piece) -> None:
        """Record what this piece's results are without running, queue the rest."""
        if piece.result is not None:
            self.collector.add(float(piece.order), piece.result)
        elif piece.module is not None:
            job = Job(tasks=[], discover=piece.module, order_base=piece.order)
            # A bare .py whose Functions were found before, and which has not changed
            # since, is planned here without importing it (nor torch).
            names = (self.cache.lookup_discovery(piece.module) if self.cache is not None
                     else None)
            if names is None:
                self.discover.append(job)
                self.collector.undiscovered += 1
            else:
                self.to_run.extend(_discovered(job, names, self.options, self.collector,
                                               self.answer))
        else:
            self.to_run.extend(_not_yet_known(piece.tasks, self.collector, self.answer))


def _not_yet_known(tasks: list[Task], collector: _Collector,
                   answer: Callable[[Task], CheckResult | None]) -> list[Task]:
    """Record the results known without running (CUDA absent, cached passes); the rest."""
    to_run: list[Task] = []
    for task in tasks:
        known = answer(task)
        if known is not None:
            collector.add(float(task.order), known)
        else:
            to_run.append(task)
            collector.pending[float(task.order)] = task
    return to_run


def _discovered(job: Job, names: list[str], options: RunOptions, collector: _Collector,
                answer: Callable[[Task], CheckResult | None]) -> list[Task]:
    """The tasks of the Functions found in a bare .py, less those already known."""
    assert job.discover is not None
    new = list(discovered_tasks(job.discover, names, options, collector.before_torch,
                                collector.seen))
    for offset, task in enumerate(new, start=1):
        task.order = job.order_base + offset
    collector.total += len(new)
    collector.discovered += len(new)
    return _not_yet_known(new, collector, answer)


def _execute_all(work: _Work) -> None:
    tasks, options, collector, cache = work.to_run, work.options, work.collector, work.cache
    # Bare .py files are imported in a worker to find their Functions first.
    jobs = group(tasks) + work.discover

    def record(job: Job, task: Task | None, result: CheckResult, deps: list[str]) -> None:
        collector.add(float(task.order if task is not None else job.order_base), result)
        if cache is not None and task is not None:
            cache.store(task, options, result, deps)

    def found(job: Job, names: list[str], deps: list[str]) -> list[Job]:
        assert job.discover is not None
        if cache is not None:
            cache.store_discovery(job.discover, names, deps)
        collector.total -= 1  # the discovery counted as one until its checks were known
        collector.undiscovered -= 1
        new = _discovered(job, names, options, collector, work.answer)
        return group(new)

    workers = min(worker_count(options), max(1, len(jobs)))
    # Torch's recipe makes the vector backward calls counted here; other modes make far
    # fewer (a few reference passes), and `vjp` counts them as they come instead.
    calls = sum(cost.vector_backward_calls(_input_numels(task))
                for task in tasks if CHECKS[task.check].double_backward)
    warm = options.mode == "exact" and cost.worth_importing_autograd(calls / workers)
    if options.jobs == 0:
        from gradcheck_cli.execution.children import ended_after
        from gradcheck_cli.execution.worker import run_job_here

        if warm:
            from gradcheck_cli.engine.vjp import import_autograd_shapes

            import_autograd_shapes()
        queue = deque(jobs)
        with _one_torch_thread():
            while (job := next_job(queue, collector.known_broken)) is not None:
                with ended_after():
                    for message in run_job_here(job, options):
                        queue.extend(_handle(message, job, record, found))
    else:
        from gradcheck_cli.execution.pool import WorkerPool

        with WorkerPool(workers, options, import_autograd=warm) as pool:
            pool.run(jobs, lambda message, job: _handle(message, job, record, found),
                     collector.known_broken)


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """In this process (-j 0), checks run with one torch thread as each worker's do (one
    check per core: more threads per small op only contend); the caller's count is put
    back after."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _input_numels(task: Task) -> list[int]:
    """The sizes of the tensors a task's spec declares (none when they are inferred)."""
    inputs = leaves(task.case.inputs or (), task.case.kwargs)
    return [math.prod(i.shape) for i in inputs if isinstance(i, TensorInput)]


def _handle(message: Message, job: Job,
            record: Callable[[Job, Task | None, CheckResult, list[str]], None],
            found: Callable[[Job, list[str], list[str]], list[Job]]) -> list[Job]:
    """Apply one worker message; returns new jobs (from a discovery)."""
    if isinstance(message, Finished):
        task = job.tasks[message.index] if job.tasks else None
        record(job, task, CheckResult.from_dict(message.result), message.deps)
    elif isinstance(message, Discovered):
        return found(job, message.names, message.deps)
    return []
