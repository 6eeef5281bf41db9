"""The run's records: options, tasks, jobs and outcomes, and the results made straight from them."""

from __future__ import annotations

import os
import shlex
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradcheck_cli.errors import GradcheckCliError
from gradcheck_cli.results import NO_CHECK, CheckResult, Status
from gradcheck_cli.settings import RunOptions
from gradcheck_cli.specs.collect import display
from gradcheck_cli.specs.specfile import CaseSpec, CheckSettings


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
    # The target itself, when it is a Python object handed over (the API's `check`), not
    # a name to look up in `module`; it never crosses to a worker.
    target: Any = None


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
    signal: int | None = None  # the SIGTERM or SIGHUP that ended it, when one did
    # A Function or case chosen (-k, --case) that matches nothing: a typo, said as usage.
    selection_error: GradcheckCliError | None = None


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
        device=NO_CHECK,
        check=NO_CHECK,
        status=Status.ERROR,
        message=str(exc),
        location=exc.location,
        line=exc.line,
    )


def task_seed(task: Task, options: RunOptions) -> int:
    return options.seed if options.seed is not None else (task.settings.seed or 0)


def reproduce_command(task: Task, seed: int) -> str:
    """The command that re-runs only this result."""

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


def next_job(queue: deque[Job], skip: Callable[[Task], bool]) -> Job | None:
    """The next job to run, past those whose Function is already known broken (`skip`)."""
    while queue:
        job = queue.popleft()
        if job.tasks and skip(job.tasks[0]):
            continue
        return job
    return None


def worker_count(options: RunOptions) -> int:
    """How many processes check at once: 1 in process (-j 0), else -j N or one per core."""
    if options.jobs == 0:
        return 1
    return options.jobs if options.jobs > 0 else (os.cpu_count() or 1)


