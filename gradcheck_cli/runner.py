"""Plan -> results: load specs and modules, build inputs, run each check, never stop early."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gradcheck_cli.collect import Item, display
from gradcheck_cli.errors import GradcheckCliError, SpecError, did_you_mean
from gradcheck_cli.results import CheckResult, Status
from gradcheck_cli.specfile import CHECKS, CaseSpec, CheckSettings, FunctionSpec, load_spec

DEFAULT_MAX_MEMORY = 1 << 30  # bytes of Jacobian blocks held at once per check


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
    extra: dict[str, object] = field(default_factory=dict)


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


def _error(module: Path | None, spec: Path | None, exc: GradcheckCliError,
           function: str | None = None, case: str = "default") -> CheckResult:
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


def _default_devices() -> tuple[str, ...]:
    import torch

    return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


def plan(items: list[Item], options: RunOptions) -> Iterator[Task | CheckResult]:
    """Expand items into tasks; problems found while planning come out as error results."""
    for item in items:
        if item.kind == "spec":
            yield from _plan_spec(item.path, options)
        else:
            yield from _plan_module(item.path, options)


def _selected(name: str, options: RunOptions) -> bool:
    return not options.functions or name in options.functions


def _plan_spec(path: Path, options: RunOptions) -> Iterator[Task | CheckResult]:
    from gradcheck_cli.discovery import import_file

    spec = load_spec(path, display(path))
    if spec.error is not None or spec.module is None:
        error = spec.error or SpecError("spec has no module", file=display(path))
        yield _error(None, path, error)
        return
    try:
        module = import_file(spec.module)
    except GradcheckCliError as exc:
        yield _error(spec.module, path, exc)
        return
    for function in spec.functions:
        if not _selected(function.name, options):
            continue
        yield from _plan_function(spec.module, path, function, module, options)


def _plan_function(module_path: Path, spec_path: Path, function: FunctionSpec, module: object,
                   options: RunOptions) -> Iterator[Task | CheckResult]:
    from gradcheck_cli.discovery import candidate_names

    if function.error is not None:
        yield _error(module_path, spec_path, function.error, function.name)
        return
    if not callable(getattr(module, function.name, None)):
        hint = did_you_mean(function.name, candidate_names(module))  # type: ignore[arg-type]
        yield _error(module_path, spec_path, SpecError(
            f"`{function.name}` is not defined in {display(module_path)}",
            file=display(spec_path), line=function.line,
            hint=hint or "name a torch.autograd.Function subclass or a function of that module",
        ), function.name)
        return
    for case in function.cases:
        if options.cases and case.name not in options.cases:
            continue
        settings = function.settings.merged(case.settings)
        yield from _expand(module_path, spec_path, function.name, case, settings,
                           inferred=case.inputs is None, options=options,
                           spec_line=case.line or function.line)


def _expand(module: Path, spec: Path | None, name: str, case: CaseSpec, settings: CheckSettings,
            inferred: bool, options: RunOptions, spec_line: int | None) -> Iterator[Task]:
    devices = options.devices or settings.devices or _default_devices()
    checks = options.checks or settings.checks or CHECKS
    explicit = options.checks is not None or settings.checks is not None
    for device in devices:
        for check in checks:
            yield Task(module=module, spec=spec, function=name, case=case, device=device,
                       check=check, settings=settings, inferred=inferred,
                       explicit_checks=explicit, spec_line=spec_line)


def _plan_module(path: Path, options: RunOptions) -> Iterator[Task | CheckResult]:
    from gradcheck_cli.discovery import find_functions, import_file

    try:
        module = import_file(path)
    except GradcheckCliError as exc:
        yield _error(path, None, exc)
        return
    for target in find_functions(module, path):
        if not _selected(target.name, options):
            continue
        case = CaseSpec("default", None, CheckSettings(), None)
        yield from _expand(path, None, target.name, case, CheckSettings(), inferred=True,
                           options=options, spec_line=None)


def run(items: list[Item], options: RunOptions) -> Iterator[CheckResult]:
    """Every result, in plan order, as each finishes.

    The user's code (imports and checks) runs with stdout sent to stderr; our own output
    between results is untouched.
    """
    from gradcheck_cli.execute import execute

    planned = plan(items, options)
    while True:
        with user_output_to_stderr():
            entry = next(planned, None)
            if entry is None:
                return
            if isinstance(entry, CheckResult):
                result = entry
            else:
                started = time.perf_counter()
                result = execute(entry, options)
                result.duration = time.perf_counter() - started
        yield result
