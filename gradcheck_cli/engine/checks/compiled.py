"""compile: the op's outputs and gradients under torch.compile against eager, on the same inputs.

Silent wrong gradients under torch.compile are a known class of bug (a Function whose
backward reads Python state, a custom op's registrations that disagree with its kernel).
The op runs eagerly, then compiled (backend `aot_eager`, or `inductor` for
`compile:inductor`), first with `fullgraph=True` and, when that meets a graph break,
without it (the break is reported as information, with torch's reason). Outputs and
gradients for the same random grad_outputs are compared per input. No finite
differences: the cost is one compile of forward and backward.
"""

from __future__ import annotations

from typing import Any

import torch

from gradcheck_cli.engine.agreement import (
    Run,
    Tolerance,
    compare_gradients,
    max_output_difference,
    run_once,
)
from gradcheck_cli.engine.contract import explain
from gradcheck_cli.engine.jacobian import fresh_copies
from gradcheck_cli.engine.outcome import CheckContext, Outcome
from gradcheck_cli.results import Status

# Compiled code may reorder and fuse, never change the math: a few roundings per element.
TOLERANCES = {torch.float64: (1e-7, 1e-9), torch.float32: (1e-4, 1e-6),
              torch.bfloat16: (2e-2, 1e-3), torch.float16: (2e-3, 1e-4)}


def _tolerance(reference: torch.Tensor, dtype: torch.dtype) -> Tolerance:
    rtol, atol = TOLERANCES.get(dtype, TOLERANCES[torch.float32])
    scale = float(reference.abs().max()) if reference.numel() else 0.0
    return Tolerance(rtol, atol * max(1.0, scale))


def _graph_break(exc: BaseException) -> str | None:
    """torch's reason when `exc` is a graph break under fullgraph=True, else None."""
    unsupported = getattr(getattr(torch, "_dynamo", None), "exc", None)
    kind = getattr(unsupported, "Unsupported", None)
    if kind is None or not isinstance(exc, kind):
        return None
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    explained = [line for line in lines if line.startswith("Explanation:")]
    return (explained[0].removeprefix("Explanation:").strip() if explained
            else lines[0] if lines else type(exc).__name__)


def _output_problems(eager: tuple[Any, ...], compiled: tuple[Any, ...],
                     dtype: torch.dtype) -> str:
    """Which floating outputs differ beyond the dtype's tolerance ('' when none)."""
    found = []
    for index, (e, c) in enumerate(zip(eager, compiled)):
        if isinstance(e, torch.Tensor) and isinstance(c, torch.Tensor) and e.numel() \
                and (e.is_floating_point() or e.is_complex()):
            bounds = _tolerance(e.detach(), dtype)
            if e.shape != c.shape or not torch.allclose(
                    c.detach().to(e.dtype), e.detach(), rtol=bounds.rtol, atol=bounds.atol):
                found.append(f"output {index}")
    return ", ".join(found)


def run(context: CheckContext) -> Outcome:
    return compile_check(context, "aot_eager")


def run_inductor(context: CheckContext) -> Outcome:
    return compile_check(context, "inductor")


def _compiled_run(context: CheckContext, backend: str, grad_outputs: list[torch.Tensor]
                  ) -> tuple[Run, str]:
    """The compiled run and how it was compiled (what a graph break made of it)."""
    target = context.target

    def call(*args: Any) -> Any:
        return target.call(*args)

    torch._dynamo.reset()  # a fresh compile: nothing cached from another op or check
    try:
        compiled = torch.compile(call, backend=backend, fullgraph=True)
        return run_once(compiled, fresh_copies(context.args), grad_outputs, context.seed), \
            f"{backend}, fullgraph=True"
    except Exception as exc:
        reason = _graph_break(exc)
        if reason is None:
            raise
    torch._dynamo.reset()
    compiled = torch.compile(call, backend=backend)
    found = run_once(compiled, fresh_copies(context.args), grad_outputs, context.seed)
    return found, (f"{backend}; fullgraph=True met a graph break ({reason}), so compared "
                   "with the graph split there")


def compile_check(context: CheckContext, backend: str) -> Outcome:
    """Compare the compiled run with the eager one, per input."""
    target, names = context.target, context.names
    try:
        eager = run_once(target.call, fresh_copies(context.args), None, context.seed)
    except Exception as exc:
        why = explain(exc, target, names, "eager run")
        return Outcome(Status.ERROR, why.message, location=why.location)
    try:
        compiled, how = _compiled_run(context, backend, eager.grad_outputs)
    except Exception as exc:
        why = explain(exc, target, names, f"torch.compile ({backend})")
        return Outcome(Status.ERROR, f"torch.compile could not run the op: {why.message}",
                       location=why.location)
    finally:
        torch._dynamo.reset()
    dtypes = {a.dtype for a in context.args if isinstance(a, torch.Tensor)
              and a.is_floating_point()} or {torch.float64}
    dtype = min(dtypes, key=lambda d: torch.finfo(d).bits)
    agreement = compare_gradients(eager.grads, compiled.grads, context.args, names,
                                  lambda r: _tolerance(r, dtype), "compiled gradient", "eager")
    forward = max_output_difference(eager.outputs, compiled.outputs)
    note = f"compiled ({how}); outputs differ from eager by up to {forward:.3g}"
    outcome = Outcome(Status.PASSED, note + ".", inputs=agreement.inputs, names=names)
    if "graph break" in how and agreement.inputs and not agreement.problems:
        # Information, not a failure: shown with the passed result (on its first input).
        agreement.inputs[0].note = f"torch.compile: {how.partition('; ')[2]}"
    outputs = _output_problems(eager.outputs, compiled.outputs, dtype)
    if outputs and not agreement.problems:  # the same gradients of other values
        outcome.status = Status.FAILED
        outcome.message = (f"outputs under torch.compile differ from eager: {outputs}. {note}. "
                           "Forward may read Python state that compiling freezes.")
        outcome.location = target.forward_location
    if agreement.problems:
        outcome.status = Status.FAILED
        outcome.message = ("gradients under torch.compile differ from eager: "
                           + "; ".join(agreement.problems) + f". {note}. Backward may read "
                           "Python state that compiling freezes (globals, counters, "
                           "torch.compiler.is_compiling()), or a registration "
                           "disagrees with the kernel.")
        outcome.location = target.backward_location
    return outcome
