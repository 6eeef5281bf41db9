"""The CHECKS registry: every check by name, with what the planner, reports and specs need.

Importing this module must not import torch: the command line's choices, spec validation
and `--help` read it. A check's code lives in its own module of this package and is
imported only when the check runs (`CheckKind.load`).

Adding a check is one new module with a `run(context) -> Outcome` function, plus one
`register(CheckKind(...))` line below (see CONTRIBUTING.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CheckKind:
    """What the tool needs to know about a check without running it."""

    name: str
    summary: str  # one line, for --help and the README
    module: str  # the module of this package whose `run(context)` runs it
    default: bool = False  # run when neither the command line nor the spec chooses checks
    double_backward: bool = False  # differentiates backward (impossible @once_differentiable)
    first_order: bool = False  # its verdict tells later checks whether first order is right
    once_per_case: bool = False  # one result per Function x case, not per device
    opt_in_key: str | None = None  # a spec/config/flag switch that adds it (`float32: true`)
    torch_call: str | None = None  # the torch function a repro script calls, if any
    label: str = ""  # how the table labels it; the name when empty

    @property
    def shown(self) -> str:
        return self.label or self.name

    def load(self) -> Callable[[Any], Any]:
        """The check's `run(context)`; importing it imports torch."""
        module = importlib.import_module(f"{__name__}.{self.module}")
        run: Callable[[Any], Any] = module.run
        return run


CHECKS: dict[str, CheckKind] = {}


def register(kind: CheckKind) -> CheckKind:
    if kind.name in CHECKS:
        raise ValueError(f"check {kind.name!r} is registered twice")
    CHECKS[kind.name] = kind
    return kind


def default_checks() -> tuple[str, ...]:
    """The checks run when neither the command line nor the spec chooses."""
    return tuple(name for name, kind in CHECKS.items() if kind.default)


def check_names() -> tuple[str, ...]:
    return tuple(CHECKS)


register(CheckKind(
    "gradcheck", "first-order gradients against finite differences", "gradcheck",
    default=True, first_order=True, torch_call="torch.autograd.gradcheck"))
register(CheckKind(
    "gradgradcheck", "second-order gradients (the backward of backward)", "gradgradcheck",
    default=True, double_backward=True, torch_call="torch.autograd.gradgradcheck"))
register(CheckKind(
    "float32", "float32 gradients against float64 ones (precision loss)", "float32",
    opt_in_key="float32"))
register(CheckKind(
    "capabilities", "which autograd features the Function supports, and which work",
    "capabilities", once_per_case=True, opt_in_key="capabilities"))
register(CheckKind(
    "mutation", "forward and backward leave inputs and grad_outputs unchanged (or declare "
    "ctx.mark_dirty)", "mutation"))
