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
    # It differentiates numerically: 16-bit inputs are checked in float64 on their values
    # (a step is below their resolution; the bfloat16/float16 checks compare the 16-bit run).
    finite_differences: bool = False
    once_per_case: bool = False  # one result per Function x case, not per device
    opt_in_key: str | None = None  # a spec/config/flag switch that adds it (`float32: true`)
    torch_call: str | None = None  # the torch function a repro script calls, if any
    label: str = ""  # how the table labels it; the name when empty
    # The kind of target (`Target.kind`) it applies to, when not all: on by default for
    # those only ("custom_op": torch.library ops, which opcheck tests).
    only_for: str | None = None
    # A fact of the target's source (`target/source_facts.py`: "needs_input_grad", "jvp")
    # that turns it on by default for that target, when `default` does not already.
    default_when: str | None = None
    entry: str = "run"  # the function of `module` that runs it
    group: tuple[str, ...] = ()  # a name standing for these checks (`opcheck`): never run

    @property
    def shown(self) -> str:
        return self.label or self.name

    def load(self) -> Callable[[Any], Any]:
        """The check's `run(context)`; importing it imports torch."""
        module = importlib.import_module(f"{__name__}.{self.module}")
        run: Callable[[Any], Any] = getattr(module, self.entry)
        return run


CHECKS: dict[str, CheckKind] = {}


def register(kind: CheckKind) -> CheckKind:
    if kind.name in CHECKS:
        raise ValueError(f"check {kind.name!r} is registered twice")
    CHECKS[kind.name] = kind
    return kind


def default_checks(target_kind: str | None = None,
                   facts: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The checks run when neither the command line nor the spec chooses, for a target of
    `target_kind` (None: one of no particular kind, such as an autograd Function) whose
    source shows `facts` (those a check's `default_when` names)."""
    return tuple(name for name, kind in CHECKS.items()
                 if (kind.default or (kind.default_when is not None
                                      and kind.default_when in facts))
                 and (kind.only_for is None or kind.only_for == target_kind))


def expand_groups(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The checks named, a group (`opcheck`) replaced by its members, each once."""
    found: list[str] = []
    for name in names:
        kind = CHECKS.get(name)
        found.extend(kind.group if kind is not None and kind.group else (name,))
    return tuple(dict.fromkeys(found))


def check_names() -> tuple[str, ...]:
    return tuple(CHECKS)


register(CheckKind(
    "gradcheck", "first-order gradients against finite differences, and backward linear in "
    "grad_output", "first_order",
    default=True, first_order=True, finite_differences=True,
    torch_call="torch.autograd.gradcheck"))
register(CheckKind(
    "gradgradcheck", "second-order gradients (the backward of backward)", "double_backward",
    default=True, double_backward=True, finite_differences=True,
    torch_call="torch.autograd.gradgradcheck"))
register(CheckKind(
    "float32", "float32 gradients against float64 ones (precision loss)", "float32",
    opt_in_key="float32"))
register(CheckKind(
    "capabilities", "which autograd features the Function supports, and which work",
    "capabilities", once_per_case=True, opt_in_key="capabilities"))
register(CheckKind(
    "mutation", "forward and backward leave inputs and grad_outputs unchanged (or declare "
    "ctx.mark_dirty)", "mutation"))
register(CheckKind(
    "frozen", "inputs frozen (requires_grad=False) in turn leave the others' gradients "
    "unchanged", "frozen", default_when="needs_input_grad"))
register(CheckKind(
    "vjp", "backward is linear in grad_output, as a vector-Jacobian product is (random "
    "signed grad_outputs; gradcheck runs it too, once its Jacobians agree)", "linearity"))
register(CheckKind(
    "jvp", "forward-mode derivatives (a Function's jvp) against finite differences", "jvp",
    default_when="jvp", finite_differences=True))
# torch.library.opcheck's tests, one result each, for custom ops (engine/checks/opcheck.py).
OPCHECK_TESTS = ("schema", "autograd_registration", "faketensor", "aot_dispatch_dynamic")
for _test, _summary in zip(OPCHECK_TESTS, (
        "opcheck: the op's schema matches what its kernel does (mutation, aliasing)",
        "opcheck: the op's autograd formula is registered where autograd finds it",
        "opcheck: the op's fake kernel (register_fake) gives outputs like the real ones",
        "opcheck: the op gives the same outputs and gradients under torch.compile")):
    register(CheckKind(f"opcheck:{_test}", _summary, "opcheck", default=True,
                       only_for="custom_op", entry=f"run_{_test}"))
register(CheckKind(
    "opcheck", "all of torch.library.opcheck's tests of a custom op (the opcheck:* checks)",
    "opcheck", group=tuple(f"opcheck:{t}" for t in OPCHECK_TESTS)))
register(CheckKind(
    "compile", "outputs and gradients under torch.compile (aot_eager) against eager, per "
    "input; a graph break with fullgraph=True is reported, not failed", "compiled"))
register(CheckKind(
    "compile:inductor", "as `compile`, with the inductor backend (generated kernels)",
    "compiled", entry="run_inductor"))
for _dtype in ("bfloat16", "float16"):
    register(CheckKind(
        _dtype, f"{_dtype} gradients against float64 ones on the same rounded values (no "
        f"finite differences); on by default for a spec with {_dtype} inputs",
        "reduced_precision", entry=f"run_{_dtype}", default_when=f"{_dtype}_inputs",
        opt_in_key=_dtype))
register(CheckKind(
    "batched_grad", "backward under vmap (batched grad_outputs, torch.func.jacrev) against "
    "one backward at a time, per input", "batched", default_when="vmap"))
