"""The registry of shape rules by torch op name, and the dispatch of a call to its rule."""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass

from gradcheck_cli.init.facts import Facts
from gradcheck_cli.init.symbols import UNKNOWN, Tensor, Value


@dataclass(frozen=True)
class Call:
    """`torch.name(*args, **keywords)` (any module: `F.`, `torch.linalg.`...), unevaluated."""

    name: str
    node: ast.Call
    args: list[ast.expr]
    keywords: dict[str, ast.expr]


@dataclass(frozen=True)
class TensorCall(Call):
    """`base.name(*args)`, or `torch.name(base, *args)` once `base` is known to be a tensor:
    `args` are the arguments after the tensor, unevaluated."""

    base: Tensor
    base_node: ast.expr


TensorRule = Callable[[Facts, TensorCall], Value]
FunctionRule = Callable[[Facts, Call], Value | None]

TENSOR_OPS: dict[str, TensorRule] = {}
TORCH_FUNCTIONS: dict[str, FunctionRule] = {}


def tensor_op(*names: str) -> Callable[[TensorRule], TensorRule]:
    """Register the decorated rule for `x.name(...)` and `torch.name(x, ...)`, each name."""
    def register(rule: TensorRule) -> TensorRule:
        taken = [name for name in names if name in TENSOR_OPS]
        if taken:
            raise ValueError(f"tensor-op rules for {', '.join(taken)} exist already")
        TENSOR_OPS.update(dict.fromkeys(names, rule))
        return rule
    return register


def torch_function(*names: str) -> Callable[[FunctionRule], FunctionRule]:
    """Register the decorated rule for `torch.name(...)`, each name; a rule returning None
    leaves the call to the tensor op of that name, on its first argument."""
    def register(rule: FunctionRule) -> FunctionRule:
        taken = [name for name in names if name in TORCH_FUNCTIONS]
        if taken:
            raise ValueError(f"torch-function rules for {', '.join(taken)} exist already")
        TORCH_FUNCTIONS.update(dict.fromkeys(names, rule))
        return rule
    return register


def unmodelled(facts: Facts, call: TensorCall) -> Value:
    """An op without a rule: whatever goes in keeps its shape only as a guess."""
    for arg in [*call.args, *call.keywords.values()]:
        facts.opaque(facts.ev(arg))
    facts.opaque(call.base)
    return UNKNOWN


def evaluate_all(facts: Facts, nodes: list[ast.expr]) -> None:
    """Evaluate arguments whose values the rule does not need (so their uses still count)."""
    for node in nodes:
        facts.ev(node)


def call_tensor_op(facts: Facts, call: TensorCall) -> Value:
    """`base.name(...)` through its rule."""
    return TENSOR_OPS.get(call.name, unmodelled)(facts, call)


def call_torch_function(facts: Facts, call: Call) -> Value:
    """`torch.name(...)` through its rule, else as the tensor op on its first argument."""
    rule = TORCH_FUNCTIONS.get(call.name)
    if rule is not None:
        result = rule(facts, call)
        if result is not None:
            return result
    if not call.args:
        return UNKNOWN
    first = facts.ev(call.args[0])
    if isinstance(first, Tensor):
        return call_tensor_op(facts, TensorCall(call.name, call.node, call.args[1:],
                                                call.keywords, first, call.args[0]))
    evaluate_all(facts, call.args[1:])
    return UNKNOWN
