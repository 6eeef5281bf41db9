"""gradgradcheck: the second-order check, gradcheck of backward's gradients.

Its function checked maps (inputs, grad_outputs) to backward's gradients w.r.t. the inputs
(backward runs with create_graph), as torch's gradgradcheck.
"""

from __future__ import annotations

from typing import Any

import torch

from gradcheck_cli.engine import cost
from gradcheck_cli.engine.checks.sequence import check_jacobians
from gradcheck_cli.engine.checks.subject import Request, Subject
from gradcheck_cli.engine.contract import explain
from gradcheck_cli.engine.inputs import make_grad_outputs
from gradcheck_cli.engine.jacobian import as_tuple, diff_positions, is_diff_tensor
from gradcheck_cli.engine.outcome import CheckContext, Outcome, Tolerances
from gradcheck_cli.engine.reference import Reference, forward_reference, second_order_reference
from gradcheck_cli.engine.vjp import vjp
from gradcheck_cli.results import Status
from gradcheck_cli.target.discovery import Target


def run(context: CheckContext) -> Outcome:
    return gradgradcheck(context.target, context.args, context.names, context.tolerances,
                         context.budget // 16, context.seed, context.first_order_ok,
                         mode=context.mode, max_memory=context.budget)


def gradgradcheck(target: Target, args: list[Any], names: list[str], tolerances: Tolerances,
                  max_elements: int, seed: int, first_order_ok: bool | None = None, *,
                  mode: str = "auto", max_memory: int | None = None,
                  max_seconds: float = cost.DEFAULT_EXACT_SECONDS) -> Outcome:
    """Second-order check: gradcheck of (inputs, grad_outputs) -> backward's gradients,
    in the same modes as `gradcheck` (the function checked runs backward with
    create_graph, so a probe's backward is a double backward)."""
    cost.check_mode(mode)
    try:
        func_out = as_tuple(target.call(*args))
    except Exception as exc:
        why = explain(exc, target, names, "forward")
        return Outcome(Status.ERROR, why.message, location=why.location)
    for index, out in enumerate(func_out):
        if isinstance(out, torch.Tensor) and (out.is_floating_point() or out.is_complex()) \
                and not bool(torch.isfinite(out.detach()).all()):
            # As gradcheck: non-finite outputs mean the inputs are outside the domain.
            bad = int((~torch.isfinite(out.detach())).sum())
            return Outcome(Status.ERROR,
                           f"forward returned non-finite values in output {index}: {bad} of "
                           f"{out.numel()}. The inputs are probably outside the function's "
                           "domain: narrow them with `low`/`high` in the spec.",
                           location=target.forward_location)
    outputs = [o for o in func_out if is_diff_tensor(o)]
    if not outputs:
        # Nothing is differentiated, so nothing is checked: never a pass.
        return Outcome(Status.SKIPPED, "no differentiable outputs (no input requires grad, or "
                                       "forward's outputs do not), nothing to differentiate twice")
    grad_outputs = make_grad_outputs(tuple(outputs), seed)
    count = len(grad_outputs)
    positions = diff_positions(args)
    returned: list[int] = []  # which inputs' gradients the last call returned

    def first_derivatives(*all_args: Any) -> tuple[torch.Tensor, ...]:
        inputs = all_args[:-count]
        outs = [o for o in as_tuple(target.call(*inputs)) if is_diff_tensor(o)]
        grads = vjp(outs, [inputs[i] for i in positions], all_args[-count:], create_graph=True)
        returned[:] = [p for p, g in zip(positions, grads) if g is not None]
        return tuple(g for g in grads if g is not None)

    grad_names = (["grad_output"] if count == 1
                  else [f"grad_output{i}" for i in range(count)])

    def output_name(index: int) -> str:
        if index < len(returned):
            return f"grad of `{names[returned[index]]}`"
        return f"output {index}"

    budget = cost.memory_budget(max_elements, max_memory)
    first = forward_reference(target)
    reference = first if first.run is None else Reference(
        second_order_reference(first.run, count, positions, returned))
    subject = Subject(target, first_derivatives, [*args, *grad_outputs], names + grad_names,
                      "second", output_name, first_order_ok, reference)
    return check_jacobians(subject, Request(tolerances, budget, mode, seed, max_seconds))
