"""Whether a target's code computes with complex numbers: its drafts then try complex inputs.

Read from the source of its forward and backward (a custom op's kernel and registered
backward): `.conj()`, `.real` / `.imag`, `torch.view_as_real` / `view_as_complex`,
`torch.complex`, `.angle()`, complex dtypes and literals such as `1j`. A real input hides
a Wirtinger mistake (a missing `.conj()`), so such an op is checked on complex inputs.
"""

from __future__ import annotations

import ast

from gradcheck_cli.init.drafting import _function_node, _method, forward_node
from gradcheck_cli.specs.specfile import InputSpec, ListInput, TensorInput
from gradcheck_cli.target.records import Target

_ATTRIBUTES = {"conj", "conj_physical", "real", "imag", "view_as_real", "view_as_complex",
               "angle", "polar", "complex", "complex64", "complex128", "cfloat", "cdouble",
               "resolve_conj"}


def _complex_in(node: ast.AST | None) -> bool:
    if node is None:
        return False
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr in _ATTRIBUTES:
            return True
        if isinstance(sub, ast.Constant) and isinstance(sub.value, complex):
            return True
    return False


def uses_complex(target: Target) -> bool:
    """Whether forward or backward uses complex numbers, as their source shows."""
    nodes = [forward_node(target)]
    obj = target.obj
    if isinstance(obj, type):
        nodes.append(_function_node(_method(obj, "backward")))
    backward = getattr(obj, "_backward_fn", None)  # a custom op's registered autograd
    if backward is not None:
        nodes.append(_function_node(backward))
    return any(_complex_in(node) for node in nodes)


def complexified(specs: tuple[InputSpec, ...]) -> tuple[InputSpec, ...]:
    """The draft with its float64 tensors that require grad made complex128."""
    def one(spec: InputSpec) -> InputSpec:
        if isinstance(spec, TensorInput) and spec.dtype == "float64" and spec.requires_grad:
            return TensorInput(shape=spec.shape, dtype="complex128", low=spec.low,
                               high=spec.high, requires_grad=True, name=spec.name,
                               line=spec.line)
        if isinstance(spec, ListInput):
            return ListInput(tuple(one(item) for item in spec.items),  # type: ignore[misc]
                             spec.name, spec.line)
        return spec
    return tuple(one(spec) for spec in specs)
