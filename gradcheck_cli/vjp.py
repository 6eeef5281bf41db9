"""Vector-Jacobian products: `torch.autograd.grad(outputs, inputs, grad_outputs)` by value.

The first call of `torch.autograd.grad` with tensor `grad_outputs` imports sympy (through
torch.fx's symbolic shapes, for a shape check), about half a second: most of the time of a
small check, paid again by every worker process. The gradient of the real scalar
Σ sum(output * grad_output) reaches each output as exactly `grad_output` (the gradient of a
sum is ones, and 1.0 * g == g), so the user's backward receives the same values, and the
result is the same; torch checks a scalar's implicit gradient without that import.

Anything the scalar form cannot express the same way (complex values, mismatched shapes,
an output that does not require grad: torch's own error for it) goes to torch unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _same_as_torch(outputs: Sequence[torch.Tensor], grad_outputs: Sequence[torch.Tensor | None]
                   ) -> bool:
    if not outputs or len(outputs) != len(grad_outputs):
        return False
    for output, grad in zip(outputs, grad_outputs):
        if grad is None or not output.requires_grad:
            return False
        if not (output.is_floating_point() and grad.is_floating_point()):
            return False
        if output.shape != grad.shape or output.device != grad.device:
            return False
    return True


def vjp(outputs: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor],
        grad_outputs: Sequence[torch.Tensor | None], *, retain_graph: bool | None = None,
        create_graph: bool = False, allow_unused: bool = True
        ) -> tuple[torch.Tensor | None, ...]:
    """The gradients of `inputs` given `grad_outputs`, as `torch.autograd.grad` returns them."""
    if not _same_as_torch(outputs, grad_outputs):
        return torch.autograd.grad(list(outputs), list(inputs), list(grad_outputs),
                                   retain_graph=retain_graph, create_graph=create_graph,
                                   allow_unused=allow_unused)
    total: torch.Tensor | None = None
    for output, grad in zip(outputs, grad_outputs):
        assert grad is not None
        term = (output * grad.to(output.dtype)).sum()
        total = term if total is None else total + term
    assert total is not None
    return torch.autograd.grad(total, list(inputs), retain_graph=retain_graph,
                               create_graph=create_graph, allow_unused=allow_unused)
