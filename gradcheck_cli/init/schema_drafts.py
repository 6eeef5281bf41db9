"""A custom op's input drafts: its schema's type says what each argument is, forward its shape.

The shapes of tensors come from the kernel's source, as for a Function's forward
(`drafting.guess`); the schema then overrules what the source cannot tell: an `int` is a
number even where the kernel only passes it on, a `Tensor[]` is LIST_LENGTH tensors
(`xs[0]`, `xs[1]`), a keyword-only argument gets a value like any other (its default when
it has one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gradcheck_cli.init.yaml_text import literal
from gradcheck_cli.specs.specfile import InputSpec, LiteralInput, TensorInput

if TYPE_CHECKING:
    from gradcheck_cli.target.custom_op import Slot

PLACEHOLDER = (3, 4)
PLAIN_NUMBER = 1.5  # as drafting's: not 0 or 1 (they hide a missing factor), not negative
Entry = tuple[InputSpec, str, bool]  # a spec, its comment, whether it needs a look (TODO)

# A value for an argument of each schema type that has no default, and why.
_NUMBERS: dict[str, tuple[Any, str, bool]] = {
    "int": (2, "TODO: an int (the schema says int); check the value", True),
    "float": (PLAIN_NUMBER, "a plain number (the schema says float)", False),
    "Scalar": (PLAIN_NUMBER, "a plain number (the schema says Scalar)", False),
    "bool": (False, "a flag (the schema says bool)", False),
    "int[]": ([-1], "TODO: a list of ints (the schema says int[]); check it", True),
    "float[]": ([PLAIN_NUMBER], "a list of numbers (the schema says float[])", False),
    "str": ("", "TODO: a string (the schema says str); check it", True),
}


def slot_entries(slot: Slot, spec: InputSpec | None, comment: str, todo: bool) -> list[Entry]:
    """What the flat input list gets for one schema argument, given the guess from the
    kernel's source for it (`spec`, None when the guess did not reach it)."""
    if slot.type == "Tensor[]":
        base = spec if isinstance(spec, TensorInput) else TensorInput(shape=PLACEHOLDER)
        # A list's tensors are rarely named in the kernel (`for x in xs`): any shape, the
        # same for each, unless the source said more.
        said = isinstance(spec, TensorInput) and not comment.startswith("not used")
        why = comment if said else "any shape, the same for each"
        return [(TensorInput(shape=base.shape, low=base.low, high=base.high, name=name),
                 f"tensor {k} of the list `{slot.name}` (Tensor[]): {why}", todo)
                for k, name in enumerate(slot.param_names())]
    if slot.type == "Tensor":
        if isinstance(spec, TensorInput):
            return [(spec, comment, todo)]
        return [(TensorInput(shape=PLACEHOLDER, name=slot.name),
                 "TODO: a tensor (the schema says Tensor); set the shape the op expects", True)]
    if slot.type == "Tensor?" and isinstance(spec, TensorInput):
        return [(spec, comment, todo)]
    if slot.has_default and literal(slot.default) is not None:
        return [(LiteralInput(slot.default, name=slot.name), "the schema's default", False)]
    if slot.type == "int" and isinstance(spec, LiteralInput) and spec.value == -1:
        return [(spec, comment, todo)]  # the kernel uses it as a dim
    if slot.type in _NUMBERS:
        value, why, needs_look = _NUMBERS[slot.type]
        return [(LiteralInput(value, name=slot.name), why, needs_look)]
    if slot.type.endswith("?"):
        return [(LiteralInput(None, name=slot.name), "None (the schema allows it)", False)]
    return [(LiteralInput(None, name=slot.name),
             f"TODO: a {slot.type} (from the schema): no value is drafted for this type", True)]
