"""gradcheck and gradgradcheck with torch's verdicts, but measuring every input.

Each check returns an `Outcome` (status, message, per-input errors); nothing here prints
or touches files. The order and meaning of the sub-checks follow
`torch.autograd.gradcheck` (slow mode): inputs, forward, Jacobians (computed twice, for
reentrancy), backward scaled by grad_output, undefined output gradients.

The Jacobians are compared exactly (every entry, `jacobian.compare`) or, when that would
not fit the memory budget or the time limit, by random-direction probes
(`probe.probe_compare`); `cost.choose` decides, and the outcome says which and why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from gradcheck_cli.engine import cost
from gradcheck_cli.engine.contract import explain
from gradcheck_cli.engine.diagnose.rules import Block, diagnose_first_order, diagnose_second_order
from gradcheck_cli.engine.jacobian import (
    Comparison,
    ExactTooLarge,
    InputStats,
    ShapeChanged,
    WrongGradientShape,
    analytical_row,
    as_tuple,
    compare,
    diff_positions,
    flat_outputs,
    is_diff_tensor,
    numerical_columns,
    sizes_of,
    unravel,
)
from gradcheck_cli.engine.outcome import Outcome, Tolerances
from gradcheck_cli.engine.probe import probe_compare
from gradcheck_cli.engine.vjp import vjp
from gradcheck_cli.results import Diagnosis, InputError, Status, Worst, format_index
from gradcheck_cli.target.discovery import Target

Fn = Callable[..., Any]

# Analytical rows sampled to estimate the nonzeros of a Jacobian too large to hold dense.
NONZERO_SAMPLE_ROWS = 8
# Inputs larger than this are checked for "no differentiable output, yet it moves" by one
# random-direction difference rather than one central difference per element.
SMALL_INPUT = 4096


class _Stop(Exception):
    """Ends a check early with a finished outcome."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


def _fmt(value: float) -> str:
    return f"{value:.3g}"


