"""torch's sub-checks once the Jacobians agree: backward scales with grad_output, None grads."""

from __future__ import annotations

import torch

from gradcheck_cli.engine.checks.subject import Subject
from gradcheck_cli.engine.describe import summary
from gradcheck_cli.engine.jacobian import as_tuple, diff_positions, is_diff_tensor
from gradcheck_cli.engine.resources import out_of_memory, ran_out
from gradcheck_cli.engine.vjp import vjp


def extra_failure(subject: Subject, outputs: list[torch.Tensor]) -> str | None:
    """What the first of torch's extra sub-checks to fail found, or None."""
    return zero_grad_output(subject, outputs) or undefined_output_grads(subject)


def zero_grad_output(subject: Subject, outputs: list[torch.Tensor]) -> str | None:
    """With grad_output = 0, backward must return zeros, of the input's dtype and device."""
    positions = diff_positions(subject.args)
    inputs = [subject.args[i] for i in positions]
    try:
        grads = vjp(
            outputs, inputs,
            [torch.zeros_like(o, memory_format=torch.contiguous_format) for o in outputs],
            retain_graph=True,
        )
    except Exception as exc:
        raise subject.stop(exc, "backward") from None
    for position, grad, inp in zip(positions, grads, inputs):
        if grad is None:
            continue
        name = subject.names[position]
        if not bool((grad == 0).all()):
            return (f"backward is not multiplied by grad_output: with grad_output = 0 it "
                    f"still returned a non-zero gradient for `{name}`")
        if grad.dtype != inp.dtype:
            return f"the gradient of `{name}` has dtype {grad.dtype}, the input {inp.dtype}"
        if grad.device != inp.device:
            return f"the gradient of `{name}` is on {grad.device}, the input on {inp.device}"
    return None


def undefined_output_grads(subject: Subject) -> str | None:
    """Backward must accept an undefined (None) gradient for any output, as zeros."""
    undefined = getattr(getattr(torch._C, "_functions", None), "UndefinedGrad", None)
    if undefined is None:
        return None
    inputs = [subject.args[i] for i in diff_positions(subject.args)]

    def fresh() -> list[torch.Tensor]:
        return [o for o in as_tuple(subject.fn(*subject.args)) if is_diff_tensor(o)]

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
            if out_of_memory(exc):  # not the missing-gradient handling's fault
                raise ran_out(exc, "backward") from None
            return ("backward fails when an output's gradient is undefined (None): "
                    f"{summary(exc)}. "
                    "Treat a None grad_output as zeros (or keep ctx.set_materialize_grads"
                    "(True), the default).")
        for grad in grads:
            if grad is not None and not bool((grad == 0).all()):
                return ("with every output gradient undefined (zero), backward returned a "
                        "non-zero gradient")
    return None
