"""Autograd through forward: a Function's own forward, recorded by autograd, as a reference.

`Fn.apply` runs forward under no_grad and hands the gradient to the user's backward. Run
outside `apply` instead, on fresh leaf copies of the inputs under `enable_grad`, with a
context that records what forward asks of `ctx`, the same forward builds an autograd graph
whose vector-Jacobian products are exact to rounding, at any size, with no step size. It
is a reference only where forward is differentiable torch code: a graph break (a
`.detach()`, `torch.no_grad()`, `.data`, a NumPy round trip, an integer cast), a custom op
or another Function inside forward hide things from autograd (see `inspect_graph`; the
finite-difference probes of `checks/reference_mode.py` catch what the graph does not show).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gradcheck_cli.engine.describe import summary
from gradcheck_cli.engine.jacobian import as_tuple, is_diff_tensor
from gradcheck_cli.engine.vjp import vjp
from gradcheck_cli.target.records import Target

# args -> forward's outputs, their graph reaching the leaves among args
RefFn = Callable[[list[Any]], tuple[Any, ...]]


class NoReference(Exception):
    """Autograd through forward is no reference here; the message says why, in plain words.

    `expected`: nothing unusual about the target (the first-order gradient is wrong, and
    the check's own failure says so): auto mode falls back without a word."""

    def __init__(self, why: str, expected: bool = False) -> None:
        super().__init__(why)
        self.expected = expected


class RecordingContext:
    """What `ctx` offers a Function's forward (and `setup_context`), recorded, not acted on.

    Attributes forward sets stay on it, as on a real ctx; `saved_tensors` gives back what
    was saved. `mark_non_differentiable` is kept: those outputs are not compared."""

    def __init__(self, inputs: Sequence[Any]) -> None:
        self.needs_input_grad = tuple(is_diff_tensor(a) for a in inputs)
        self.to_save: tuple[Any, ...] = ()
        self.saved_for_forward: tuple[Any, ...] = ()
        self.dirty: list[torch.Tensor] = []
        self.non_differentiable: list[torch.Tensor] = []
        self.materialize_grads = True

    def save_for_backward(self, *tensors: Any) -> None:
        self.to_save = tensors

    def save_for_forward(self, *tensors: Any) -> None:
        self.saved_for_forward = tensors

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        return self.to_save

    saved_variables = saved_tensors

    def mark_dirty(self, *tensors: torch.Tensor) -> None:
        self.dirty.extend(tensors)

    def mark_non_differentiable(self, *tensors: torch.Tensor) -> None:
        self.non_differentiable.extend(tensors)

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = bool(value)

    def is_non_differentiable(self, tensor: torch.Tensor) -> bool:
        return any(tensor is t for t in self.non_differentiable)


@dataclass(frozen=True)
class Reference:
    """How to run a target's forward as a reference (`run`), or why it cannot be (`why_not`)."""

    run: RefFn | None
    why_not: str = ""


def forward_reference(target: Target) -> Reference:
    """The reference of an autograd Function with a static forward; custom ops, modules and
    plain callables have none (their backward is torch's own, or below autograd)."""
    if target.kind == "custom_op":
        return Reference(None, "a custom op's kernel runs below autograd, so autograd cannot "
                               "differentiate it")
    if target.kind != "function":
        why = ("a legacy Function (non-static forward)" if target.kind == "legacy" else
               "not an autograd Function: its gradient is autograd's own (of the Functions "
               "it calls)")
        return Reference(None, why)
    cls = target.obj
    base_setup = torch.autograd.Function.setup_context
    new_style = getattr(cls, "setup_context", base_setup) is not base_setup

    def run(args: list[Any]) -> tuple[Any, ...]:
        positional, keywords = (target.layout.pack(args) if target.layout is not None
                                else (list(args), {}))
        # A non-leaf copy per input: a forward declared in place (mark_dirty) may write it.
        fed = [a.clone() if is_diff_tensor(a) else a for a in positional]
        ctx = RecordingContext(fed)
        try:
            with torch.enable_grad():
                if new_style:
                    out = cls.forward(*fed, **keywords)
                    cls.setup_context(ctx, tuple(fed), out)
                else:
                    out = cls.forward(ctx, *fed, **keywords)
        except Exception as exc:
            raise NoReference(f"forward fails when autograd records it ({summary(exc)})"
                              ) from None
        outs = as_tuple(out)
        any_grad = any(ctx.needs_input_grad)
        # As apply: outputs are differentiable unless marked so, or not floating point.
        return tuple(o.detach() if isinstance(o, torch.Tensor) and (
            not any_grad or ctx.is_non_differentiable(o)
            or not (o.is_floating_point() or o.is_complex())) else o for o in outs)

    return Reference(run)


def second_order_reference(first: RefFn, count: int, positions: list[int],
                           returned: list[int]) -> RefFn:
    """(inputs, grad_outputs) -> autograd's gradients of the inputs at `returned` (those the
    user's backward returned), through the first-order reference, with create_graph: its
    vector-Jacobian products are autograd's second derivatives."""

    def run(all_args: list[Any]) -> tuple[Any, ...]:
        inputs, grad_outputs = all_args[:-count], all_args[-count:]
        outs = [o for o in first(list(inputs)) if is_diff_tensor(o)]
        if len(outs) != count:
            raise NoReference("forward's differentiable outputs under autograd are not those "
                              "of Function.apply (a graph break in forward?)")
        leaves = [inputs[p] for p in positions]
        foreign = inspect_graph(outs, leaves).foreign
        if foreign:
            raise NoReference(f"forward calls {foreign[0]}")
        try:
            grads = vjp(outs, leaves, list(grad_outputs), create_graph=True)
        except RuntimeError as exc:
            raise NoReference(not_differentiable(exc)) from None
        by_position = dict(zip(positions, grads))
        found = []
        for p in returned:
            grad = by_position.get(p)
            found.append(torch.zeros_like(inputs[p]) if grad is None else grad)
        return tuple(found)

    return run


def not_differentiable(exc: BaseException) -> str:
    """Why autograd could not differentiate the reference, naming the op when torch does."""
    text = summary(exc)
    op = re.search(r"backward through (\S+) but no autograd formula", text)
    if op:
        name = op.group(1).removesuffix(".default").replace(".", "::", 1)
        return f"forward calls a non-differentiable op ({name})"
    op = re.search(r"derivative for (\S+?) is not implemented", text)
    if op:
        return f"forward calls a non-differentiable op ({op.group(1)})"
    return f"autograd cannot differentiate forward ({text})"


@dataclass
class Graph:
    """What autograd recorded of forward: the inputs it reaches, and what is not its own."""

    reached: set[int] = field(default_factory=set)  # indexes into the leaves
    foreign: list[str] = field(default_factory=list)  # a Function or custom op inside


_GENERATED = re.compile(r"^GeneratedBackwardFor_(.+?)(_default)?Backward$")


def inspect_graph(outputs: Sequence[torch.Tensor], leaves: Sequence[torch.Tensor]) -> Graph:
    """Walk the graph from the outputs: which leaves it reaches, and the nodes whose backward
    is hand-written (another autograd Function's, a custom op's formula or its absence)."""
    graph = Graph()
    index = {id(leaf): k for k, leaf in enumerate(leaves)}
    seen: set[int] = set()
    stack: list[Any] = [o.grad_fn for o in outputs if o.grad_fn is not None]
    for o in outputs:
        if o.grad_fn is None and id(o) in index:  # an output that is an input leaf
            graph.reached.add(index[id(o)])
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        variable = getattr(node, "variable", None)
        if variable is not None and id(variable) in index:
            graph.reached.add(index[id(variable)])
        if isinstance(node, torch.autograd.function.BackwardCFunction):
            shown = _foreign(type(node).__name__)
            if shown not in graph.foreign:
                graph.foreign.append(shown)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return graph


def _foreign(node_name: str) -> str:
    """What a hand-written backward node in the graph is, as `... calls <it>` ends."""
    generated = _GENERATED.match(node_name)
    if generated is None:
        return (f"the autograd Function {node_name.removesuffix('Backward')}, whose backward "
                "is hand-written, not autograd's")
    name, registered = _custom_op(generated.group(1))
    if not registered:
        return f"a non-differentiable op ({name})"
    return f"the custom op {name}, whose autograd formula is hand-written, not autograd's"


def _custom_op(mangled: str) -> tuple[str, bool]:
    """(`mylib::fused_kernel`, whether it has an autograd formula) from the mangled name
    torch gives its backward node, when torch knows the op (else the name as it is)."""
    try:
        from torch._library.custom_ops import OPDEFS
    except ImportError:  # pragma: no cover - torch's private registry moved
        return mangled, True
    for qualname, definition in OPDEFS.items():
        if qualname.replace("::", "_") == mangled:
            return qualname, getattr(definition, "_backward_fn", True) is not None
    return mangled, True