class Checker:
    """One first-order check of `fn` at `args`: torch's sub-checks, in torch's order."""

    def __init__(self, target: Target, fn: Fn, args: list[Any], names: list[str],
                 tolerances: Tolerances, budget_bytes: int, order: str,
                 output_names: Callable[[int], str] | None = None,
                 first_order_ok: bool | None = None, *, mode: str = "auto", seed: int = 0,
                 max_seconds: float = cost.DEFAULT_EXACT_SECONDS) -> None:
        cost.check_mode(mode)
        self.target = target
        self.fn = fn
        self.args = args
        self.names = names
        self.tol = tolerances
        self.budget_bytes = budget_bytes
        self.order = order
        self.requested = mode
        self.mode = "exact" if mode == "auto" else mode
        self.mode_reason = ""
        self.seed = seed
        self.max_seconds = max_seconds
        self.output_names = output_names or (lambda i: f"output {i}")
        self.first_order_ok = first_order_ok
        # What running `fn` runs of the user's code: forward, or (second order) backward too.
        self.evaluated = "forward" if order == "first" else "backward"
        # The numerical Jacobian needs only values. An autograd Function's forward computes
        # the same values without grad, minus building a graph at each of the 2·N perturbed
        # evaluations (torch builds one each time). A plain callable may use autograd
        # itself, and second order differentiates inside `fn` (backward runs in grad mode
        # there, as in torch's gradgradcheck, and may depend on it): those keep grad mode.
        self.numeric_fn = (_without_grad(fn) if order == "first" and target.kind == "function"
                           else fn)
        self.backward_location = target.backward_location
        self.rows = 0

    def error(self, exc: BaseException, phase: str) -> _Stop:
        why = explain(exc, self.target, self.names, phase)
        return _Stop(Outcome(Status.ERROR, why.message, location=why.location))

    def run(self) -> Outcome:
        try:
            outcome = self._run()
        except _Stop as stop:
            outcome = stop.outcome
        outcome.mode = self.mode
        outcome.mode_reason = self.mode_reason
        return outcome

    def _run(self) -> Outcome:
        positions = diff_positions(self.args)
        if not positions:
            return Outcome(Status.ERROR, "no input requires grad, so there is no gradient to "
                           "check: give at least one floating tensor input with "
                           "`requires_grad: true`")
        for i in positions:
            tensor = self.args[i]
            if any(st == 0 and sz > 1 for st, sz in zip(tensor.stride(), tensor.size())):
                return Outcome(Status.ERROR, f"input `{self.names[i]}` has a dimension with "
                               "stride 0 (an expanded tensor); pass a contiguous tensor")
        try:
            started = time.perf_counter()
            func_out = as_tuple(self.fn(*self.args))
            forward_seconds = time.perf_counter() - started
        except Exception as exc:
            raise self.error(exc, self.evaluated) from None
        self._check_finite_outputs(func_out)
        diff_outputs = [o for o in func_out if is_diff_tensor(o)]
        if not diff_outputs:
            return self._no_differentiable_outputs(func_out)
        refusal = self._choose_mode(func_out, diff_outputs, forward_seconds)
        if refusal is not None:
            return refusal
        try:
            try:
                comparisons = self._comparisons(func_out, diff_outputs)
            except ExactTooLarge as exc:
                if self.requested == "exact":
                    return self._exact_too_large(exc.needed_bytes)
                self.mode = "probe"
                self.mode_reason = (f"exact mode outgrew the memory budget ({exc}), so the "
                                    "check was redone by random-direction probes")
                comparisons = self._comparisons(func_out, diff_outputs)
        except WrongGradientShape as exc:
            name = self.names[positions[exc.position]]
            return Outcome(Status.FAILED, f"backward returned a gradient of shape {exc.got} "
                           f"for `{name}`, whose shape is {exc.expected}",
                           location=self.backward_location)
        except ShapeChanged as exc:
            return Outcome(Status.ERROR, f"{exc}; gradcheck needs outputs of fixed shape")
        except Exception as exc:
            raise self.error(exc, "backward") from None
        outcome = self._judge(comparisons)
        if outcome.status is Status.FAILED and len(comparisons) == 1:
            self._diagnose(outcome, comparisons[0])
        if outcome.status is Status.PASSED:
            extra = self._backward_scales_with_grad_output(diff_outputs)
            extra = extra or self._undefined_output_grads()
            if extra:
                outcome.status = Status.FAILED
                outcome.message = extra
                outcome.location = self.backward_location
        return outcome

    def _comparisons(self, func_out: tuple[Any, ...], diff_outputs: list[torch.Tensor]
                     ) -> list[Comparison]:
        """One comparison, or two (imaginary, then real part) for complex outputs, as torch."""
        if not any(o.is_complex() for o in diff_outputs):
            return [self._compare(self.numeric_fn, func_out)]
        comparisons = []
        for index, part in enumerate((torch.imag, torch.real)):
            wrapped = _apply_to_complex(self.fn, part)
            comparisons.append(self._compare(_apply_to_complex(self.numeric_fn, part),
                                             as_tuple(wrapped(*self.args)),
                                             part=index))
        return comparisons

    def _compare(self, fn: Fn, func_out: tuple[Any, ...], eps: float | None = None,
                 part: int = 0) -> Comparison:
        if self.mode == "probe":
            return probe_compare(fn, self.args, func_out, eps=eps or self.tol.eps,
                                 atol=self.tol.atol, rtol=self.tol.rtol,
                                 seed=self.seed * 2 + part)
        return compare(fn, self.args, func_out, eps=eps or self.tol.eps, atol=self.tol.atol,
                       rtol=self.tol.rtol, budget_bytes=self.budget_bytes)

    def _choose_mode(self, func_out: tuple[Any, ...], diff_outputs: list[torch.Tensor],
                     forward_seconds: float) -> Outcome | None:
        """Settle `self.mode` from the cost of exact mode; an error outcome when exact mode
        was asked for and cannot fit the memory budget."""
        if self.requested == "probe":
            return None
        parts = 2 if any(o.is_complex() for o in diff_outputs) else 1
        sizes = sizes_of(self.args, func_out, parts)
        plan = cost.plan_exact(sizes, self.budget_bytes)
        if self.requested == "auto":
            # Backward is taken to cost a forward until that could tip the balance; the
            # first forward may include one-off warm-up, so a slow one is timed again.
            timing = cost.Timing(forward_seconds, forward_seconds)
            if cost.exact_seconds(sizes, timing) > self.max_seconds / 4:
                forward_seconds = min(forward_seconds, self._time_forward())
                timing = cost.Timing(forward_seconds, forward_seconds)
            if cost.exact_seconds(sizes, timing) > self.max_seconds / 4 or plan.layout != "dense":
                timing = cost.Timing(forward_seconds, self._time_backward(diff_outputs, [None]))
            decision = cost.choose("auto", sizes, self.budget_bytes, timing,
                                   max_seconds=self.max_seconds)
            if decision.mode == "probe" or plan.layout == "dense":
                self.mode, self.mode_reason = decision.mode, decision.reason
                return None
        elif plan.layout == "dense":
            return None
        # Exact mode would keep nonzeros only: estimate them from a few analytical rows.
        total = sizes.output_numel
        count = min(total, NONZERO_SAMPLE_ROWS)
        rows: list[int | None] = [(i * total) // count + total // (2 * count)
                                  for i in range(count)]
        nonzeros: list[int] = []
        self._time_backward(diff_outputs, rows, nonzeros)
        estimate = sum(nonzeros) * total // max(1, count)
        decision = cost.choose(self.requested, sizes, self.budget_bytes, None, estimate,
                               max_seconds=self.max_seconds)
        if self.requested == "exact":
            return None if decision.plan.fits else self._exact_too_large(
                decision.plan.needed_bytes)
        self.mode, self.mode_reason = decision.mode, decision.reason
        return None

    def _time_forward(self) -> float:
        started = time.perf_counter()
        try:
            self.fn(*self.args)
        except Exception as exc:
            raise self.error(exc, self.evaluated) from None
        return time.perf_counter() - started

    def _time_backward(self, outputs: list[torch.Tensor], rows: list[int | None],
                       nonzeros: list[int] | None = None) -> float:
        """Seconds of one backward (the fastest of `rows`: None is a random vᵀJ); the
        nonzeros of each analytical row go to `nonzeros`."""
        inputs = [a for a in self.args if is_diff_tensor(a)]
        sizes = [o.numel() for o in outputs]
        generator = torch.Generator().manual_seed(self.seed)
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
                raise self.error(exc, "backward") from None
            best = min(best, time.perf_counter() - started)
            if nonzeros is not None:
                nonzeros.append(sum(int((g != 0).sum()) for g in grads))
        return best

    def _exact_too_large(self, needed: int) -> Outcome:
        return Outcome(
            Status.ERROR,
            f"exact mode needs about {cost.human_bytes(needed)} for the Jacobians (their "
            f"nonzero entries), over the memory budget of {cost.human_bytes(self.budget_bytes)}"
            ": use --mode probe (random-direction checks in little memory), or raise "
            "--max-memory")

    def _diagnose(self, outcome: Outcome, comparison: Comparison) -> None:
        blocks = [Block(stat, self.names[stat.position], tuple(self.args[stat.position].shape))
                  for stat in comparison.inputs]
        found = diagnose_first_order(blocks, self.tol.rtol, self.tol.atol, self.tol.nondet_tol,
                                     self._probe, self.tol.eps)
        if self.order == "second":
            # What the first-order patterns see in the second-order Jacobian and that is not
            # a formula bug (a kink, noise, nondeterminism) stays; the rest is second-order.
            kept = ("nondeterministic", "kink", "precision")
            second = diagnose_second_order(blocks, self.output_names, self.first_order_ok)
            found.update({k: v for k, v in second.items()
                          if found.get(k) is None or found[k].kind not in kept})
        by_position = {entry.index: entry for entry in outcome.inputs}
        for position, diagnosis in found.items():
            by_position[position].diagnosis = diagnosis
        if comparison.layout == "dense":  # else one more exact run costs too much
            self._step_size(outcome)

    def _step_size(self, outcome: Outcome) -> None:
        """For a small mismatch: does the error change with the step (noise) or not (a bug)?"""
        failing = [e for e in outcome.inputs if not e.passed and e.note is None
                   and e.max_abs_error is not None]
        # "Small": within 1e-3 absolute or 1% relative; larger errors are never step noise.
        if not failing or any((e.max_abs_error or 0) > 1e-3 and (e.max_rel_error or 0) > 1e-2
                              for e in failing):
            return
        if any(e.diagnosis and e.diagnosis.kind == "nondeterministic" for e in failing):
            return
        func_out = as_tuple(self.fn(*self.args))
        errors: dict[int, list[tuple[float, float]]] = {e.index: [] for e in failing}
        for eps in (self.tol.eps * 10, self.tol.eps / 10):
            other = self._compare(self.numeric_fn, func_out, eps)
            for stat in other.inputs:
                if stat.position in errors:
                    errors[stat.position].append((eps, stat.max_abs))
        for entry in failing:
            original = entry.max_abs_error or 0.0
            tried = [(self.tol.eps, original), *errors[entry.index]]
            best_eps, best = min(tried, key=lambda t: t[1])
            steps = ", ".join(f"eps {e:g}: {v:.2g}" for e, v in tried[1:])
            # A wrong formula gives the same error at every step; finite-difference noise
            # (truncation ~ eps², rounding ~ 1/eps) moves with it.
            if max(v for _, v in tried) > 3 * best:
                entry.diagnosis = _precision(entry.name, self.tol.eps, original, steps, best_eps,
                                             best)
            elif entry.diagnosis is not None:
                entry.diagnosis.detail += (f" (the error stays about {original:.2g} when the "
                                           f"step changes — {steps} — so it is real, not "
                                           "finite-difference noise)")

    def _probe(self, position: int, flat: int, step: float) -> torch.Tensor:
        data = self.args[position].data
        index = unravel(flat, data.shape)
        original = data[index].clone()
        try:
            data[index] = original + step
            outs = as_tuple(self.fn(*self.args))
            return torch.cat([o.detach().reshape(-1) for o in outs if is_diff_tensor(o)])
        finally:
            data[index] = original

    def _check_finite_outputs(self, func_out: tuple[Any, ...]) -> None:
        for index, out in enumerate(func_out):
            if not isinstance(out, torch.Tensor) or not (out.is_floating_point()
                                                         or out.is_complex()):
                continue
            bad = ~torch.isfinite(out.detach())
            if bool(bad.any()):
                first = unravel(int(torch.nonzero(bad.reshape(-1))[0]), out.shape)
                value = out.detach()[first].item()
                if self.order == "second":
                    # These outputs are backward's gradients: a bug of backward, not a domain.
                    raise _Stop(Outcome(
                        Status.FAILED,
                        f"backward returned non-finite values in {self.output_names(index)}: "
                        f"{int(bad.sum())} of {out.numel()} (first {value} at "
                        f"{format_index(first)}) where forward is finite",
                        location=self.backward_location,
                    ))
                raise _Stop(Outcome(
                    Status.ERROR,
                    f"forward returned non-finite values in {self.output_names(index)}: "
                    f"{int(bad.sum())} of {out.numel()} (first {value} at {format_index(first)}). "
                    "The inputs are probably outside the function's domain: narrow them "
                    "with `low`/`high` in the spec.",
                    location=self.target.forward_location,
                ))

    def _no_differentiable_outputs(self, func_out: tuple[Any, ...]) -> Outcome:
        # As torch: with no differentiable output, the numerical gradient must be zero.
        positions = [i for i, o in enumerate(func_out)
                     if isinstance(o, torch.Tensor) and (o.is_floating_point() or o.is_complex())]
        for i, arg in enumerate(self.args):
            if not is_diff_tensor(arg):
                continue
            if self.mode == "probe" or arg.numel() > SMALL_INPUT:
                changes = self._moves_outputs(i, func_out, positions)
            else:
                changes = any(bool((column != 0).any()) for _, column in numerical_columns(
                    self.fn, self.args, i, func_out, positions, self.tol.eps))
            if changes:
                return Outcome(
                    Status.FAILED,
                    f"no output of forward requires grad, yet the outputs change with "
                    f"`{self.names[i]}`: forward detached its result or marked it "
                    "non-differentiable (ctx.mark_non_differentiable)",
                    location=self.target.forward_location)
        return Outcome(Status.PASSED, "no differentiable outputs; the numerical gradient is zero")

    def _moves_outputs(self, position: int, func_out: tuple[Any, ...], positions: list[int]
                       ) -> bool:
        """Whether the outputs change when the whole input moves by ±eps along a random
        direction: one central difference instead of one per element."""
        data = self.args[position].data
        original = data.clone()
        generator = torch.Generator().manual_seed(self.seed)
        direction = (torch.rand(data.shape, generator=generator, dtype=torch.float64) + 0.5
                     ).to(data.dtype)
        try:
            data.copy_(original + self.tol.eps * direction)
            after = flat_outputs(as_tuple(self.fn(*self.args)), positions)
            data.copy_(original - self.tol.eps * direction)
            before = flat_outputs(as_tuple(self.fn(*self.args)), positions)
        finally:
            data.copy_(original)
        return bool((after != before).any())

    def _judge(self, comparisons: list[Comparison]) -> Outcome:
        main = comparisons[0]
        self.rows = sum(sum(c.output_sizes) for c in comparisons)
        stats = [_merge([c.inputs[k] for c in comparisons]) for k in range(len(main.inputs))]
        inputs: list[InputError] = []
        problems: list[str] = []
        domain: list[str] = []
        nondeterministic: list[str] = []
        for stat in stats:
            name = self.names[stat.position]
            tensor = self.args[stat.position]
            finite = stat.first_nonfinite is None
            entry = InputError(
                # With NaN/Inf in a Jacobian the largest error is not a number: say so
                # (null in JSON, with a note) rather than report the finite part's maximum.
                index=stat.position, name=name,
                max_abs_error=stat.max_abs if finite else float("inf"),
                max_rel_error=stat.max_rel if finite else float("inf"),
                passed=stat.wrong == 0, numel=stat.numel, wrong_elements=stat.wrong,
            )
            if stat.worst is not None:
                row, column, a, n = stat.worst
                output, element = main.locate_row(row)
                entry.worst = Worst(
                    output=output,
                    output_index=list(unravel(element, main.output_shapes[output])),
                    input_index=list(unravel(column, tensor.shape)),
                    analytical=_plain(a), numerical=_plain(n),
                )
            if stat.first_nonfinite is not None:
                which, row, column, value = stat.first_nonfinite
                at = format_index(unravel(column, tensor.shape))
                count = (stat.nonfinite_numerical if which == "numerical"
                         else stat.nonfinite_analytical)
                entry.note = f"{which} gradient not finite ({count} elements, e.g. {value} at {at})"
                entry.passed = False
                if which == "numerical":
                    domain.append(f"`{name}`: {entry.note}")
                else:
                    problems.append(f"backward returned non-finite values for `{name}` "
                                    f"({count} elements, first at {name}{at})")
            elif stat.wrong:
                problems.append(self._mismatch_text(name, entry, stat))
            elif stat.unresolved:
                entry.note = stat.unresolved  # a doubt, not a verdict: see probe.py
            if stat.nondeterminism > self.tol.nondet_tol:
                nondeterministic.append(f"`{name}` (by up to {_fmt(stat.nondeterminism)})")
            inputs.append(entry)
        outcome = Outcome(Status.PASSED, inputs=inputs, comparison=main, names=self.names)
        if domain:
            outcome.status = Status.ERROR
            outcome.message = (
                "the numerical gradient is not finite: forward is not finite within eps of the "
                "inputs (" + "; ".join(domain) + "). Narrow the inputs with `low`/`high`."
            )
            return outcome
        if nondeterministic:
            outcome.status = Status.FAILED
            outcome.message = (
                "backward is nondeterministic: running it twice on the same input and "
                "grad_output gave different gradients for " + ", ".join(nondeterministic)
                + f". If this is expected, set `nondet_tol` (now {self.tol.nondet_tol:g})."
            )
            if problems:
                outcome.message += "\n" + "\n".join(problems)
            outcome.location = self.backward_location
        elif problems:
            outcome.status = Status.FAILED
            outcome.message = "\n".join(problems)
            outcome.location = self.backward_location
        return outcome

    def _mismatch_text(self, name: str, entry: InputError, stat: InputStats) -> str:
        what = "gradient" if self.order == "first" else "second derivative (through backward)"
        if self.mode == "probe":
            failed = [(a, n) for a, n, t in stat.directional if abs(a - n) > t]
            text = (f"{what} of `{name}` is wrong: {len(failed)} of {len(stat.directional)} "
                    "random-direction probes disagree beyond finite-difference noise "
                    f"(max discrepancy {_fmt(stat.max_abs)}); localized "
                    f"{stat.wrong} wrong Jacobian entr{'y' if stat.wrong == 1 else 'ies'}")
            return text + self._worst_text(name, entry, ", worst ")
        text = (f"{what} of `{name}` is wrong at {stat.wrong} of "
                f"{stat.numel * self.rows} Jacobian entries, "
                f"max abs error {_fmt(stat.max_abs)}")
        return text + self._worst_text(name, entry, " at ")

    def _worst_text(self, name: str, entry: InputError, lead: str) -> str:
        """`<lead>x[0, 1] -> output 0[0, 1] (analytical 1, numerical 2)`, or nothing."""
        if entry.worst is None:
            return ""
        w = entry.worst
        return (f"{lead}{name}{format_index(w.input_index)} -> "
                f"{self.output_names(w.output)}{format_index(w.output_index)} "
                f"(analytical {_fmt_value(w.analytical)}, numerical {_fmt_value(w.numerical)})")

    def _backward_scales_with_grad_output(self, outputs: list[torch.Tensor]) -> str | None:
        positions = diff_positions(self.args)
        inputs = [self.args[i] for i in positions]
        try:
            grads = vjp(
                outputs, inputs,
                [torch.zeros_like(o, memory_format=torch.contiguous_format) for o in outputs],
                retain_graph=True,
            )
        except Exception as exc:
            raise self.error(exc, "backward") from None
        for position, grad, inp in zip(positions, grads, inputs):
            if grad is None:
                continue
            name = self.names[position]
            if not bool((grad == 0).all()):
                return (f"backward is not multiplied by grad_output: with grad_output = 0 it "
                        f"still returned a non-zero gradient for `{name}`")
            if grad.dtype != inp.dtype:
                return f"the gradient of `{name}` has dtype {grad.dtype}, the input {inp.dtype}"
            if grad.device != inp.device:
                return f"the gradient of `{name}` is on {grad.device}, the input on {inp.device}"
        return None

    def _undefined_output_grads(self) -> str | None:
        undefined = getattr(getattr(torch._C, "_functions", None), "UndefinedGrad", None)
        if undefined is None:
            return None
        positions = diff_positions(self.args)
        inputs = [self.args[i] for i in positions]

        def fresh() -> list[torch.Tensor]:
            return [o for o in as_tuple(self.fn(*self.args)) if is_diff_tensor(o)]

        first = fresh()
        variants = [[undefined()(o) for o in first]]
        if len(first) > 1:
            for which in range(len(first)):
                outs = fresh()
                variants.append([undefined()(o) if k == which else o for k, o in enumerate(outs)])
        for outs in variants:
            try:
                grads = vjp(
                    outs, inputs,
                    [torch.zeros_like(o, memory_format=torch.contiguous_format) for o in outs],
                )
            except Exception as exc:
                return ("backward fails when an output's gradient is undefined (None): "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
                        "Treat a None grad_output as zeros (or keep ctx.set_materialize_grads"
                        "(True), the default).")
            for grad in grads:
                if grad is not None and not bool((grad == 0).all()):
                    return ("with every output gradient undefined (zero), backward returned a "
                            "non-zero gradient")
        return None


