"""Plan -> results: expand specs into tasks, reuse cached passes, run the rest, never stop early.

Planning reads YAML only; the user's modules are imported where the checks run (in worker
processes, see `pool`, or in this process with `jobs=0`), so a module that hangs, aborts
or raises at import costs only its own results.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gradcheck_cli import cost
from gradcheck_cli.collect import Item, display
from gradcheck_cli.errors import GradcheckCliError, SpecError
from gradcheck_cli.results import CheckResult, Status
from gradcheck_cli.specfile import (
    CHECKS,
    CaseSpec,
    CheckSettings,
    SpecFile,
    TensorInput,
    load_spec,
)

if TYPE_CHECKING:
    from gradcheck_cli.cache import Cache

DEFAULT_MAX_MEMORY = 1 << 30  # bytes of Jacobian blocks held at once per check
DEFAULT_TIMEOUT = 120.0  # seconds per check


@dataclass(frozen=True)
class RunOptions:
    """Command-line choices; None means: as the spec says, else the default."""

    devices: tuple[str, ...] | None = None
    checks: tuple[str, ...] | None = None
    seed: int | None = None
    atol: float | None = None
    rtol: float | None = None
    eps: float | None = None
    shape: tuple[int, ...] = (3, 4)
    functions: tuple[str, ...] = ()
    cases: tuple[str, ...] = ()
    max_memory: int = DEFAULT_MAX_MEMORY
    mode: str = "auto"
    jobs: int = 0  # worker processes; 0 runs in this process, -1 one per core
    timeout: float = DEFAULT_TIMEOUT
    cache_dir: Path | None = None  # None: no cache
    float32: bool = False  # add the float32 consistency check everywhere
    dodge_kinks: bool = False  # redraw inputs when the only failures sit at kinks
    capabilities: bool = False  # add the capability matrix of each Function x case
    keep_jacobians: bool = False  # attach (downsampled) Jacobians of failing inputs


@dataclass
class Task:
    """One Function x case x device x check, ready to run."""

    module: Path
    spec: Path | None
    function: str
    case: CaseSpec
    device: str
    check: str
    settings: CheckSettings
    inferred: bool
    explicit_checks: bool
    spec_line: int | None = None
    order: int = 0


@dataclass
class Job:
    """Tasks that share a Function, case and device: they run in order in one worker."""

    tasks: list[Task]
    discover: Path | None = None  # a .py whose Functions are to be found (no tasks yet)
    order_base: int = 0  # where the results of a discovery stand in the report


@dataclass
class RunOutcome:
    """Every result in plan order, and whether the run was cut short."""

    results: list[CheckResult] = field(default_factory=list)
    interrupted: bool = False


@contextlib.contextmanager
def user_output_to_stderr() -> Iterator[None]:
    """Send whatever the user's code prints to stderr, so stdout stays one clean report."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:
        saved = None
    try:
        if saved is not None:
            os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def error_result(module: Path | None, spec: Path | None, exc: GradcheckCliError,
                 function: str | None = None, case: str = "default") -> CheckResult:
    """A result for a problem found before any check ran (a spec or module that won't load)."""
    if exc.file is not None:
        exc.file = display(Path(exc.file))
    return CheckResult(
        module=display(module) if module else None,
        spec=display(spec) if spec else None,
        function=function,
        case=case,
        device="-",
        check="-",
        status=Status.ERROR,
        message=str(exc),
        location=exc.location,
        line=exc.line,
    )


def task_seed(task: Task, options: RunOptions) -> int:
    return options.seed if options.seed is not None else (task.settings.seed or 0)


def reproduce_command(task: Task, seed: int) -> str:
    """The command that re-runs only this result."""
    import shlex

    path = task.spec or task.module
    parts = ["gradcheck-cli", display(path), "--function", task.function,
             "--case", task.case.name, "--device", task.device, "--check", task.check,
             "--seed", str(seed)]
    return " ".join(shlex.quote(p) for p in parts)


