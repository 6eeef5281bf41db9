"""batched_grad: backward under vmap (batched grad_outputs, torch.func.jacrev) against single calls.

torch's gradcheck only looks at one backward at a time; `torch.func` (jacrev, vmap over a
training step, per-sample gradients) runs the Function's backward on batched tensors. Two
comparisons, per input, with no finite differences:

- `autograd.grad(..., is_grads_batched=True)` for a few seeded grad_outputs at once, as
  torch's `check_batched_grad`, against one backward per grad_output;
- `torch.func.jacrev` of the Function (which needs `setup_context` and a vmap rule:
  `generate_vmap_rule = True` or a `vmap` staticmethod) against the Jacobian built from
  one backward per output element, while the outputs are small enough.

A Function that cannot run under vmap fails with what it lacks.
"""

from __future__ import annotations

from typing import Any

import torch

from gradcheck_cli.engine.agreement import Tolerance, compare_gradients
from gradcheck_cli.engine.contract import explain
from gradcheck_cli.engine.inputs import make_grad_outputs
from gradcheck_cli.engine.jacobian import as_tuple, diff_positions, fresh_copies, is_diff_tensor
from gradcheck_cli.engine.outcome import CheckContext, Outcome
from gradcheck_cli.results import InputError, Status

BATCH = 3  # grad_outputs per batched backward
MAX_JACREV_OUTPUTS = 4096  # output elements: one single backward each for the reference
EXACT = Tolerance(rtol=1e-7, atol=1e-10)  # the same arithmetic, batched or not


def _missing_support(target: Any) -> str | None:
    """What a Function lacks for torch.func transforms (None when nothing is known)."""
    cls = getattr(target, "obj", None)
    if not isinstance(cls, type) or not issubclass(cls, torch.autograd.Function):
        return None
    base = torch.autograd.Function
    if getattr(cls, "setup_context", base.setup_context) is base.setup_context:
        return ("a `setup_context` staticmethod (forward must not take ctx) and "
                "`generate_vmap_rule = True`")
    if not getattr(cls, "generate_vmap_rule", False) and "vmap" not in vars(cls):
        return "`generate_vmap_rule = True` or a `vmap` staticmethod"
    return None


def _batched(outs: list[torch.Tensor], inputs: list[torch.Tensor], seed: int
             ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per input: the gradients of BATCH grad_outputs from one batched backward, and
    stacked from one backward each."""
    draws = [make_grad_outputs(tuple(outs), seed + k) for k in range(BATCH)]
    single = []
    for gos in draws:
        grads = torch.autograd.grad(outs, inputs, [g.detach() for g in gos],
                                    retain_graph=True, allow_unused=True)
        single.append([torch.zeros_like(x) if g is None else g
                       for g, x in zip(grads, inputs)])
    stacked = [torch.stack([g.detach() for g in column]) for column in zip(*draws)]
    batched = torch.autograd.grad(outs, inputs, stacked, retain_graph=True,
                                  allow_unused=True, is_grads_batched=True)
    got = [torch.zeros((BATCH, *x.shape), dtype=x.dtype) if g is None else g
           for g, x in zip(batched, inputs)]
    expected = [torch.stack(column) for column in zip(*single)]
    return got, expected


def _jacobians(target: Any, args: list[Any], positions: list[int]
               ) -> tuple[list[torch.Tensor], list[torch.Tensor]] | None:
    """Per input: jacrev's Jacobian (all outputs flattened) and one from single
    backwards; None when the outputs are too many to build the reference."""
    def flat(*inputs: Any) -> torch.Tensor:
        full = list(args)
        for position, value in zip(positions, inputs):
            full[position] = value
        outs = [o for o in as_tuple(target.call(*full)) if is_diff_tensor(o)]
        return torch.cat([o.reshape(-1) for o in outs])

    inputs = [args[p] for p in positions]
    outputs = flat(*inputs)
    if outputs.numel() > MAX_JACREV_OUTPUTS:
        return None
    got = torch.func.jacrev(flat, argnums=tuple(range(len(inputs))))(
        *[x.detach() for x in inputs])
    rows = []
    for k in range(outputs.numel()):
        one_hot = torch.zeros_like(outputs)
        one_hot[k] = 1
        grads = torch.autograd.grad(outputs, inputs, one_hot, retain_graph=True,
                                    allow_unused=True)
        rows.append([torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs)])
    expected = [torch.stack(column) for column in zip(*rows)]
    return [g.reshape(e.shape) for g, e in zip(got, expected)], expected


def run(context: CheckContext) -> Outcome:
    target, args, names = context.target, context.args, context.names
    positions = diff_positions(args)
    fresh = fresh_copies(args)
    inputs = [fresh[p] for p in positions]
    try:
        outs = [o for o in as_tuple(target.call(*fresh)) if is_diff_tensor(o)]
        got, expected = _batched(outs, inputs, context.seed)
    except Exception as exc:
        why = explain(exc, target, names, "batched backward")
        return Outcome(Status.FAILED, "backward cannot run on batched grad_outputs (vmap, "
                       f"as torch.func and is_grads_batched do): {why.message}",
                       location=why.location or target.backward_location)
    found = compare_gradients(tuple(expected), tuple(got), fresh, names, lambda _: EXACT,
                              "batched backward", "one backward per grad_output")
    note = f"{BATCH} grad_outputs at once (is_grads_batched) agree with single backwards"
    missing = _missing_support(target)
    if missing is not None:
        return _verdict(found.inputs, found.problems, names, target,
                        f"{note}; torch.func.jacrev not tried: the Function lacks {missing}")
    try:
        jacobians = _jacobians(target, fresh, positions)
    except Exception as exc:
        why = explain(exc, target, names, "torch.func.jacrev")
        return Outcome(Status.FAILED, f"torch.func.jacrev of the Function fails: "
                       f"{why.message}", inputs=found.inputs, names=names,
                       location=why.location or target.forward_location)
    if jacobians is None:
        return _verdict(found.inputs, found.problems, names, target,
                        f"{note}; jacrev not compared: over {MAX_JACREV_OUTPUTS} outputs")
    jac = compare_gradients(tuple(jacobians[1]), tuple(jacobians[0]), fresh, names,
                            lambda _: EXACT, "jacrev's Jacobian", "single backwards")
    return _verdict(_merged(found.inputs, jac.inputs), found.problems + jac.problems, names,
                    target, f"{note}; torch.func.jacrev agrees with single backwards")


def _merged(first: list[InputError], second: list[InputError]) -> list[InputError]:
    """Per input, the worse of the two comparisons (a failing one, else the larger error)."""
    by_index = {e.index: e for e in second}

    def badness(entry: InputError) -> tuple[bool, float]:
        return not entry.passed, entry.max_abs_error or 0.0

    return [max((e, by_index.get(e.index, e)), key=badness) for e in first]


def _verdict(inputs: list[InputError], problems: list[str], names: list[str], target: Any,
             note: str) -> Outcome:
    if problems:
        return Outcome(Status.FAILED, "backward gives other gradients under vmap than one "
                       "call at a time: " + "; ".join(problems) + f". ({note})",
                       inputs=inputs, names=names, location=target.backward_location)
    return Outcome(Status.PASSED, note + ".", inputs=inputs, names=names)
