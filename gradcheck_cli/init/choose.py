"""Zero-config inputs: init's drafts from forward's source, each tried once, the first that runs.

A guess is never a verdict about the user's code: a draft that forward rejects is a reason
to try the next one, and when none runs the result is an error that says how to write a
spec, never a failure. An input that backward returns no gradient for is taken as not
differentiable (as a spec would say with `requires_grad: false`), not blamed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gradcheck_cli.engine.inputs import infer_inputs
from gradcheck_cli.settings import DEFAULT_SHAPE
from gradcheck_cli.specs.specfile import InputSpec, Keywords, LiteralInput, TensorInput

if TYPE_CHECKING:
    from gradcheck_cli.target.discovery import Target

MAX_DRAFTS = 12  # each costs one forward and backward at a small size


@dataclass
class Inferred:
    """The inputs chosen (None when no draft ran), how many drafts were tried, and what
    went wrong with the first one."""

    specs: tuple[InputSpec, ...] | None
    tried: int = 0
    problem: str = ""
    kwargs: Keywords = ()  # keyword-only parameters without a default, by name


def drafts_for(target: Target, init: dict[str, Any], shape: tuple[int, ...]
               ) -> list[tuple[InputSpec, ...]]:
    """The drafts to try, best first: init's guesses from forward's source (for an
    nn.Module, first those its layers suggest for its first input), then every tensor of
    `shape`; a `shape` the user chose (not the default) goes first."""
    from gradcheck_cli.init.complex_use import complexified, uses_complex
    from gradcheck_cli.init.drafting import draft_inputs

    drafts = draft_inputs(target)
    if target.kind == "module" and target.params:
        drafts = [*_module_drafts(target, init, drafts), *drafts]
    if shape == DEFAULT_SHAPE:
        drafts.append(infer_inputs(target, shape))
    else:
        drafts.insert(0, infer_inputs(target, shape))
    if uses_complex(target):  # complex inputs first: a real one hides a missing .conj()
        drafts = [complexified(draft) for draft in drafts] + drafts
    distinct: list[tuple[InputSpec, ...]] = []
    for draft in drafts:  # literal values may be lists: compared, not hashed
        if draft not in distinct:
            distinct.append(draft)
    return distinct[:MAX_DRAFTS]


def _module_drafts(target: Target, init: dict[str, Any],
                   drafts: list[tuple[InputSpec, ...]]) -> list[tuple[InputSpec, ...]]:
    import torch

    from gradcheck_cli.target.module import first_input_drafts

    try:
        instance = target.obj(**init)
    except Exception:  # the check itself reports a constructor that fails
        return []
    if not isinstance(instance, torch.nn.Module):
        return []
    rest = drafts[0][1:] if drafts else ()
    return [(first, *rest) for first in first_input_drafts(instance, target.params[0].name)]


def choose_inputs(target: Target, init: dict[str, Any], shape: tuple[int, ...]) -> Inferred:
    """The first draft that forward and backward run with, on the CPU."""
    from gradcheck_cli.init.trial import NON_FINITE, run_once, with_domain

    drafts = drafts_for(target, init, shape)
    # A custom op's keyword-only arguments are slots of its flat inputs already.
    keywords: Keywords = () if target.kind == "custom_op" else tuple(
        (p.name, TensorInput(shape=shape)) for p in target.keywords if not p.has_default)
    first_problem = ""
    for count, specs in enumerate(drafts, start=1):
        problem, no_gradient = run_once(target, specs, init, keywords)
        if problem == NON_FINITE:
            widened = tuple(with_domain(list(specs)))
            problem, no_gradient = run_once(target, widened, init, keywords)
            specs = widened
        if problem is None:
            return Inferred(_frozen(specs, no_gradient), count, kwargs=keywords)
        first_problem = first_problem or problem
    return Inferred(None, len(drafts), first_problem)


def _frozen(specs: tuple[InputSpec, ...], no_gradient: set[int]) -> tuple[InputSpec, ...]:
    """The draft with the inputs backward gives no gradient for marked not requiring it."""
    return tuple(replace(s, requires_grad=False)
                 if i in no_gradient and isinstance(s, TensorInput) else s
                 for i, s in enumerate(specs))


def shown(specs: tuple[InputSpec, ...], names: list[str], kwargs: Keywords = ()) -> str:
    """`x (4, 3), weight (5, 3), bias (5), slope 1.5`: the inputs inferred, for the report."""
    parts = []
    pairs = [*zip(specs, names), *((spec, name) for name, spec in kwargs)]
    for spec, name in pairs:
        if isinstance(spec, TensorInput):
            shape = ", ".join(map(str, spec.shape))
            extra = [] if spec.dtype == "float64" else [spec.dtype]
            if spec.low is not None and spec.high is not None:
                # Integers are drawn from [low, high), floats from [low, high].
                close = ")" if spec.dtype.startswith(("int", "uint")) else "]"
                extra.append(f"in [{spec.low:g}, {spec.high:g}{close}")
            if not spec.requires_grad:
                extra.append("no grad")
            parts.append(f"{name} ({shape})" + (f" {' '.join(extra)}" if extra else ""))
        elif isinstance(spec, LiteralInput):
            parts.append(f"{name} {spec.value!r}")
    return ", ".join(parts)
