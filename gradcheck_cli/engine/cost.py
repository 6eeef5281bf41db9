"""What an exact check would cost in time and memory, and which mode (exact or probe) to run.

Pure arithmetic on sizes and measured timings: no torch, no I/O, so the planning can be
tested on its own and called before anything large is allocated.

Exact mode evaluates forward twice per input element (four times for a complex one:
torch's central difference along the real and the imaginary axis) and backward twice per
output element (torch computes the analytical Jacobian twice, to catch nondeterminism).
Its memory is either the dense blocks (rows: output elements, columns: input elements)
or, when those do not fit, the nonzero entries only (see `plan_exact`).
"""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("auto", "exact", "probe", "reference")

# Auto mode runs exact when its estimated time is at most this; probe mode costs a few
# dozen evaluations whatever the size, exact two per input element.
DEFAULT_EXACT_SECONDS = 10.0

# Auto mode runs exact, without timing anything, when the Jacobians have at most this many
# entries: a few thousand evaluations at most, well under a second for any op that is not
# pathological, and a decision that no noisy timing can change between identical runs.
TINY_JACOBIAN_ENTRIES = 100_000

# A measured call is repeated (the fastest kept: warm-up, a busy core and the garbage
# collector only ever add time) up to this many times in all, while the estimate says
# probe and one call costs less than this fraction of the time limit.
TIMING_REPEATS = 3
RETIME_FRACTION = 1 / 20

# Per evaluation, beyond the measured call: the difference quotient, the nonzero scan and
# the bookkeeping of the sparse layout cost about this many seconds per element of the
# vector produced (measured on a 2-core CPU: 1-2e-8).
PER_ELEMENT_SECONDS = 1e-8
PER_CALL_SECONDS = 20e-6

# Bytes per Jacobian element that the dense comparison allocates for one input block
# besides the blocks themselves: masks, |a - n|, max(|a|, |n|), the relative error.
DENSE_SCRATCH_BYTES = 40

# Each nonzero entry is held as an int64 key (row-major position) and a value, for the
# analytical and the numerical Jacobian; comparing them on the union of their nonzeros
# needs about as much again (sorted keys, inverse map, the two aligned value vectors, the
# error vectors).
SPARSE_KEY_BYTES = 8
SPARSE_MERGE_BYTES = 48

# A process pays about AUTOGRAD_IMPORT_SECONDS once for torch.autograd.grad with tensor
# grad_outputs (it imports sympy), or SCALAR_VJP_EXTRA_SECONDS per call for the scalar
# form that avoids it (see `vjp`); measured on a 2-core CPU: 0.4-0.5 s and 40-75 us.
AUTOGRAD_IMPORT_SECONDS = 0.5
SCALAR_VJP_EXTRA_SECONDS = 60e-6


@dataclass(frozen=True)
class Sizes:
    """The shape of a check: differentiable inputs' sizes, all outputs' elements, dtypes."""

    input_numels: tuple[int, ...]
    output_numel: int
    itemsize: int  # bytes of one Jacobian element (the widest of inputs and outputs)
    complex_inputs: tuple[bool, ...] = ()
    parts: int = 1  # complex outputs are checked twice: real part, then imaginary part

    @property
    def columns(self) -> int:
        return sum(self.input_numels)

    @property
    def jacobian_entries(self) -> int:
        """Entries of all the Jacobians exact mode compares (both parts of a complex one)."""
        return self.parts * self.output_numel * self.perturbations

    @property
    def tiny(self) -> bool:
        """Small enough that auto mode always runs exact (see TINY_JACOBIAN_ENTRIES)."""
        return self.jacobian_entries <= TINY_JACOBIAN_ENTRIES

    @property
    def perturbations(self) -> int:
        """Central differences exact mode takes: one per real input coordinate."""
        complex_flags = self.complex_inputs or (False,) * len(self.input_numels)
        return sum(n * (2 if c else 1) for n, c in zip(self.input_numels, complex_flags))


@dataclass(frozen=True)
class ExactPlan:
    """How exact mode holds its Jacobians: dense blocks when they fit, else nonzeros only."""

    layout: str  # "dense" | "sparse"
    budget_bytes: int
    dense_bytes: int  # peak of the dense layout
    block_bytes: int  # largest dense block the plan allocates (a single row or column if sparse)
    sparse_bytes: int | None  # estimated peak of the sparse layout (None: nonzeros unknown)
    fits: bool  # False when even the sparse layout is expected to exceed the budget

    @property
    def needed_bytes(self) -> int:
        if self.layout == "dense":
            return self.dense_bytes
        return self.sparse_bytes if self.sparse_bytes is not None else 0


@dataclass(frozen=True)
class Timing:
    """One measured forward and one backward (seconds)."""

    forward: float
    backward: float


@dataclass(frozen=True)
class Decision:
    """The mode a check runs in, why, and the exact plan it was weighed against."""

    mode: str  # "exact" | "probe"
    reason: str
    plan: ExactPlan
    exact_seconds: float | None


def dense_bytes(sizes: Sizes) -> int:
    """Peak bytes of the dense comparison: two analytical runs for every input, the
    numerical block and scratch for the input being compared."""
    widest = max(sizes.input_numels, default=0)
    return sizes.output_numel * ((2 * sizes.columns + widest) * sizes.itemsize
                                 + DENSE_SCRATCH_BYTES * widest)


