"""One task -> one CheckResult: resolve the target, build inputs, run the check."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from gradcheck_cli.engine.checks import CHECKS
from gradcheck_cli.engine.contract import explain, legacy_message
from gradcheck_cli.engine.describe import safe_repr, summary, traceback_text
from gradcheck_cli.engine.inputs import build_inputs, check_arity, describe, layout_of
from gradcheck_cli.engine.outcome import CheckContext, Outcome, Tolerances
from gradcheck_cli.engine.pictures import failing_jacobians
from gradcheck_cli.engine.resources import (
    OutOfMemory,
    budget_bound,
    check_fits,
    jacobian_budget,
    out_of_memory,
    ran_out,
)
from gradcheck_cli.engine.seeding import manual_seed
from gradcheck_cli.errors import GradcheckCliError, ModuleLoadError, SpecError, did_you_mean
from gradcheck_cli.execution import escapes, isolation
from gradcheck_cli.execution.tasks import (
    Task,
    error_result,
    reproduce_command,
    task_result,
    worker_count,
)
from gradcheck_cli.init.choose import Inferred, choose_inputs, shown
from gradcheck_cli.results import CheckResult, Status
from gradcheck_cli.settings import RunOptions
from gradcheck_cli.specs.collect import display
from gradcheck_cli.specs.specfile import GivenTensor, InputSpec, Keywords, TensorInput, leaves
from gradcheck_cli.target.custom_op import OpTarget, not_checkable
from gradcheck_cli.target.discovery import Target, candidate_names, import_file, resolve
from gradcheck_cli.target.module import module_target, required_init_args

TORCH_DEFAULTS = Tolerances()


def tolerances(task: Task, options: RunOptions) -> Tolerances:
    settings = task.settings

    def pick(flag: float | None, spec: float | None, default: float) -> float:
        return flag if flag is not None else spec if spec is not None else default

    return Tolerances(
        eps=pick(options.eps, settings.eps, TORCH_DEFAULTS.eps),
        atol=pick(options.atol, settings.atol, TORCH_DEFAULTS.atol),
        rtol=pick(options.rtol, settings.rtol, TORCH_DEFAULTS.rtol),
        nondet_tol=pick(None, settings.nondet_tol, TORCH_DEFAULTS.nondet_tol),
    )


def load_target(task: Task, case: str = "default") -> Target | CheckResult:
    """The task's Function, or the error result (for `case`) of a module that does not
    import or does not define it."""
    try:
        module = import_file(task.module)
    except ModuleLoadError as exc:
        return error_result(task.module, task.spec, exc)
    target = resolve(module, task.module, task.function)
    if target is None:
        hint = did_you_mean(task.function, candidate_names(module))
        missing = SpecError(
            f"`{task.function}` is not defined in {display(task.module)}",
            file=display(task.spec) if task.spec else None, line=task.spec_line,
            hint=hint or "name a torch.autograd.Function subclass or a function of that module",
        )
        return error_result(task.module, task.spec, missing, task.function, case)
    return target


def execute(task: Task, options: RunOptions, first_order_ok: bool | None = None) -> CheckResult:
    """Run one check; every problem, ours included, becomes a result rather than an exception.

    A module that does not import, or a Function the module lacks, gives a result with
    check NO_CHECK (and function None for the module), which the runner reports once.
    The check runs under torch's state from before any user code (see `isolation`), and an
    exit or KeyboardInterrupt raised by the user's code is its error, not the run's end.
    """
    with isolation.checking() as unrestored, escapes.watch() as watch:
        result = _guarded(task, options, first_order_ok, unrestored, watch)
    note = isolation.import_note(task.module)
    if note:
        result.message = f"{result.message}\n{note}" if result.message else note
    return result


def _guarded(task: Task, options: RunOptions, first_order_ok: bool | None,
             unrestored: list[str], watch: escapes.Watch) -> CheckResult:
    result = task_result(task, options, status=Status.PASSED)
    try:
        target = task.target if task.target is not None else isolation.watch_import(
            task.module, lambda: load_target(task, task.case.name))
    except escapes.ESCAPES as exc:  # import_file lets KeyboardInterrupt through
        escaped = watch.escape(exc, task.module)
        if escaped is None:
            raise
        return error_result(task.module, task.spec, escaped)
    if isinstance(target, CheckResult):
        return target
    try:
        if unrestored:
            raise GradcheckCliError(
                f"torch's global state could not be put back ({', '.join(unrestored)}), "
                "so the check would not be trustworthy: a module imported earlier in this "
                "process changed it")
        _execute(task, target, options, result, first_order_ok)
    except GradcheckCliError as exc:
        _errored(result, exc)
    except Exception as exc:  # a bug of ours must not cost the rest of the run
        if out_of_memory(exc):  # the checker's own allocation: no bug, no room
            _errored(result, ran_out(exc, "", worker_count(options)))
        else:
            result.status = Status.ERROR
            result.message = (f"internal error in gradcheck-cli: {summary(exc, whole=True)}\n"
                              + traceback_text(exc))
    except escapes.ESCAPES as exc:
        escaped = watch.escape(exc, task.module)
        if escaped is None:
            raise
        result.status = Status.ERROR
        result.message = str(escaped)
        result.location = escaped.location
    if result.status.is_problem:
        result.reproduce = reproduce_command(task, result.seed or 0)
    else:
        result.reproduce = None
    return result


def _bounded(outcome: Outcome, requested: int, workers: int) -> None:
    """Advice to raise the Jacobian budget is wrong when memory itself bounds the budget
    (little free memory, an rlimit, a container's limit): say that instead."""
    if not any(a.kind == "more_memory" for a in outcome.advice):
        return
    bound = budget_bound(requested, workers)
    if bound is not None:
        outcome.advice = [a for a in outcome.advice if a.kind != "more_memory"]
        outcome.message = f"{outcome.message}; {bound}"


def _errored(result: CheckResult, exc: GradcheckCliError) -> None:
    result.status = Status.ERROR
    result.message = str(exc)
    if isinstance(exc, OutOfMemory):
        result.advice = list(exc.advice)
        if exc.where:  # else the Function's line, set before the check ran
            result.location = _shown(exc.where)
    else:
        result.location = exc.location


def _not_checkable(task: Task, target: Target, result: CheckResult) -> bool:
    """Settle the results known without running the check (no CUDA, a legacy Function, a
    double backward of a @once_differentiable backward); whether one was."""
    if task.device.startswith("cuda") and not torch.cuda.is_available():
        result.status = Status.SKIPPED
        result.message = "CUDA not available"
        return True
    settled = not_checkable(target, task.check, task.explicit_checks)  # custom ops
    if settled is not None:
        result.status, result.message, where = settled
        result.location = _shown(where) if where else result.location
        return True
    if target.kind == "legacy":
        result.status = Status.ERROR
        result.message = legacy_message(target)
        result.location = f"{display(target.file)}:{target.forward_line or target.line}"
        return True
    if CHECKS[task.check].double_backward and target.once_differentiable:
        reason = (f"{target.name}.backward is decorated @once_differentiable, so it has no "
                  "second derivative")
        if task.explicit_checks:
            result.status = Status.FAILED
            result.message = reason + f", but {task.check} was asked for explicitly"
            result.location = f"{display(target.file)}:{target.backward_line or target.line}"
        else:
            result.status = Status.SKIPPED
            result.message = reason
        return True
    return False


def _execute(task: Task, target: Target, options: RunOptions, result: CheckResult,
             first_order_ok: bool | None) -> None:
    result.line = target.line
    result.location = f"{display(target.file)}:{target.line}"
    if _not_checkable(task, target, result):
        return
    specs = task.case.inputs
    if specs is None:
        chosen = _inferred(task, target, options, result)
        if chosen is None or chosen.specs is None:
            return
        specs = chosen.specs
        # The drafted inputs stand for the case's from here on (keyword-only ones too).
        task = replace(task, case=replace(task.case, inputs=specs, kwargs=chosen.kwargs))
    else:
        check_arity(target, specs, display(task.spec) if task.spec else None, task.spec_line,
                    task.case.kwargs)
    workers = worker_count(options)
    too_big = check_fits(leaves(specs, task.case.kwargs), workers)
    if too_big is not None:
        result.status = Status.ERROR
        result.message, result.advice = too_big
        return
    tol = tolerances(task, options)
    budget = jacobian_budget(options.max_memory, workers)  # bytes of Jacobian per check
    outcome, names, attempt_seed, tried = _run_check(task, target, specs, options, tol, budget,
                                                     result.seed or 0, first_order_ok)
    _bounded(outcome, options.max_memory, workers)
    if tried and attempt_seed not in tried:
        outcome.message = (f"inputs redrawn to dodge kinks (seed {', '.join(map(str, tried))} "
                           f"put elements at a non-differentiable point; used seed "
                           f"{attempt_seed}). " + outcome.message).strip()
        result.seed = attempt_seed
    _record(result, outcome, options)
    if target.kind != "module":
        result.recipe = {"inputs": recipe(specs, names, task.case.kwargs), "eps": tol.eps,
                         "atol": tol.atol, "rtol": tol.rtol}
        layout = layout_of(specs, task.case.kwargs)
        if isinstance(target, OpTarget):  # called through torch.ops, by its schema
            result.recipe["op"] = target.qualname
            layout = layout or target.flat_layout(len(names))
        if layout is not None:  # how the flat inputs are passed: [keyword, list length]
            result.recipe["layout"] = [list(slot) for slot in layout.slots]
    if task.inferred and outcome.status is Status.ERROR and _forward_failed(outcome.message):
        # Guessed inputs that forward rejects: the fix is a spec, so show one to fill in.
        result.message = _inferred_hint(target, specs, names, outcome.message, options.shape)


# The inputs chosen for a target in this process: its checks (gradcheck, gradgradcheck, ...)
# run one after another on the same inputs, so the drafts are tried once, not per check.
_INFERRED: dict[tuple[Any, str, tuple[int, ...]], Inferred] = {}


def _inferred(task: Task, target: Target, options: RunOptions, result: CheckResult
              ) -> Inferred | None:
    """Inputs for a bare .py's target, drafted from forward and tried once (None, with the
    result an error saying how to write a spec, when no draft runs)."""
    init = task.settings.init or {}
    if target.kind == "module" and not init:
        missing = required_init_args(target.obj)
        if missing:
            result.status = Status.ERROR
            result.message = _needs_init(target, missing)
            return None
    key = (target.obj, repr(sorted(init.items())), options.shape)
    if key not in _INFERRED:
        _INFERRED[key] = choose_inputs(target, init, options.shape)
    chosen = _INFERRED[key]
    if chosen.specs is None:
        result.status = Status.ERROR
        result.message = (
            f"no inputs inferred for `{target.name}` fit its forward ({chosen.tried} "
            f"draft(s) tried; the first failed with {chosen.problem})\n"
            f"  hint: write a spec with the inputs it expects: gradcheck-cli init "
            f"{display(target.file)}")
        result.location = _shown(target.forward_location)
        return None
    result.inputs_inferred = shown(chosen.specs, [p.name for p in target.params],
                                   chosen.kwargs)
    return chosen


def _needs_init(target: Target, missing: list[str]) -> str:
    """The message for an nn.Module whose constructor needs arguments, with the spec block."""
    args = ", ".join(f"`{name}`" for name in missing)
    fill = ", ".join(f"{name}: ..." for name in missing)
    first = target.params[0].name if target.params else "x"
    return "\n".join([
        f"{target.name}() needs constructor arguments {args}: give them under `init:` in a "
        "spec, e.g.:",
        f"  module: {display(target.file)}",
        "  functions:",
        f"    {target.name}:",
        f"      init: {{{fill}}}",
        "      inputs:",
        f"        - {{shape: [3, 4], name: {first}}}",
    ])


def _run_check(task: Task, target: Target, specs: tuple[InputSpec, ...], options: RunOptions,
               tol: Tolerances, budget: int, seed: int, first_order_ok: bool | None
               ) -> tuple[Outcome, list[str], int, list[int]]:
    """Run the task's registered check, on redrawn inputs while the only failures sit at
    kinks and `dodge_kinks` allows; the outcome, the input names, the seed used and the
    seeds given up."""
    run = CHECKS[task.check].load()
    tried: list[int] = []
    for attempt in range(4 if options.dodge_kinks else 1):
        attempt_seed = seed + attempt
        built = build_inputs(target, specs, attempt_seed, task.device, task.case.kwargs)
        checked, args, names = target, built.args, built.names
        if built.layout is not None:
            checked = replace(target, layout=built.layout)
        if target.kind == "module":
            checked, args, names = module_target(target, built.args, built.names,
                                                 task.settings.init or {}, attempt_seed,
                                                 task.device, built.layout)
        widened = _widened(args, names) if CHECKS[task.check].finite_differences else ""
        manual_seed(attempt_seed)
        context = CheckContext(checked, args, names, tol, budget, attempt_seed,
                               mode=options.mode, first_order_ok=first_order_ok,
                               explicit=task.explicit_checks)
        outcome: Outcome = run(context)
        if widened:
            outcome.message = f"{outcome.message}\n{widened}".strip()
        if not _only_kinks(outcome):
            break
        tried.append(attempt_seed)
    return outcome, built.names, attempt_seed, tried


def _widened(args: list[Any], names: list[str]) -> str:
    """Put 16-bit tensors in float64 (in place in `args`), on their very values: a
    finite-difference step is below their resolution. What was done, in words."""
    changed: dict[str, list[str]] = {}
    for index, arg in enumerate(args):
        if isinstance(arg, torch.Tensor) and arg.dtype in (torch.bfloat16, torch.float16):
            args[index] = arg.detach().double().requires_grad_(arg.requires_grad)
            changed.setdefault(str(arg.dtype).removeprefix("torch."), []).append(names[index])
    return "".join(
        f"note: {dtype} input(s) {', '.join(f'`{n}`' for n in shown)} checked in float64 on "
        f"their {dtype} values (a finite-difference step is below {dtype}'s resolution); "
        f"the `{dtype}` check compares the {dtype} run with float64. "
        for dtype, shown in changed.items()).strip()


def _record(result: CheckResult, outcome: Outcome, options: RunOptions) -> None:
    """Copy what the check found onto the result."""
    result.status = outcome.status
    result.message = outcome.message
    result.inputs = outcome.inputs
    result.mode = outcome.mode
    result.mode_reason = outcome.mode_reason
    result.capabilities = outcome.capabilities
    result.advice = list(outcome.advice)
    if options.keep_jacobians and outcome.status is Status.FAILED:
        result.jacobians = failing_jacobians(outcome) or None
    if outcome.location:
        result.location = _shown(outcome.location)


def _only_kinks(outcome: Outcome) -> bool:
    failing = [e for e in outcome.inputs if not e.passed]
    return (outcome.status is Status.FAILED and bool(failing)
            and all(e.diagnosis is not None and e.diagnosis.kind == "kink" for e in failing))


def recipe(specs: tuple[InputSpec, ...], names: list[str],
           kwargs: Keywords = ()) -> list[dict[str, Any]]:
    """How each input was made, for a standalone reproduction script."""
    made: list[dict[str, Any]] = []
    for spec, name in zip(leaves(specs, kwargs), names):
        if isinstance(spec, TensorInput):
            made.append({"name": name, "shape": list(spec.shape), "dtype": spec.dtype,
                         "low": spec.low, "high": spec.high,
                         "requires_grad": spec.requires_grad, "avoid": list(spec.avoid)})
        elif isinstance(spec, GivenTensor):  # values given in Python: not redrawn
            made.append({"name": name, "given": True, "shape": list(spec.value.shape),
                         "dtype": str(spec.value.dtype).removeprefix("torch.")})
        else:
            made.append({"name": name, "value": spec.value})
    return made


def _shown(location: str) -> str:
    path, _, line = location.rpartition(":")
    if path and line.isdigit():
        return f"{display_path(path)}:{line}"
    return display_path(location)


def display_path(path: str) -> str:
    return display(Path(path))


def _forward_failed(message: str) -> bool:
    return " in forward" in message or message.startswith("forward returned")


def _inferred_hint(target: Target, specs: tuple[object, ...], names: list[str],
                   message: str, shape: tuple[int, ...]) -> str:
    shown = describe(tuple(s for s in specs if isinstance(s, TensorInput)), names)
    lines = [
        f"inputs were inferred ({shown or 'no arguments'}) and the check could not run: "
        f"{message}",
        "Write a spec with the inputs forward expects, e.g.:",
        f"  module: {display(target.file)}",
        "  functions:",
        f"    {target.name}:",
        "      inputs:",
    ]
    for param in target.params:
        if param.has_default:
            lines.append(f"        - {safe_repr(param.default)}   # {param.name}")
        else:
            lines.append(f"        - {{shape: {list(shape)}, name: {param.name}}}")
    return "\n".join(lines)


__all__ = ["execute", "explain"]
