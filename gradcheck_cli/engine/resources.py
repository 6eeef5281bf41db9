"""How much memory a check may use, and whether its inputs fit before anything is allocated."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from gradcheck_cli.engine.cost import human_bytes
from gradcheck_cli.results import Advice
from gradcheck_cli.specs.specfile import InputSpec, TensorInput

_ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "complex128": 16,
             "complex64": 8, "int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint8": 1,
             "bool": 1}
# A check holds the inputs, a perturbed copy of each, the outputs of two evaluations and
# the gradients of a backward: about this many times the inputs' bytes (outputs of the
# size of the inputs; a bigger output makes the Jacobian bigger, which the Jacobian
# budget bounds separately).
WORKING_SET_FACTOR = 6


def available_memory() -> int | None:
    """Bytes the system can still hand out (MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def input_bytes(specs: Sequence[InputSpec]) -> int:
    return sum(math.prod(s.shape) * _ITEMSIZE.get(s.dtype, 8)
               for s in specs if isinstance(s, TensorInput))


def check_fits(specs: Sequence[InputSpec], workers: int) -> tuple[str, list[Advice]] | None:
    """Why this check cannot fit in memory (with how to shrink it, and advice for the
    front end to word), or None when it fits."""
    free = available_memory()
    if free is None:
        return None
    share = free // max(1, workers)
    inputs = input_bytes(specs)
    need = inputs * WORKING_SET_FACTOR
    if need <= share:
        return None
    advice = [Advice("one_job")] if workers > 1 and need <= free else []
    return (f"this check needs about {human_bytes(need)} (inputs of {human_bytes(inputs)}, "
            f"about {WORKING_SET_FACTOR}x that while checking) but only {human_bytes(share)} is "
            f"free for each of {workers} worker(s): shrink the input shapes in the spec",
            advice)


def jacobian_budget(requested: int, workers: int) -> int:
    """Bytes of Jacobian blocks one check may hold: as asked, but at most a quarter of its
    share of free memory, so that parallel checks cannot together exhaust it."""
    free = available_memory()
    if free is None:
        return requested
    return max(1 << 20, min(requested, free // (4 * max(1, workers))))
