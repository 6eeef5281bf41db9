"""Rules for ops that make tensors: `zeros`/`ones`/`full`..., `eye`, `cat`/`stack`."""

from __future__ import annotations

from gradcheck_cli.init.facts import Facts
from gradcheck_cli.init.rules.registry import (
    Call,
    TensorCall,
    evaluate_all,
    tensor_op,
    torch_function,
)
from gradcheck_cli.init.symbols import UNKNOWN, Dim, Shape, Size, Tensor, Value

FACTORIES = ("zeros", "ones", "empty", "rand", "randn", "full", "new_zeros", "new_ones",
             "new_empty", "new_full")


@torch_function(*FACTORIES)
def factory(facts: Facts, call: Call) -> Value | None:
    """`torch.zeros(n, x.shape[1])`, `torch.full(size, value)`: the sizes named."""
    dims = facts.sizes(call.args[1:] if call.name == "full" else call.args)
    return Tensor(Shape(dims)) if dims is not None else UNKNOWN


@tensor_op(*FACTORIES)
def factory_method(facts: Facts, call: TensorCall) -> Value:
    """`x.new_zeros(n, m)`: the sizes named, whatever `x` is."""
    dims = facts.sizes(call.args)
    return Tensor(Shape(dims)) if dims is not None else UNKNOWN


@torch_function("eye")
def eye(facts: Facts, call: Call) -> Value | None:
    """`torch.eye(n)`: n by n."""
    if not call.args:
        return None
    size = facts.ev(call.args[0])
    dim = size.dim if isinstance(size, Size) else Dim()
    return Tensor(Shape([dim, dim]))


@torch_function("cat", "concat", "stack")
def concatenate(facts: Facts, call: Call) -> Value | None:
    """`torch.cat([a, b])`: not modelled, but the tensors' shapes stay as they are."""
    evaluate_all(facts, call.args)
    return UNKNOWN
