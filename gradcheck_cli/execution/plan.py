"""Specs -> tasks: one per Function x case x device x check, as flags, spec and defaults say."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from gradcheck_cli.errors import SpecError
from gradcheck_cli.execution.tasks import Job, Task, error_result
from gradcheck_cli.results import CheckResult
from gradcheck_cli.settings import RunOptions
from gradcheck_cli.specs.collect import display
from gradcheck_cli.specs.specfile import CHECKS, CaseSpec, CheckSettings, SpecFile, load_spec

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