def task_result(task: Task, options: RunOptions, message: str = "",
                status: Status = Status.ERROR) -> CheckResult:
    """A result for `task` that says where it came from; the check fills in the rest."""
    seed = task_seed(task, options)
    result = CheckResult(
        module=display(task.module),
        spec=display(task.spec) if task.spec else None,
        function=task.function,
        case=task.case.name,
        device=task.device,
        check=task.check,
        status=status,
        message=message,
        seed=seed,
    )
    if status.is_problem:
        result.reproduce = reproduce_command(task, seed)
    return result


# Called just before this process imports torch to ask about CUDA: `run` starts the fork
# server there, so that its import of torch and this one overlap.
_BEFORE_TORCH_IMPORT: list[Callable[[], None]] = []


def _no_nvidia_devices() -> bool:
    return sys.platform.startswith("linux") and not any(Path("/dev").glob("nvidia*"))


@functools.cache
def cuda_possible() -> bool:
    """Whether CUDA could be available, answered without importing torch where we can.

    On Linux a CUDA device needs /dev/nvidia* nodes: with none, the answer is no and a
    fully cached run never pays for `import torch`.
    """
    if _no_nvidia_devices():
        return False
    for hook in _BEFORE_TORCH_IMPORT:
        hook()
    import torch

    return bool(torch.cuda.is_available())


def default_devices() -> tuple[str, ...]:
    return ("cpu", "cuda") if cuda_possible() else ("cpu",)


def _selected(name: str, options: RunOptions) -> bool:
    return not options.functions or name in options.functions


def plan_spec(path: Path, options: RunOptions, spec: SpecFile | None = None
              ) -> Iterator[Task | CheckResult]:
    """The tasks of one spec file (reading YAML only, unless given it already loaded), or
    error results for its problems."""
    if spec is None:
        spec = load_spec(path, display(path))
    if spec.error is not None or spec.module is None:
        yield error_result(None, path, spec.error or SpecError("spec has no module",
                                                               file=display(path)))
        return
    for function in spec.functions:
        if not _selected(function.name, options):
            continue
        if function.error is not None:
            yield error_result(spec.module, path, function.error, function.name)
            continue
        for case in function.cases:
            if options.cases and case.name not in options.cases:
                continue
            settings = function.settings.merged(case.settings)
            yield from expand(spec.module, path, function.name, case, settings,
                              inferred=case.inputs is None, options=options,
                              spec_line=case.line or function.line)


def expand(module: Path, spec: Path | None, name: str, case: CaseSpec, settings: CheckSettings,
           inferred: bool, options: RunOptions, spec_line: int | None) -> Iterator[Task]:
    """One task per device and check, as the flags, else the spec, else the defaults say."""
    devices = options.devices or settings.devices or default_devices()
    checks = options.checks or settings.checks or CHECKS
    if (options.float32 or settings.float32) and "float32" not in checks:
        checks = (*checks, "float32")
    explicit = options.checks is not None or settings.checks is not None
    for device in devices:
        for check in checks:
            if check == "capabilities":
                continue
            yield Task(module=module, spec=spec, function=name, case=case, device=device,
                       check=check, settings=settings, inferred=inferred,
                       explicit_checks=explicit, spec_line=spec_line)
    if options.capabilities or "capabilities" in checks:
        # One matrix per Function x case: it probes CUDA itself where CUDA exists.
        yield Task(module=module, spec=spec, function=name, case=case, device="cpu",
                   check="capabilities", settings=settings, inferred=inferred,
                   explicit_checks=explicit, spec_line=spec_line)


def discovered_tasks(path: Path, names: list[str], options: RunOptions) -> Iterator[Task]:
    """Tasks with inferred inputs for the Functions found in a bare .py file."""
    for name in names:
        if _selected(name, options):
            case = CaseSpec("default", None, CheckSettings(), None)
            yield from expand(path, None, name, case, CheckSettings(), inferred=True,
                              options=options, spec_line=None)


def plan(items: list[Item], options: RunOptions) -> Iterator[Task | CheckResult]:
    """Expand items into tasks in this process (bare .py files are imported to find Functions)."""
    from gradcheck_cli.discovery import find_functions, import_file

    for item in items:
        if item.kind == "spec":
            yield from plan_spec(item.path, options)
            continue
        try:
            module = import_file(item.path)
        except GradcheckCliError as exc:
            yield error_result(item.path, None, exc)
            continue
        names = [t.name for t in find_functions(module, item.path)]
        yield from discovered_tasks(item.path, names, options)


