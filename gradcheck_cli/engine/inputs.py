"""Spec records -> seeded tensors on a device, named after forward's parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gradcheck_cli.errors import SpecError
from gradcheck_cli.specs.specfile import (
    DEFAULT_HIGH,
    DEFAULT_INT_HIGH,
    DEFAULT_INT_LOW,
    DEFAULT_LOW,
    GivenTensor,
    InputSpec,
    Keywords,
    Leaf,
    ListInput,
    LiteralInput,
    TensorInput,
    leaves,
)
from gradcheck_cli.target.discovery import Target
from gradcheck_cli.target.records import Layout

DEFAULT_SHAPE = (3, 4)


@dataclass
class BuiltInputs:
    """The flat argument list for one check, with a name per argument, and how the call
    packs it when the spec gives keyword or list arguments (else None)."""

    args: list[Any]
    names: list[str]
    layout: Layout | None = None


def infer_inputs(target: Target, shape: tuple[int, ...] = DEFAULT_SHAPE) -> tuple[InputSpec, ...]:
    """A float64 tensor for each parameter without a default; defaults are kept."""
    return tuple(
        TensorInput(shape=shape, name=param.name)
        for param in target.params
        if not param.has_default
    )


def check_arity(target: Target, specs: tuple[InputSpec, ...], spec_file: str | None,
                line: int | None, kwargs: Keywords = ()) -> None:
    """Raise a SpecError naming the missing or extra arguments."""
    if kwargs or any(isinstance(s, ListInput) for s in specs):
        _check_structured(target, specs, kwargs, spec_file, line)
        return
    required = [p.name for p in target.params if not p.has_default]
    given = len(specs)
    if given < len(required):
        missing = ", ".join(f"`{name}`" for name in required[given:])
        raise SpecError(
            f"{target.name}.forward needs {len(required)} argument(s) but the spec gives {given}: "
            f"missing {missing}",
            file=spec_file, line=line,
            hint="add one entry under `inputs` per argument of forward (after ctx)",
        )
    if given > len(target.params) and not target.varargs:
        raise SpecError(
            f"{target.name}.forward takes {len(target.params)} argument(s) but the spec gives "
            f"{given}",
            file=spec_file, line=line,
            hint="remove the extra entries under `inputs`",
        )


def _check_structured(target: Target, specs: tuple[InputSpec, ...], kwargs: Keywords,
                      spec_file: str | None, line: int | None) -> None:
    """Arity when arguments are given by name or as lists: every parameter once, by
    position or by name, the required ones all given."""
    positional = target.positional()
    if len(specs) > len(positional) and not target.varargs:
        raise SpecError(f"{target.name} takes {len(positional)} positional argument(s) but "
                        f"the spec's `inputs` give {len(specs)}", file=spec_file, line=line,
                        hint="give the others under `kwargs`, by name")
    allowed = target.keyword_names()
    by_position = {p.name for p in positional[:len(specs)]}
    for name, spec in kwargs:
        if allowed is not None and name not in allowed:
            from gradcheck_cli.errors import did_you_mean

            raise SpecError(f"{target.name} has no parameter `{name}`", file=spec_file,
                            line=spec.line or line,
                            hint=did_you_mean(name, allowed) or (
                                f"its parameters: {', '.join(allowed) or 'none'}"))
        if name in by_position:
            raise SpecError(f"`{name}` is given twice: under `inputs` and under `kwargs`",
                            file=spec_file, line=spec.line or line)
    given = by_position | {name for name, _ in kwargs}
    keyword_only = [] if target.kind == "custom_op" else target.keywords
    missing = [p.name for p in (*positional, *keyword_only)
               if not p.has_default and p.name not in given]
    if missing:
        raise SpecError(f"{target.name} needs {', '.join(f'`{n}`' for n in missing)}, which "
                        "the spec does not give", file=spec_file, line=line,
                        hint="add them under `inputs` (in order) or `kwargs` (by name)")


def input_names(target: Target, specs: tuple[InputSpec, ...], kwargs: Keywords = ()) -> list[str]:
    """A name per flat input: the spec's, else the parameter's (`xs[1]` inside a list,
    `args[0]` for *args, a keyword argument by its name)."""
    structured = bool(kwargs) or any(isinstance(s, ListInput) for s in specs)
    params = target.positional() if structured else target.params
    names: list[str] = []
    for index, spec in enumerate(specs):
        if spec.name:
            base = spec.name
        elif index < len(params):
            base = params[index].name
        elif target.varargs:
            base = f"{target.varargs_name}[{index - len(params)}]"
        else:
            base = f"input{index}"
        if isinstance(spec, ListInput):
            names.extend(item.name or f"{base}[{k}]" for k, item in enumerate(spec.items))
        else:
            names.append(base)
    for key, spec in kwargs:
        if isinstance(spec, ListInput):
            names.extend(item.name or f"{key}[{k}]" for k, item in enumerate(spec.items))
        else:
            names.append(key)
    return names


def layout_of(specs: tuple[InputSpec, ...], kwargs: Keywords = ()) -> Layout | None:
    """How the flat inputs pack into the call (None: one flat input per argument)."""
    if not kwargs and not any(isinstance(s, ListInput) for s in specs):
        return None
    slots: list[tuple[str | None, int | None]] = [
        (None, len(s.items) if isinstance(s, ListInput) else None) for s in specs]
    slots += [(key, len(s.items) if isinstance(s, ListInput) else None) for key, s in kwargs]
    return Layout(tuple(slots))


def build_inputs(target: Target, specs: tuple[InputSpec, ...], seed: int,
                 device: str, kwargs: Keywords = ()) -> BuiltInputs:
    """Draw every tensor from one generator seeded with `seed` (on the CPU, then moved).

    Drawing on the CPU makes the values identical on every device, so a CPU and a
    CUDA result for the same seed are about the same numbers.
    """
    generator = torch.Generator().manual_seed(seed)
    args: list[Any] = []
    for spec in leaves(specs, kwargs):
        if isinstance(spec, LiteralInput):
            args.append(spec.value)
        elif isinstance(spec, GivenTensor):
            value = spec.value.detach().clone().to(device)
            args.append(value.requires_grad_(True) if spec.requires_grad else value)
        else:
            args.append(make_tensor(spec, generator, device))
    return BuiltInputs(args=args, names=input_names(target, specs, kwargs),
                       layout=layout_of(specs, kwargs))


def make_tensor(spec: TensorInput, generator: torch.Generator, device: str) -> torch.Tensor:
    dtype = getattr(torch, spec.dtype)
    low = DEFAULT_LOW if spec.low is None else spec.low
    high = DEFAULT_HIGH if spec.high is None else spec.high
    shape = spec.shape
    if dtype.is_complex:
        real = torch.rand(shape, generator=generator, dtype=torch.float64)
        imag = torch.rand(shape, generator=generator, dtype=torch.float64)
        value = torch.complex(real * (high - low) + low, imag * (high - low) + low).to(dtype)
    elif dtype.is_floating_point:
        value = (torch.rand(shape, generator=generator, dtype=torch.float64) * (high - low) + low)
        if spec.avoid:
            value = _keep_away(value, spec.avoid, low, high, generator)
        value = value.to(dtype)
    elif dtype == torch.bool:
        value = torch.rand(shape, generator=generator) < 0.5
    else:
        int_low = DEFAULT_INT_LOW if spec.low is None else int(spec.low)
        int_high = DEFAULT_INT_HIGH if spec.high is None else int(spec.high)
        value = torch.randint(int_low, int_high, shape, generator=generator, dtype=dtype)
    value = value.to(device)
    if spec.requires_grad:
        value.requires_grad_(True)
    return value


def avoid_margin(low: float, high: float) -> float:
    # Far beyond gradcheck's default step (1e-6), small enough to keep the spread of the draw.
    return max(1e-4, 1e-3 * (high - low))


def _keep_away(value: torch.Tensor, points: tuple[float, ...], low: float, high: float,
               generator: torch.Generator) -> torch.Tensor:
    """Redraw the elements that fall within a margin of a point to avoid (a kink)."""
    margin = avoid_margin(low, high)
    for _ in range(100):
        near = torch.zeros(value.shape, dtype=torch.bool)
        for point in points:
            near |= (value - point).abs() < margin
        count = int(near.sum())
        if count == 0:
            return value
        fresh = torch.rand(count, generator=generator, dtype=torch.float64) * (high - low) + low
        value[near] = fresh
    return value


def make_grad_outputs(outputs: tuple[torch.Tensor, ...], seed: int) -> list[torch.Tensor]:
    """Random grad_outputs for gradgradcheck, uniform in [-1, 1] as torch's own."""
    generator = torch.Generator().manual_seed(seed + 1_000_003)
    grads = []
    for output in outputs:
        floating = output.is_floating_point() or output.is_complex()
        dtype = output.dtype if floating else torch.float64
        if dtype.is_complex:
            real = torch.rand(output.shape, generator=generator, dtype=torch.float64) * 2 - 1
            imag = torch.rand(output.shape, generator=generator, dtype=torch.float64) * 2 - 1
            grad = torch.complex(real, imag).to(dtype)
        else:
            grad = (torch.rand(output.shape, generator=generator, dtype=torch.float64) * 2 - 1)
            grad = grad.to(dtype)
        grads.append(grad.to(output.device).requires_grad_(True))
    return grads


def describe(specs: tuple[InputSpec, ...] | list[Leaf], names: list[str]) -> str:
    """`x: float64 (3, 4), dim: -1`, for messages."""
    parts = []
    for spec, name in zip(leaves(tuple(specs)), names):
        if isinstance(spec, TensorInput):
            parts.append(f"{name}: {spec.dtype} {tuple(spec.shape)}")
        elif isinstance(spec, GivenTensor):
            parts.append(f"{name}: {str(spec.value.dtype).removeprefix('torch.')} "
                         f"{tuple(spec.value.shape)}")
        else:
            parts.append(f"{name}: {spec.value!r}")
    return ", ".join(parts)