def _precision(name: str, eps: float, original: float, steps: str, best_eps: float,
               best: float) -> Diagnosis:
    advice = (f"use `eps: {best_eps:g}` (error {best:.2g}) or a larger `atol`"
              if best_eps != eps else "the current step is already the best: raise `atol`")
    return Diagnosis(
        "precision",
        f"the error of `{name}` ({original:.2g} at eps {eps:g}) changes with the step ({steps}): "
        f"it is finite-difference noise, not a wrong gradient; {advice}",
    )


def _fmt_value(value: float | list[float]) -> str:
    if isinstance(value, list):
        return f"{value[0]:.4g}{value[1]:+.4g}j"
    return f"{value:.4g}"


def _plain(value: complex | float) -> float | list[float]:
    if isinstance(value, complex):
        return [value.real, value.imag]
    return float(value)


def _merge(parts: list[InputStats]) -> InputStats:
    if len(parts) == 1:
        return parts[0]
    merged = parts[0]
    for other in parts[1:]:
        merged.wrong += other.wrong
        if other.max_abs > merged.max_abs:
            merged.max_abs = other.max_abs
            merged.worst = other.worst
        merged.max_rel = max(merged.max_rel, other.max_rel)
        merged.nonfinite_analytical += other.nonfinite_analytical
        merged.nonfinite_numerical += other.nonfinite_numerical
        merged.first_nonfinite = merged.first_nonfinite or other.first_nonfinite
        merged.nondeterminism = max(merged.nondeterminism, other.nondeterminism)
        merged.directional = merged.directional + other.directional
        merged.unresolved = merged.unresolved or other.unresolved
        merged.explained = merged.explained and other.explained
    return merged


