"""check_jacobians: torch's gradcheck sub-checks, in torch's order, measuring every input.

The order and meaning of the sub-checks follow `torch.autograd.gradcheck` (slow mode):
inputs, forward, Jacobians (computed twice, for reentrancy), backward scaled by
grad_output, undefined output gradients. The Jacobians are compared exactly (every entry,
`jacobian.compare`) or, when that would not fit the memory budget or the time limit, by
random-direction probes (`probe.probe_compare`); `mode.choose_mode` decides, and the
outcome says which and why. A failure is diagnosed (`diagnose.diagnoser`).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from gradcheck_cli.engine import cost
from gradcheck_cli.engine.checks.comparing import (
    comparisons,
    mover,
    part_functions,
    puller,
    remeasurer,
)
from gradcheck_cli.engine.checks.culprit import blame
from gradcheck_cli.engine.checks.extras import extra_failure
from gradcheck_cli.engine.checks.mode import (
    ModeChoice,
    choose_mode,
    exact_too_large,
    fall_back,
)
from gradcheck_cli.engine.checks.preconditions import (
    check_finite_outputs,
    check_inputs,
    no_differentiable_outputs,
    no_tensor_outputs,
)
from gradcheck_cli.engine.checks.reference_mode import reference_comparisons
from gradcheck_cli.engine.checks.subject import Request, Stop, Subject
from gradcheck_cli.engine.checks.verdict import judge
from gradcheck_cli.engine.diagnose.case import Context
from gradcheck_cli.engine.diagnose.diagnoser import Part, diagnose
from gradcheck_cli.engine.jacobian import (
    ExactTooLarge,
    ShapeChanged,
    WrongGradientShape,
    as_tuple,
    diff_positions,
    is_diff_tensor,
)
from gradcheck_cli.engine.outcome import Outcome
from gradcheck_cli.engine.reference import NoReference
from gradcheck_cli.engine.stats import Comparison
from gradcheck_cli.results import Status


def check_jacobians(subject: Subject, request: Request) -> Outcome:
    """One first-order check of `subject.fn` at its arguments: torch's sub-checks, in
    torch's order; the outcome says which mode compared the Jacobians, and why."""
    cost.check_mode(request.mode)
    choice = ModeChoice.before_measuring(request.mode)
    try:
        outcome = _run(subject, request, choice)
    except Stop as stop:
        outcome = stop.outcome
    outcome.mode = choice.mode
    outcome.mode_reason = choice.reason
    return outcome


def _run(subject: Subject, request: Request, choice: ModeChoice) -> Outcome:
    refusal = check_inputs(subject)
    if refusal is not None:
        return refusal
    try:
        started = time.perf_counter()
        func_out = as_tuple(subject.fn(*subject.args))
        forward_seconds = time.perf_counter() - started
    except Exception as exc:
        raise subject.stop(exc, subject.evaluated) from None
    refusal = no_tensor_outputs(subject, func_out)
    if refusal is not None:
        return refusal
    check_finite_outputs(subject, func_out)
    diff_outputs = [o for o in func_out if is_diff_tensor(o)]
    if not diff_outputs:
        return no_differentiable_outputs(subject, choice.mode, request.tolerances.eps,
                                         request.seed, func_out)
    refusal = choose_mode(subject, request, choice, func_out, diff_outputs, forward_seconds)
    if refusal is not None:
        return refusal
    compared = _compare(subject, request, choice, func_out, diff_outputs)
    if isinstance(compared, Outcome):
        return compared
    outcome = judge(subject, request.tolerances, choice.mode, compared)
    if outcome.status is Status.FAILED:
        _diagnose(subject, request, choice.mode, outcome, compared)
        if subject.order == "first" and not subject.target.is_autograd_function:
            # A composite (a module, a function on Functions): find the Function at fault.
            blame(subject.fn, subject.args, outcome, request.tolerances, request.seed)
    if outcome.status is Status.PASSED:
        extra = extra_failure(subject, diff_outputs)
        if extra:
            outcome.status = Status.FAILED
            outcome.message = extra
            outcome.location = subject.backward_location
    return outcome


def _compare(subject: Subject, request: Request, choice: ModeChoice,
             func_out: tuple[Any, ...], diff_outputs: list[torch.Tensor]
             ) -> list[Comparison] | Outcome:
    """The comparisons in the chosen mode (auto: redone by probes when exact mode outgrows
    the memory budget after all), or the outcome of a failure to compare."""
    try:
        if choice.mode == "reference":
            try:
                compared, choice.reason = reference_comparisons(subject, request, func_out,
                                                                diff_outputs)
                return compared
            except NoReference as exc:  # the finite differences decide: exact or probe
                refusal = fall_back(subject, request, choice, func_out, diff_outputs, str(exc),
                                    quiet=exc.expected)
                if refusal is not None:
                    return refusal
        try:
            return comparisons(subject, request, choice.mode, func_out, diff_outputs)
        except ExactTooLarge as exc:
            if request.mode == "exact":
                return exact_too_large(exc.needed_bytes, request.budget_bytes)
            choice.mode = "probe"
            choice.reason = (f"exact mode outgrew the memory budget ({exc}), so the "
                             "check was redone by random-direction probes")
            return comparisons(subject, request, choice.mode, func_out, diff_outputs)
    except WrongGradientShape as exc:
        name = subject.names[diff_positions(subject.args)[exc.position]]
        return Outcome(Status.FAILED, f"backward returned a gradient of shape {exc.got} "
                       f"for `{name}`, whose shape is {exc.expected}",
                       location=subject.backward_location)
    except ShapeChanged as exc:
        return Outcome(Status.ERROR, f"{exc}; gradcheck needs outputs of fixed shape")
    except Exception as exc:
        raise subject.stop(exc, "backward") from None


def _diagnose(subject: Subject, request: Request, mode: str, outcome: Outcome,
              compared: list[Comparison]) -> None:
    """Diagnose each failing input (each part of complex outputs on its own); the advice
    of the diagnoses goes to the outcome."""
    complex_outputs = len(compared) > 1
    # Backward's own answers (`pull`): at first order only, where fn's backward is the user's.
    # Projected reference blocks have a row per random grad_output, not per output element.
    parts = [Part(comparison, mover(subject, fn) if comparison.layout != "projected" else None,
                  label,
                  puller(subject, fn, request.seed) if subject.order == "first" else None)
             for comparison, (label, fn) in zip(compared, part_functions(subject, complex_outputs))]
    # A second look compares again at other steps: affordable for dense Jacobians only.
    dense = all(c.layout == "dense" for c in compared)
    remeasure = remeasurer(subject, request, mode, complex_outputs) if dense else None
    context = Context(request.tolerances, subject.order, subject.output_name,
                      subject.first_order_ok)
    outcome.advice += diagnose(outcome.inputs, parts, context, subject.names,
                               subject.shapes(), remeasure)
