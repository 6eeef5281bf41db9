"""Specs -> tasks: one per Function x case x device x check, as flags, spec and defaults say."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gradcheck_cli.engine.checks import CHECKS, default_checks, expand_groups
from gradcheck_cli.errors import SpecError, UsageError, did_you_mean
from gradcheck_cli.execution.tasks import Job, Task, error_result
from gradcheck_cli.results import CheckResult
from gradcheck_cli.settings import RunOptions
from gradcheck_cli.specs.collect import display
from gradcheck_cli.specs.specfile import (
    CaseSpec,
    CheckSettings,
    SpecFile,
    TensorInput,
    leaves,
    load_spec,
)
from gradcheck_cli.target.custom_op import is_declared_op
from gradcheck_cli.target.source_facts import source_facts


def nvidia_nodes_absent() -> bool:
    """Whether /dev tells for sure that there is no CUDA device (Linux without /dev/nvidia*)."""
    return sys.platform.startswith("linux") and not any(Path("/dev").glob("nvidia*"))


_CUDA_ANSWER: list[bool] = []  # torch's answer, once asked in this process


def forget_cuda_answer() -> None:
    """Ask again next time (tests and benchmarks that change what /dev shows)."""
    _CUDA_ANSWER.clear()


def cuda_possible(before_import: Callable[[], None] | None = None) -> bool:
    """Whether CUDA could be available, answered without importing torch where we can.

    On Linux a CUDA device needs /dev/nvidia* nodes: with none, the answer is no and a
    fully cached run never pays for `import torch`. Otherwise torch is asked, once per
    process; `before_import` runs just before (the runner starts its fork server there, so
    that the two imports of torch overlap).
    """
    if nvidia_nodes_absent():
        return False
    if not _CUDA_ANSWER:
        if before_import is not None:
            before_import()
        import torch

        _CUDA_ANSWER.append(bool(torch.cuda.is_available()))
    return _CUDA_ANSWER[0]


def default_devices(before_import: Callable[[], None] | None = None) -> tuple[str, ...]:
    return ("cpu", "cuda") if cuda_possible(before_import) else ("cpu",)


def _selected(name: str, options: RunOptions) -> bool:
    return not options.functions or name in options.functions


@dataclass
class Seen:
    """The Function and case names the plan met, to tell a typo in a selection from a choice.

    `complete` turns False when some file's names could not be read (a spec or a module
    that does not load): a selected name may then live there.
    """

    functions: set[str] = field(default_factory=set)
    cases: set[str] = field(default_factory=set)
    complete: bool = True


def unmatched_selection(options: RunOptions, seen: Seen) -> UsageError | None:
    """A usage error for a Function or case name chosen that matches nothing planned."""
    if not seen.complete:
        return None
    for chosen, found, what in ((options.functions, seen.functions, "Function"),
                                (options.cases, seen.cases, "case")):
        for name in chosen:
            if name not in found:
                hint = did_you_mean(name, found) or (
                    f"found: {', '.join(f'`{n}`' for n in sorted(found))}" if found
                    else f"no {what} at all in the paths given")
                return UsageError(f"no {what} named `{name}` in the paths given", hint=hint)
    return None


def plan_spec(path: Path, options: RunOptions, spec: SpecFile | None = None,
              before_torch: Callable[[], None] | None = None,
              seen: Seen | None = None) -> Iterator[Task | CheckResult]:
    """The tasks of one spec file (reading YAML only, unless given it already loaded), or
    error results for its problems. `before_torch` runs if torch must be asked about CUDA;
    `seen` collects the names met."""
    seen = seen if seen is not None else Seen()
    if spec is None:
        spec = load_spec(path, display(path))
    if spec.error is not None or spec.module is None:
        seen.complete = False
        yield error_result(None, path, spec.error or SpecError("spec has no module",
                                                               file=display(path)))
        return
    for function in spec.functions:
        seen.functions.add(function.name)
        if not _selected(function.name, options):
            continue
        seen.cases.update(case.name for case in function.cases)
        if function.error is not None:
            yield error_result(spec.module, path, function.error, function.name)
            continue
        for case in function.cases:
            if options.cases and case.name not in options.cases:
                continue
            settings = function.settings.merged(case.settings)
            yield from expand(spec.module, path, function.name, case, settings,
                              inferred=case.inputs is None, options=options,
                              spec_line=case.line or function.line, before_torch=before_torch)


def chosen_checks(options: RunOptions, settings: CheckSettings,
                  target_kind: str | None = None,
                  facts: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The checks to run: the command line's, else the spec's, else the registry's defaults
    for this kind of target and what its source shows (`facts`); plus those switched on by
    their opt-in key (`float32: true`, --capabilities). A group (`opcheck`) stands for its
    checks."""
    checks = list(expand_groups(options.checks or settings.checks
                                or default_checks(target_kind, facts)))
    for kind in CHECKS.values():
        key = kind.opt_in_key
        if key and kind.name not in checks and (getattr(options, key, False)
                                                or getattr(settings, key, False)):
            checks.append(kind.name)
    return tuple(checks)


def input_facts(case: CaseSpec) -> frozenset[str]:
    """What a case's inputs show that turns checks on (`bfloat16_inputs`, `float16_inputs`)."""
    return frozenset(f"{s.dtype}_inputs" for s in leaves(case.inputs or (), case.kwargs)
                     if isinstance(s, TensorInput) and s.dtype in ("bfloat16", "float16"))


def expand(module: Path, spec: Path | None, name: str, case: CaseSpec, settings: CheckSettings,
           inferred: bool, options: RunOptions, spec_line: int | None,
           before_torch: Callable[[], None] | None = None) -> Iterator[Task]:
    """One task per device and check, as the flags, else the spec, else the defaults say."""
    devices = options.devices or settings.devices or default_devices(before_torch)
    # Read from the module's source (no import): a custom op also gets opcheck's tests, a
    # Function reading ctx.needs_input_grad or defining jvp the checks of those.
    checks = chosen_checks(options, settings,
                           "custom_op" if is_declared_op(module, name) else None,
                           source_facts(module, name) | input_facts(case))
    explicit = options.checks is not None or settings.checks is not None

    def task(device: str, check: str) -> Task:
        return Task(module=module, spec=spec, function=name, case=case, device=device,
                    check=check, settings=settings, inferred=inferred,
                    explicit_checks=explicit, spec_line=spec_line)

    for device in devices:
        for check in checks:
            if not CHECKS[check].once_per_case:
                yield task(device, check)
    for check in checks:
        if CHECKS[check].once_per_case:
            # One result per Function x case (the capability matrix probes CUDA itself).
            yield task("cpu", check)


def discovered_tasks(path: Path, names: list[str], options: RunOptions,
                     before_torch: Callable[[], None] | None = None,
                     seen: Seen | None = None) -> Iterator[Task]:
    """Tasks with inferred inputs for the Functions found in a bare .py file."""
    for name in names:
        if seen is not None:
            seen.functions.add(name)
            seen.cases.add("default")
        if _selected(name, options):
            case = CaseSpec("default", None, CheckSettings(), None)
            yield from expand(path, None, name, case, CheckSettings(), inferred=True,
                              options=options, spec_line=None, before_torch=before_torch)


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