def _without_grad(fn: Fn) -> Fn:
    def values(*args: Any) -> Any:
        with torch.no_grad():
            return fn(*args)

    return values


def _apply_to_complex(fn: Fn, part: Callable[[torch.Tensor], torch.Tensor]) -> Fn:
    """As torch: check complex outputs as two real functions, their real and imaginary parts."""

    def wrapped(*args: Any) -> tuple[Any, ...]:
        return tuple(part(o) if isinstance(o, torch.Tensor) and o.is_complex() else o
                     for o in as_tuple(fn(*args)))

    return wrapped


def gradcheck(target: Target, args: list[Any], names: list[str], tolerances: Tolerances,
              max_elements: int, *, mode: str = "auto", max_memory: int | None = None,
              seed: int = 0, max_seconds: float = cost.DEFAULT_EXACT_SECONDS) -> Outcome:
    """First-order check of every input requiring grad.

    `max_elements`: Jacobian elements (of 16 bytes) the exact comparison may hold, unless
    `max_memory` (bytes) is given. `mode`: "exact" compares every Jacobian entry, "probe"
    random directions (see probe.py), "auto" exact when it fits that memory and
    `max_seconds`, else probe. `seed` makes the probes reproducible.
    """
    budget = cost.memory_budget(max_elements, max_memory)
    return Checker(target, target.call, args, names, tolerances, budget, "first", mode=mode,
                    seed=seed, max_seconds=max_seconds).run()
