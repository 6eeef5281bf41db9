"""Vector-Jacobian products: `torch.autograd.grad(outputs, inputs, grad_outputs)` by value.

The first call of `torch.autograd.grad` with tensor `grad_outputs` imports sympy (through
torch.fx's symbolic shapes, for a shape check), about half a second: most of the time of a
small check, paid again by every worker process. The gradient of the real scalar
Σ sum(output * grad_output) reaches each output as exactly `grad_output` (the gradient of a
sum is ones, and 1.0 * g == g), so the user's backward receives the same values, and the
result is the same; torch checks a scalar's implicit gradient without that import.

That form costs two more operations per call, though: a process that will make many calls
(a large batch in exact mode, see `cost.worth_importing_autograd`) pays the import once
instead, with `import_autograd_shapes`; once the module is loaded, calls go to torch
directly. Where the number of calls cannot be known beforehand (auto mode decides per
check between a few reference passes and torch's recipe), the scalar calls are counted,
and the import is paid once they have cost as much as it would have: never more than
twice the better choice.

A row of the Jacobian (grad_output one-hot) is cheaper still as the gradient of the
element itself: `element_vjp`.

Anything the scalar form cannot express the same way (complex values, mismatched shapes,
an output that does not require grad: torch's own error for it; tensor subclasses, sparse
and nested tensors) goes to torch unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import torch

from gradcheck_cli.engine.cost import worth_importing_autograd

_SHAPES = "torch.fx.experimental.symbolic_shapes"
_scalar_calls = [0]  # calls made in the scalar form by this process
_unavailable: set[str] = set()  # modules whose import failed: the scalar form stays


def import_autograd_shapes() -> None:
    """Pay the import now: every later `vjp` call is torch's own, the fastest. A torch
    without that module (or one that fails to import) only keeps the scalar form."""
    if _SHAPES in _unavailable:
        return
    try:
        __import__(_SHAPES)
    except Exception:  # a speed-up, never a reason for a check to fail
        _unavailable.add(_SHAPES)


def _counted() -> None:
    """One more scalar-form call: past the import's cost, pay the import."""
    _scalar_calls[0] += 1
    if worth_importing_autograd(_scalar_calls[0]):
        import_autograd_shapes()


def _same_as_torch(outputs: Sequence[torch.Tensor], grad_outputs: Sequence[torch.Tensor | None]
                   ) -> bool:
    if not outputs or len(outputs) != len(grad_outputs):
        return False
    for output, grad in zip(outputs, grad_outputs):
        if grad is None or not output.requires_grad:
            return False
        # Plain dense tensors only: subclasses, sparse and nested tensors go to torch.
        if type(output) is not torch.Tensor or type(grad) is not torch.Tensor:
            return False
        if output.layout != torch.strided or grad.layout != torch.strided \
                or output.is_nested or grad.is_nested:
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
    if _SHAPES in sys.modules or not _same_as_torch(outputs, grad_outputs):
        return torch.autograd.grad(list(outputs), list(inputs), list(grad_outputs),
                                   retain_graph=retain_graph, create_graph=create_graph,
                                   allow_unused=allow_unused)
    _counted()
    total: torch.Tensor | None = None
    for output, grad in zip(outputs, grad_outputs):
        assert grad is not None
        if grad.dtype != output.dtype:
            grad = grad.to(output.dtype)
        term = (output * grad).sum()
        total = term if total is None else total + term
    assert total is not None
    return torch.autograd.grad(total, list(inputs), retain_graph=retain_graph,
                               create_graph=create_graph, allow_unused=allow_unused)


def element_vjp(output: torch.Tensor, flat: torch.Tensor, index: int,
                inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor | None, ...]:
    """The gradients of `inputs` for grad_output = the one-hot vector at element `index` of
    `output` (`flat` is its `reshape(-1)`): the gradient of that element, which reaches the
    output as exactly that one-hot vector. Once torch's import is paid, torch's own call
    with the one-hot tensor is faster (no select and view nodes to run back through)."""
    if _SHAPES in sys.modules or not flat.is_floating_point():
        one_hot = torch.zeros_like(output, memory_format=torch.contiguous_format)
        one_hot.view(-1)[index] = 1.0
        return vjp([output], inputs, [one_hot], retain_graph=True)
    _counted()
    return torch.autograd.grad(flat[index], list(inputs), retain_graph=True, allow_unused=True)