def group(tasks: list[Task]) -> list[Job]:
    """Consecutive tasks of one Function x case x device form a job."""
    jobs: list[Job] = []
    for task in tasks:
        key = (task.module, task.spec, task.function, task.case.name, task.device)
        last = jobs[-1].tasks[-1] if jobs and jobs[-1].tasks else None
        if last is not None and (last.module, last.spec, last.function, last.case.name,
                                 last.device) == key:
            jobs[-1].tasks.append(task)
        else:
            jobs.append(Job(tasks=[task]))
    return jobs


def next_job(queue: deque[Job], skip: Callable[[Task], bool]) -> Job | None:
    """The next job to run, past those whose Function is already known broken (`skip`)."""
    while queue:
        job = queue.popleft()
        if job.tasks and skip(job.tasks[0]):
            continue
        return job
    return None


Progress = Callable[[CheckResult, int, int], None]
ORDER_STRIDE = 1_000_000  # room for each path's tasks in the report order


class _Collector:
    """Orders results, merges the duplicates a broken module or Function produces."""

    def __init__(self, on_result: Progress | None) -> None:
        self.by_order: dict[float, CheckResult] = {}
        self.broken: set[tuple[str | None, str | None, str | None]] = set()
        self.on_result = on_result
        self.total = 0

    def known_broken(self, task: Task) -> bool:
        spec = display(task.spec) if task.spec else None
        module = display(task.module)
        return ((spec, module, None) in self.broken
                or (spec, module, task.function) in self.broken)

    def add(self, order: float, result: CheckResult) -> None:
        if result.check == "-":
            # A module that does not import, or a Function it lacks: one result, not one per check.
            key = (result.spec, result.module, result.function)
            if key in self.broken:
                return
            self.broken.add(key)
        self.by_order[order] = result
        if self.on_result is not None:
            self.on_result(result, len(self.by_order), self.total)

    def results(self) -> list[CheckResult]:
        return [self.by_order[k] for k in sorted(self.by_order)]


def run(items: list[Item], options: RunOptions, on_result: Progress | None = None,
        on_start: Callable[[int], None] | None = None) -> RunOutcome:
    """Check everything in `items`; Ctrl-C stops cleanly with what finished so far."""
    from gradcheck_cli.cache import Cache

    outcome = RunOutcome()
    collector = _Collector(on_result)
    cache = Cache(options.cache_dir) if options.cache_dir is not None else None
    started = False

    def start_workers_server() -> None:
        nonlocal started
        if not started and options.jobs != 0:
            from gradcheck_cli.pool import start_server

            start_server()
            started = True

    to_run: list[Task] = []
    discover: list[Job] = []
    _BEFORE_TORCH_IMPORT.append(start_workers_server)
    try:
        for index, item in enumerate(items):
            # Results are reported in the order of the paths given, then of the plan.
            order = index * ORDER_STRIDE
            if item.kind == "module":
                job = Job(tasks=[], discover=item.path, order_base=order)
                # A bare .py whose Functions were found before, and which has not changed
                # since, is planned here without importing it (nor torch).
                names = cache.lookup_discovery(item.path) if cache is not None else None
                if names is None:
                    discover.append(job)
                else:
                    to_run.extend(_discovered(job, names, options, collector, cache))
            else:
                tasks: list[Task] = []
                for entry in plan_spec(item.path, options):
                    order += 1
                    if isinstance(entry, CheckResult):
                        collector.add(float(order), entry)
                    else:
                        entry.order = order
                        tasks.append(entry)
                to_run.extend(_not_yet_known(tasks, options, collector, cache))
            if to_run or discover:
                # Something must run: workers will be needed, start loading torch for them.
                start_workers_server()
        collector.total = len(collector.by_order) + len(to_run) + len(discover)
        if on_start is not None:
            on_start(collector.total)
        if to_run or discover:
            _execute_all(to_run, discover, options, collector, cache)
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        _BEFORE_TORCH_IMPORT.remove(start_workers_server)
    outcome.results = collector.results()
    return outcome


