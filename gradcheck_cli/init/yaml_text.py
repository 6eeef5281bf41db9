"""Python values and input specs written as YAML flow text that PyYAML reads back equal."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradcheck_cli.specs.specfile import InputSpec


def literal(value: Any) -> str | None:
    """`value` as a YAML flow scalar or collection that PyYAML reads back equal; else None."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        items = [literal(v) for v in value]
        strings = [i for i in items if i is not None]
        return "[" + ", ".join(strings) + "]" if len(strings) == len(items) else None
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        pairs = [(json.dumps(k), literal(v)) for k, v in value.items()]
        if any(v is None for _, v in pairs):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    return None


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    if "e" in text and "." not in text.split("e")[0]:
        # YAML 1.1 (PyYAML) reads `1e-05` as a string: it needs `1.0e-05`
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent if exponent[0] in '+-' else '+' + exponent}"
    return text


def entry_yaml(spec: InputSpec) -> str:
    """One entry under `inputs:`, as a flow mapping."""
    from gradcheck_cli.specs.specfile import GivenTensor, ListInput, TensorInput

    if isinstance(spec, ListInput):
        items = ", ".join(entry_yaml(item) for item in spec.items)
        named = f", name: {_name(spec.name)}" if spec.name else ""
        return "{list: [" + items + "]" + named + "}"
    if isinstance(spec, GivenTensor):
        spec = TensorInput(shape=tuple(spec.value.shape), requires_grad=spec.requires_grad,
                           name=spec.name)
    if isinstance(spec, TensorInput):
        parts = [f"shape: [{', '.join(map(str, spec.shape))}]"]
        if spec.dtype != "float64":
            parts.append(f"dtype: {spec.dtype}")
        if spec.low is not None:
            parts.append(f"low: {literal(spec.low)}")
        if spec.high is not None:
            parts.append(f"high: {literal(spec.high)}")
        if not spec.requires_grad:
            parts.append("requires_grad: false")
        parts.append(f"name: {_name(spec.name)}")
        return "{" + ", ".join(parts) + "}"
    text = literal(spec.value)
    return "{value: " + (text or "null") + f", name: {_name(spec.name)}}}"


def _name(name: str | None) -> str:
    """An input's name in a flow mapping: `xs[0]` (a custom op's list) needs quotes there."""
    text = name or ""
    flow = any(c in text for c in "[]{},")
    return literal(text) or '""' if needs_quotes(text) or flow else text


def needs_quotes(text: str) -> bool:
    """Whether `text` as a plain YAML scalar would not read back as the same string."""
    return (not text or text[0] in "!&*?|>'\"%@`{[-#,:" or ": " in text or " #" in text
            or text != text.strip())