def sparse_entry_bytes(itemsize: int) -> int:
    """Bytes per nonzero Jacobian entry in the sparse layout, merge included."""
    return 2 * (SPARSE_KEY_BYTES + itemsize) + SPARSE_MERGE_BYTES


def sparse_bytes(nonzeros: int, itemsize: int) -> int:
    """Peak bytes of the sparse comparison with `nonzeros` analytical nonzeros (the numerical
    Jacobian of a right backward has the same pattern)."""
    return nonzeros * sparse_entry_bytes(itemsize)


def plan_exact(sizes: Sizes, budget_bytes: int, nonzeros: int | None = None) -> ExactPlan:
    """Dense when the dense peak fits the budget; otherwise sparse, which never allocates
    more than one Jacobian row or column densely. `nonzeros` (estimated analytical
    nonzeros) says whether the sparse layout fits; unknown counts as fitting, and the
    sparse comparison then stops itself when it outgrows the budget."""
    dense = dense_bytes(sizes)
    estimated = None if nonzeros is None else sparse_bytes(nonzeros, sizes.itemsize)
    if dense <= budget_bytes:
        widest = max(sizes.input_numels, default=0)
        return ExactPlan("dense", budget_bytes, dense,
                         sizes.output_numel * widest * sizes.itemsize, estimated, True)
    line = max(sizes.columns, sizes.output_numel) * sizes.itemsize
    return ExactPlan("sparse", budget_bytes, dense, line, estimated,
                     estimated is None or estimated <= budget_bytes)


def exact_seconds(sizes: Sizes, timing: Timing) -> float:
    """Estimated time of the exact comparison: two forwards per perturbed coordinate, two
    backwards per output element, plus the per-element bookkeeping of each."""
    forward = timing.forward + PER_CALL_SECONDS + PER_ELEMENT_SECONDS * sizes.output_numel
    backward = timing.backward + PER_CALL_SECONDS + PER_ELEMENT_SECONDS * sizes.columns
    return sizes.parts * (2 * sizes.perturbations * forward + 2 * sizes.output_numel * backward)


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if size < 1024 or unit == "PB":
            return f"{size:.3g} {unit}"
        size /= 1024
    return f"{size:.3g} PB"  # pragma: no cover - the loop returns


def human_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    if seconds < 172800:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} days"


def worth_retiming(sizes: Sizes, timing: Timing, call_seconds: float, limit: float,
                   max_seconds: float) -> bool:
    """Whether to time a call once more: the estimate says over `limit`, yet one call is
    cheap enough that its noise (not its cost) may be what says so."""
    return (exact_seconds(sizes, timing) > limit
            and call_seconds < RETIME_FRACTION * max_seconds)


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")


def choose(mode: str, sizes: Sizes, budget_bytes: int, timing: Timing | None,
           nonzeros: int | None = None,
           max_seconds: float = DEFAULT_EXACT_SECONDS) -> Decision:
    """The mode to run. Forced modes are kept (the plan still says whether exact fits);
    auto runs exact when its memory fits the budget and the check is tiny or its estimated
    time is at most `max_seconds`, else probe, with the reason in words."""
    check_mode(mode)
    plan = plan_exact(sizes, budget_bytes, nonzeros)
    seconds = exact_seconds(sizes, timing) if timing is not None else None
    if mode != "auto":
        return Decision(mode, f"{mode} mode was asked for", plan, seconds)
    if not plan.fits:
        return Decision(
            "probe",
            f"exact Jacobians would need about {human_bytes(plan.needed_bytes)} "
            f"(nonzeros only; {human_bytes(plan.dense_bytes)} dense), over the "
            f"{human_bytes(budget_bytes)} budget",
            plan, seconds)
    if seconds is not None and seconds > max_seconds and not sizes.tiny:
        return Decision(
            "probe",
            f"exact mode would take about {human_seconds(seconds)} "
            f"({2 * sizes.perturbations * sizes.parts:,} forward and "
            f"{2 * sizes.output_numel * sizes.parts:,} backward evaluations), over the "
            f"{human_seconds(max_seconds)} limit",
            plan, seconds)
    return Decision("exact", "", plan, seconds)


def vector_backward_calls(input_numels: list[int]) -> int:
    """Backward calls with a whole grad_output vector that an exact second-order check
    makes: two evaluations per element of its inputs and of its grad_outputs (as many as
    its outputs, guessed as large as the largest input). First order needs none."""
    return 2 * (sum(input_numels) + max(input_numels, default=0))


def worth_importing_autograd(calls_per_process: float) -> bool:
    """Whether a process making this many vector backward calls should pay the import."""
    return calls_per_process * SCALAR_VJP_EXTRA_SECONDS > AUTOGRAD_IMPORT_SECONDS


def memory_budget(max_elements: int, max_memory: int | None) -> int:
    """Bytes of Jacobian a check may hold: `max_memory` when given, else `max_elements`
    elements of 16 bytes (the widest, complex128), as the callers have always meant it."""
    if max_memory is not None:
        return max(1, max_memory)
    return max(1, max_elements) * 16
