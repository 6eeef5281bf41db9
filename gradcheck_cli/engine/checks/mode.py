"""The mode of one check: reference where it applies, else exact or probe by `cost.choose`.

Reference mode (`checks/reference_mode.py`) where autograd through forward applies; else,
or where it turns out not to (`fall_back`), exact or probe from the check's sizes and
measured timings."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import torch

from gradcheck_cli.engine import cost
from gradcheck_cli.engine.checks.subject import Request, Subject
from gradcheck_cli.engine.jacobian import (
    WrongGradientShape,
    analytical_row,
    is_diff_tensor,
    sizes_of,
)
from gradcheck_cli.engine.outcome import Outcome
from gradcheck_cli.results import Advice, Status

# Analytical rows sampled to estimate the nonzeros of a Jacobian too large to hold dense.
NONZERO_SAMPLE_ROWS = 8


@dataclass
class ModeChoice:
    """The mode a check runs in, and why: auto mode's reason for probe, reference mode's
    evidence, or why reference mode did not apply (empty otherwise)."""

    mode: str
    reason: str = ""

    @classmethod
    def before_measuring(cls, requested: str) -> ModeChoice:
        """Exact unless probe was asked for, until `choose_mode` has measured."""
        return cls("exact" if requested in ("auto", "reference") else requested)


def choose_mode(subject: Subject, request: Request, choice: ModeChoice,
                func_out: tuple[Any, ...], diff_outputs: list[torch.Tensor],
                forward_seconds: float) -> Outcome | None:
    """Settle `choice`: reference mode first where it applies (auto or asked for), else from
    the cost of exact mode; an error outcome when exact mode was asked for and cannot fit
    the memory budget."""
    if request.mode in ("auto", "reference"):
        reference = subject.reference
        if reference is not None and reference.run is not None:
            choice.mode, choice.reason = "reference", ""
            return None
        if request.mode == "reference":
            # Asked for and not possible: said. In auto mode a target that never has a
            # reference (a module, a callable, a custom op) says nothing.
            why = reference.why_not if reference is not None else "no reference for this check"
            return fall_back(subject, request, choice, func_out, diff_outputs, why,
                             forward_seconds)
    return _measured(subject, request, choice, func_out, diff_outputs, forward_seconds)


def fall_back(subject: Subject, request: Request, choice: ModeChoice, func_out: tuple[Any, ...],
              diff_outputs: list[torch.Tensor], why: str,
              forward_seconds: float | None = None, quiet: bool = False) -> Outcome | None:
    """Exact or probe mode as auto mode chooses them, where reference mode does not apply;
    the reason says why it did not (unless `quiet` and auto mode: nothing to tell)."""
    if forward_seconds is None:
        forward_seconds = _time_forward(subject)
    auto = dataclasses.replace(request, mode="auto")
    choice.mode, choice.reason = "exact", ""
    refusal = _measured(subject, auto, choice, func_out, diff_outputs, forward_seconds)
    if not (quiet and request.mode == "auto"):
        choice.reason = f"reference mode does not apply: {why}" + (
            f"; {choice.reason}" if choice.reason else "")
    return refusal


def _measured(subject: Subject, request: Request, choice: ModeChoice,
              func_out: tuple[Any, ...], diff_outputs: list[torch.Tensor],
              forward_seconds: float) -> Outcome | None:
    """Exact or probe mode from the cost of exact mode (see `choose_mode`)."""
    if request.mode == "probe":
        return None
    parts = 2 if any(o.is_complex() for o in diff_outputs) else 1
    sizes = sizes_of(subject.args, func_out, parts)
    plan = cost.plan_exact(sizes, request.budget_bytes)
    if request.mode == "auto":
        decision = _auto(subject, request, sizes, plan, diff_outputs, forward_seconds)
        if decision.mode == "probe" or plan.layout == "dense":
            choice.mode, choice.reason = decision.mode, decision.reason
            return None
    elif plan.layout == "dense":
        return None
    # Exact mode would keep nonzeros only: estimate them from a few analytical rows.
    total = sizes.output_numel
    count = min(total, NONZERO_SAMPLE_ROWS)
    rows: list[int | None] = [(i * total) // count + total // (2 * count)
                              for i in range(count)]
    nonzeros: list[int] = []
    _time_backward(subject, request, diff_outputs, rows, nonzeros)
    estimate = sum(nonzeros) * total // max(1, count)
    decision = cost.choose(request.mode, sizes, request.budget_bytes, None, estimate,
                           max_seconds=request.max_seconds)
    if request.mode == "exact":
        return None if decision.plan.fits else exact_too_large(decision.plan.needed_bytes,
                                                               request.budget_bytes)
    choice.mode, choice.reason = decision.mode, decision.reason
    return None


def _auto(subject: Subject, request: Request, sizes: cost.Sizes, plan: cost.ExactPlan,
          diff_outputs: list[torch.Tensor], forward_seconds: float) -> cost.Decision:
    """Auto mode's decision, the same on every identical run: a tiny check is exact without
    timing; otherwise backward is taken to cost a forward until that could tip the balance,
    and a call whose estimate says probe is timed again (the fastest kept) while it is cheap,
    since warm-up, a busy core or the garbage collector only ever add time."""
    if sizes.tiny:
        return cost.choose("auto", sizes, request.budget_bytes, None,
                           max_seconds=request.max_seconds)
    limit = request.max_seconds / 4
    timing = cost.Timing(forward_seconds, forward_seconds)
    for _ in range(cost.TIMING_REPEATS - 1):
        if not cost.worth_retiming(sizes, timing, timing.forward, limit, request.max_seconds):
            break
        forward_seconds = min(forward_seconds, _time_forward(subject))
        timing = cost.Timing(forward_seconds, forward_seconds)
    if cost.exact_seconds(sizes, timing) > limit or plan.layout != "dense":
        backward = _time_backward(subject, request, diff_outputs, [None])
        timing = cost.Timing(forward_seconds, backward)
        for _ in range(cost.TIMING_REPEATS - 1):
            if not cost.worth_retiming(sizes, timing, backward, request.max_seconds,
                                       request.max_seconds):
                break
            backward = min(backward, _time_backward(subject, request, diff_outputs, [None]))
            timing = cost.Timing(forward_seconds, backward)
    return cost.choose("auto", sizes, request.budget_bytes, timing,
                       max_seconds=request.max_seconds)


def _time_forward(subject: Subject) -> float:
    started = time.perf_counter()
    try:
        subject.fn(*subject.args)
    except Exception as exc:
        raise subject.stop(exc, subject.evaluated) from None
    return time.perf_counter() - started


def _time_backward(subject: Subject, request: Request, outputs: list[torch.Tensor],
                   rows: list[int | None], nonzeros: list[int] | None = None) -> float:
    """Seconds of one backward (the fastest of `rows`: None is a random vᵀJ); the
    nonzeros of each analytical row go to `nonzeros`."""
    inputs = [a for a in subject.args if is_diff_tensor(a)]
    sizes = [o.numel() for o in outputs]
    generator = torch.Generator().manual_seed(request.seed)
    best = float("inf")
    for row in rows:
        vector = None
        if row is None:
            vector = torch.rand(sum(sizes), generator=generator, dtype=torch.float64)
        started = time.perf_counter()
        try:
            grads = analytical_row(outputs, inputs, sizes, row or 0, grad_output=vector)
        except WrongGradientShape:
            return 0.0  # reported by the comparison itself, with the input's name
        except Exception as exc:
            raise subject.stop(exc, "backward") from None
        best = min(best, time.perf_counter() - started)
        if nonzeros is not None:
            nonzeros.append(sum(int((g != 0).sum()) for g in grads))
    return best


def exact_too_large(needed: int, budget: int) -> Outcome:
    """Exact mode was asked for and its Jacobians do not fit the memory budget."""
    return Outcome(
        Status.ERROR,
        f"exact mode needs about {cost.human_bytes(needed)} for the Jacobians (their "
        f"nonzero entries), over the memory budget of {cost.human_bytes(budget)}",
        advice=[Advice("probe_mode"), Advice("more_memory", needed=needed)])

