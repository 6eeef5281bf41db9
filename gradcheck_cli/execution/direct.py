"""Checks of a Python object on arguments given in code (the API's `check`), in this process.

The arguments become spec records holding the values (`GivenTensor`), so the same planner
choices, engine, tolerances, diagnosis and isolation of torch's state apply as for a spec
file; only the inputs are the caller's rather than drawn from a seed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from gradcheck_cli.engine.checks import CHECKS
from gradcheck_cli.engine.inputs import check_arity
from gradcheck_cli.errors import SpecError
from gradcheck_cli.execution.plan import chosen_checks, default_devices
from gradcheck_cli.execution.tasks import Task
from gradcheck_cli.results import CheckResult, Status
from gradcheck_cli.settings import RunOptions
from gradcheck_cli.specs.specfile import (
    CaseSpec,
    CheckSettings,
    GivenTensor,
    InputSpec,
    ListInput,
    LiteralInput,
)
from gradcheck_cli.target.records import Target


def _leaf(value: Any, dtype: Any, all_grad: bool) -> GivenTensor | LiteralInput:
    import torch

    if not isinstance(value, torch.Tensor):
        return LiteralInput(value=value)
    floating = value.is_floating_point() or value.is_complex()
    if floating and dtype is not None:
        value = value.to(dtype if not value.is_complex() or dtype.is_complex
                         else torch.complex128)
    wants = floating and (all_grad or value.requires_grad)
    return GivenTensor(value=value.detach().clone(), requires_grad=wants)


def as_specs(args: Sequence[Any], kwargs: Mapping[str, Any], dtype: Any
             ) -> tuple[tuple[InputSpec, ...], tuple[tuple[str, InputSpec], ...]]:
    """Spec records for the caller's arguments: tensors cloned (floating ones in `dtype`),
    lists and tuples of tensors as lists, anything else passed as is. When no tensor
    given requires grad, every floating one is checked; else only those that do."""
    import torch

    def tensors(value: Any) -> list[Any]:
        if isinstance(value, (list, tuple)):
            return [v for v in value if isinstance(v, torch.Tensor)]
        return [value] if isinstance(value, torch.Tensor) else []

    given = [t for v in (*args, *kwargs.values()) for t in tensors(v)]
    all_grad = not any(t.requires_grad for t in given)

    def spec(value: Any) -> InputSpec:
        if isinstance(value, dict) and any(isinstance(v, torch.Tensor) for v in value.values()):
            raise TypeError("tensors inside a dict would not be checked: pass them as "
                            "arguments of their own, or as a list")
        if isinstance(value, (list, tuple)) and tensors(value):
            return ListInput(tuple(_leaf(v, dtype, all_grad) for v in value))
        return _leaf(value, dtype, all_grad)

    return (tuple(spec(a) for a in args),
            tuple((name, spec(value)) for name, value in kwargs.items()))


def check_object(target: Target, args: Sequence[Any], kwargs: Mapping[str, Any],
                 options: RunOptions, dtype: Any) -> list[CheckResult]:
    """Every chosen check of `target` on these arguments, on each device, in order."""
    from gradcheck_cli.execution.execute import execute
    from gradcheck_cli.quiet import quiet_torch_import

    quiet_torch_import()
    specs, keywords = as_specs(args, kwargs, dtype)
    try:
        check_arity(target, specs, None, None, keywords)
    except SpecError as exc:  # said as Python says a bad call, without the spec's words
        words = exc.message.replace("the spec's `inputs` give", "it was given").replace(
            "the spec gives", "it was given").replace("which the spec does not give",
                                                      "which were not given")
        raise TypeError(words) from None
    case = CaseSpec("default", specs, kwargs=keywords)
    settings = CheckSettings()
    kind = "custom_op" if target.kind == "custom_op" else None
    checks = chosen_checks(options, settings, kind)
    devices = options.devices or default_devices()
    explicit = options.checks is not None
    tasks = [Task(module=target.file, spec=None, function=target.name, case=case,
                  device=device, check=check, settings=settings, inferred=False,
                  explicit_checks=explicit, target=target)
             for device in devices for check in checks if not CHECKS[check].once_per_case]
    tasks += [Task(module=target.file, spec=None, function=target.name, case=case,
                   device="cpu", check=check, settings=settings, inferred=False,
                   explicit_checks=explicit, target=target)
              for check in checks if CHECKS[check].once_per_case]
    results: list[CheckResult] = []
    first_order_ok: dict[str, bool] = {}
    for task in tasks:
        started = time.perf_counter()
        result = execute(task, options, first_order_ok=first_order_ok.get(task.device))
        result.duration = time.perf_counter() - started
        result.reproduce = None  # no command line re-runs values given in code
        if CHECKS[task.check].first_order:
            first_order_ok[task.device] = result.status is Status.PASSED
        results.append(result)
    return results