def _not_yet_known(tasks: list[Task], options: RunOptions, collector: _Collector,
                   cache: Cache | None) -> list[Task]:
    """Record the results known without running (CUDA absent, cached passes); the rest."""
    to_run: list[Task] = []
    for task in tasks:
        if task.device.startswith("cuda") and not cuda_possible():
            skipped = task_result(task, options, "CUDA not available", Status.SKIPPED)
            collector.add(float(task.order), skipped)
            continue
        hit = cache.lookup(task, options) if cache is not None else None
        if hit is not None:
            collector.add(float(task.order), hit)
        else:
            to_run.append(task)
    return to_run


def _discovered(job: Job, names: list[str], options: RunOptions, collector: _Collector,
                cache: Cache | None) -> list[Task]:
    """The tasks of the Functions found in a bare .py, less those already known."""
    assert job.discover is not None
    new = list(discovered_tasks(job.discover, names, options))
    for offset, task in enumerate(new, start=1):
        task.order = job.order_base + offset
    collector.total += len(new)
    return _not_yet_known(new, options, collector, cache)


def _execute_all(tasks: list[Task], discover: list[Job], options: RunOptions,
                 collector: _Collector, cache: Cache | None) -> None:
    # Bare .py files are imported in a worker to find their Functions first.
    jobs = group(tasks) + discover

    def record(job: Job, task: Task | None, result: CheckResult, deps: list[str]) -> None:
        collector.add(float(task.order if task is not None else job.order_base), result)
        if cache is not None and task is not None:
            cache.store(task, options, result, deps)

    def found(job: Job, names: list[str], deps: list[str]) -> list[Job]:
        assert job.discover is not None
        if cache is not None:
            cache.store_discovery(job.discover, names, deps)
        collector.total -= 1  # the discovery counted as one until its checks were known
        new = _discovered(job, names, options, collector, cache)
        return group(new)

    workers = min(worker_count(options), max(1, len(jobs)))
    calls = sum(cost.vector_backward_calls(_input_numels(task))
                for task in tasks if task.check == "gradgradcheck")
    warm = cost.worth_importing_autograd(calls / workers)
    if options.jobs == 0:
        from gradcheck_cli.worker import run_job_here

        if warm:
            from gradcheck_cli.vjp import import_autograd_shapes

            import_autograd_shapes()
        queue = deque(jobs)
        while (job := next_job(queue, collector.known_broken)) is not None:
            for message in run_job_here(job, options):
                queue.extend(_handle(message, job, record, found))
    else:
        from gradcheck_cli.pool import WorkerPool

        with WorkerPool(workers, options, import_autograd=warm) as pool:
            pool.run(jobs, lambda message, job: _handle(message, job, record, found),
                     collector.known_broken)


def worker_count(options: RunOptions) -> int:
    """How many processes check at once: 1 in process (-j 0), else -j N or one per core."""
    if options.jobs == 0:
        return 1
    return options.jobs if options.jobs > 0 else (os.cpu_count() or 1)


def _input_numels(task: Task) -> list[int]:
    """The sizes of the tensors a task's spec declares (none when they are inferred)."""
    inputs = task.case.inputs or ()
    return [math.prod(i.shape) for i in inputs if isinstance(i, TensorInput)]


def _handle(message: tuple[object, ...], job: Job,
            record: Callable[[Job, Task | None, CheckResult, list[str]], None],
            found: Callable[[Job, list[str], list[str]], list[Job]]) -> list[Job]:
    """Apply one worker message; returns new jobs (from a discovery)."""
    kind = message[0]
    if kind == "result":
        _, index, data, deps = message
        assert isinstance(index, int) and isinstance(data, dict) and isinstance(deps, list)
        task = job.tasks[index] if job.tasks else None
        record(job, task, CheckResult.from_dict(data), deps)
    elif kind == "discovered":
        _, names, deps = message
        assert isinstance(names, list) and isinstance(deps, list)
        return found(job, names, deps)
    return []
