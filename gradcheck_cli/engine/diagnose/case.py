"""What a diagnosis rule looks at: one input's evidence (`Case`) or a whole check (`Review`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch

from gradcheck_cli.engine.jacobian import unravel
from gradcheck_cli.engine.outcome import Tolerances
from gradcheck_cli.engine.stats import InputStats
from gradcheck_cli.results import InputError, format_index

# move(position, flat_index, step) -> the flat outputs with that input element moved by step
Mover = Callable[[int, int, float], torch.Tensor]
# remeasure(steps) -> for each finite-difference step, {input position: max abs error}
Remeasure = Callable[[Sequence[float]], list[dict[int, float]]]
# pull(scale) -> what backward returns for grad_output = scale × v, one fixed random v: each
# input's gradient by position, flat (None when backward fails): how it treats grad_output
Pull = Callable[[float], dict[int, torch.Tensor] | None]


@dataclass(frozen=True)
class Block:
    """One input's Jacobian pair and what is needed to describe it."""

    stats: InputStats
    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Context:
    """What is known of the check as a whole: its tolerances, order and names."""

    tolerances: Tolerances
    order: str = "first"  # "first" | "second" (the function checked runs backward)
    output_name: Callable[[int], str] = field(default=lambda i: f"output {i}")
    first_order_ok: bool | None = None  # second order: the first-order verdict, if known


@dataclass
class Case:
    """One failing input's evidence: its block among all blocks of the comparison.

    In exact mode the kept Jacobian blocks (`a`, `n`, None when too large to keep); in
    probe mode the directional tests and localized entries on `stats`, and what rules
    measured after the failed probe (`stats.evidence`). `move` perturbs one element of an
    input (exact mode), for rules that must look between the grid points; `pull` runs
    backward on a grad_output of the rule's scale (first order, both modes).
    """

    block: Block
    blocks: list[Block]
    context: Context
    move: Mover | None = None
    pull: Pull | None = None
    memo: dict[str, Any] = field(default_factory=dict)  # results rules share

    @property
    def stats(self) -> InputStats:
        return self.block.stats

    @property
    def name(self) -> str:
        return self.block.name

    @property
    def tolerances(self) -> Tolerances:
        return self.context.tolerances

    @property
    def mismatched(self) -> bool:
        """Wrong entries, all finite: what the patterns explain."""
        return self.stats.wrong != 0 and self.stats.first_nonfinite is None

    @cached_property
    def blocks_kept(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The analytical and numerical blocks in a common dtype, when kept."""
        a, n = self.stats.analytical, self.stats.numerical
        if a is None or n is None:
            return None
        a = a.to(torch.promote_types(a.dtype, n.dtype))
        return a, n.to(a.dtype)

    @property
    def a(self) -> torch.Tensor:
        assert self.blocks_kept is not None
        return self.blocks_kept[0]

    @property
    def n(self) -> torch.Tensor:
        assert self.blocks_kept is not None
        return self.blocks_kept[1]

    @cached_property
    def wrong_columns(self) -> torch.Tensor:
        """Per input element: whether any entry of its Jacobian column is off (exact)."""
        tol = self.tolerances
        return (~torch.isclose(self.a, self.n, rtol=tol.rtol, atol=tol.atol)).any(dim=0)

    @cached_property
    def columns(self) -> list[int]:
        """The input elements with a wrong Jacobian entry (exact mode), in order."""
        columns: list[int] = torch.nonzero(self.wrong_columns).flatten().tolist()
        return columns

    def close(self, a: torch.Tensor, b: torch.Tensor) -> bool:
        """Equal shapes and every entry within the check's atol/rtol."""
        tol = self.tolerances
        return a.shape == b.shape and bool(
            torch.isclose(a, b, rtol=tol.rtol, atol=tol.atol).all())

    def element(self, flat: int) -> str:
        """`x[0, 1]`: element `flat` of this input, by name."""
        return f"{self.name}{element_index(self.block.shape, flat)}"


@dataclass
class Review:
    """A second look at a whole failed check after each input got its diagnosis.

    `remeasure` reruns the exact comparison at other finite-difference steps.
    """

    entries: list[InputError]
    context: Context
    remeasure: Remeasure


def element_index(shape: Sequence[int], flat: int) -> str:
    return format_index(unravel(flat, shape))


SEEN_BY_PROBES = " (seen along random directions)"
