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
    InputSpec,
    LiteralInput,
    TensorInput,
)
from gradcheck_cli.target.discovery import Target

DEFAULT_SHAPE = (3, 4)


@dataclass
class BuiltInputs:
    """The argument list for one check, with a name per argument."""

    args: list[Any]
    names: list[str]


def infer_inputs(target: Target, shape: tuple[int, ...] = DEFAULT_SHAPE) -> tuple[InputSpec, ...]:
    """A float64 tensor for each parameter without a default; defaults are kept."""
    return tuple(
        TensorInput(shape=shape, name=param.name)
        for param in target.params
        if not param.has_default
    )


def check_arity(target: Target, specs: tuple[InputSpec, ...], spec_file: str | None,
                line: int | None) -> None:
    """Raise a SpecError naming the missing or extra arguments."""
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


def input_names(target: Target, specs: tuple[InputSpec, ...]) -> list[str]:
    names = []
    for index, spec in enumerate(specs):
        if spec.name:
            names.append(spec.name)
        elif index < len(target.params):
            names.append(target.params[index].name)
        else:
            names.append(f"input{index}")
    return names


def build_inputs(target: Target, specs: tuple[InputSpec, ...], seed: int,
                 device: str) -> BuiltInputs:
    """Draw every tensor from one generator seeded with `seed` (on the CPU, then moved).

    Drawing on the CPU makes the values identical on every device, so a CPU and a
    CUDA result for the same seed are about the same numbers.
    """
    generator = torch.Generator().manual_seed(seed)
    args: list[Any] = []
    for spec in specs:
        if isinstance(spec, LiteralInput):
            args.append(spec.value)
        else:
            args.append(make_tensor(spec, generator, device))
    return BuiltInputs(args=args, names=input_names(target, specs))


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


def describe(specs: tuple[InputSpec, ...], names: list[str]) -> str:
    """`x: float64 (3, 4), dim: -1`, for messages."""
    parts = []
    for spec, name in zip(specs, names):
        if isinstance(spec, TensorInput):
            parts.append(f"{name}: {spec.dtype} {tuple(spec.shape)}")
        else:
            parts.append(f"{name}: {spec.value!r}")
    return ", ".join(parts)
