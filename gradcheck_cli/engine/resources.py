"""How much memory a check may use, and whether its inputs fit before anything is allocated."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gradcheck_cli.engine.cost import human_bytes
from gradcheck_cli.engine.describe import first_line, type_name
from gradcheck_cli.errors import GradcheckCliError
from gradcheck_cli.results import Advice
from gradcheck_cli.specs.specfile import InputSpec, TensorInput

try:
    import resource
except ImportError:  # not on Windows: no rlimits there
    resource = None  # type: ignore[assignment]

_ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "complex128": 16,
             "complex64": 8, "int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint8": 1,
             "bool": 1}
# A check holds the inputs, a perturbed copy of each, the outputs of two evaluations and
# the gradients of a backward: about this many times the inputs' bytes (outputs of the
# size of the inputs; a bigger output makes the Jacobian bigger, which the Jacobian
# budget bounds separately).
WORKING_SET_FACTOR = 6
# Where /proc and /sys are read from: tests point it at a fake tree.
SYSTEM_ROOT = Path("/")
# cgroup v1 writes "no limit" as the largest page-aligned int64; anything this big is none.
_NO_LIMIT = 1 << 60

Limits = Callable[[int], tuple[int, int]]


@dataclass(frozen=True)
class Room:
    """Bytes that may still be allocated, and what bounds them, in words."""

    bytes: int
    bound: str
    per_process: bool  # an rlimit: each worker has all of it, not a share


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except (OSError, ValueError):
        return None


def _fields(text: str | None, unit: int = 1) -> dict[str, int]:
    """`key value` or `key: value kB` lines as {key: bytes}."""
    found: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, rest = line.partition(":") if ":" in line else line.partition(" ")
        parts = rest.split()
        if parts and parts[0].isdigit():
            found[key.strip()] = int(parts[0]) * unit
    return found


def _free(root: Path) -> Room | None:
    meminfo = _fields(_read(root / "proc/meminfo"), 1024)
    if "MemAvailable" in meminfo:
        return Room(meminfo["MemAvailable"], "free", per_process=False)
    if root != SYSTEM_ROOT or not hasattr(os, "sysconf"):
        return None
    try:
        return Room(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free",
                    per_process=False)
    except (ValueError, OSError):
        return None


def _rlimits(root: Path, limits: Limits | None) -> list[Room]:
    """Room under RLIMIT_AS and RLIMIT_DATA (ulimit -v / -d, prlimit): the limit less what
    the process already maps. Torch alone maps hundreds of MB, so the limit itself would
    promise far more than an allocation can get."""
    if limits is None:
        if resource is None:
            return []
        limits = resource.getrlimit
    status = _fields(_read(root / "proc/self/status"), 1024)
    found = []
    for which, used, words in (("RLIMIT_AS", "VmSize", "address-space limit (ulimit -v)"),
                               ("RLIMIT_DATA", "VmData", "data-size limit (ulimit -d)")):
        number = getattr(resource, which, None) if resource is not None else None
        if number is None:
            continue
        try:
            soft = limits(number)[0]
        except (OSError, ValueError):
            continue
        if 0 <= soft < _NO_LIMIT:
            found.append(Room(max(0, soft - status.get(used, 0)),
                              f"left under this process's {words}", per_process=True))
    return found


def _cgroup_dirs(root: Path) -> list[tuple[str, Path]]:
    """The memory cgroup folders of this process, innermost first, as (version, folder):
    its own and every ancestor's, since a parent's limit binds its children too."""
    found: list[tuple[str, Path]] = []
    for line in (_read(root / "proc/self/cgroup") or "").splitlines():
        _, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if controllers == "":
            mounts = [("v2", root / "sys/fs/cgroup"), ("v2", root / "sys/fs/cgroup/unified")]
        elif "memory" in controllers.split(","):
            mounts = [("v1", root / "sys/fs/cgroup/memory")]
        else:
            continue
        parts = [p for p in path.strip().split("/") if p and p != ".."]
        for version, mount in mounts:
            for depth in range(len(parts), -1, -1):
                folder = mount.joinpath(*parts[:depth])
                if folder.is_dir():
                    found.append((version, folder))
    return found


def _cgroup(root: Path) -> Room | None:
    """Room under the memory limit of this process's cgroup (a container's, a systemd
    slice's): the tightest of the limits along the way, less what is charged to each,
    page cache that can be dropped aside."""
    names = {"v2": ("memory.max", "memory.current", "inactive_file"),
             "v1": ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")}
    rooms = []
    for version, folder in _cgroup_dirs(root):
        limit_file, usage_file, cache_key = names[version]
        limit = (_read(folder / limit_file) or "").strip()
        if not limit.isdigit() or int(limit) >= _NO_LIMIT:
            continue  # "max" (v2) or the v1 sentinel: no limit at this level
        usage = (_read(folder / usage_file) or "").strip()
        if not usage.isdigit():
            continue
        cache = _fields(_read(folder / "memory.stat")).get(cache_key, 0)
        used = max(0, int(usage) - cache)
        rooms.append(Room(max(0, int(limit) - used),
                          "left under the memory limit of this process's cgroup (a "
                          "container's or service's limit)", per_process=False))
    return min(rooms, key=lambda r: r.bytes) if rooms else None


def memory_room(root: Path | None = None, limits: Limits | None = None) -> list[Room]:
    """Every bound found on what this process may still allocate: free memory, the
    process's rlimits and its cgroup's limit."""
    root = SYSTEM_ROOT if root is None else root
    rooms = [r for r in (_free(root), _cgroup(root)) if r is not None]
    return rooms + _rlimits(root, limits)


def available_memory(root: Path | None = None, limits: Limits | None = None) -> int | None:
    """Bytes this process can still allocate: the least of free memory (MemAvailable), the
    room under its rlimits and under its cgroup's limit; None where none is known."""
    rooms = memory_room(root, limits)
    return min(r.bytes for r in rooms) if rooms else None


def share(workers: int, root: Path | None = None, limits: Limits | None = None
          ) -> tuple[int, str] | None:
    """Bytes one of `workers` parallel checks may use, and what bounds it in words: free
    memory and a cgroup's limit are shared by the workers, an rlimit is each one's own."""
    workers = max(1, workers)
    rooms = [(r.bytes if r.per_process else r.bytes // workers, r)
             for r in memory_room(root, limits)]
    if not rooms:
        return None
    least, room = min(rooms, key=lambda pair: pair[0])
    if room.per_process:
        return least, room.bound
    return least, f"{room.bound} for each of {workers} worker(s)"


def input_bytes(specs: Sequence[InputSpec]) -> int:
    return sum(math.prod(s.shape) * _ITEMSIZE.get(s.dtype, 8)
               for s in specs if isinstance(s, TensorInput))


def check_fits(specs: Sequence[InputSpec], workers: int, root: Path | None = None,
               limits: Limits | None = None) -> tuple[str, list[Advice]] | None:
    """Why this check cannot fit in memory (with how to shrink it, and advice for the
    front end to word), or None when it fits."""
    room = share(workers, root, limits)
    if room is None:
        return None
    bytes_, bound = room
    inputs = input_bytes(specs)
    need = inputs * WORKING_SET_FACTOR
    if need <= bytes_:
        return None
    alone = share(1, root, limits)
    advice = ([Advice("one_job")] if workers > 1 and alone is not None and need <= alone[0]
              else [])
    return (f"this check needs about {human_bytes(need)} (inputs of {human_bytes(inputs)}, "
            f"about {WORKING_SET_FACTOR}x that while checking) but only {human_bytes(bytes_)} "
            f"is {bound}: shrink the input shapes in the spec", advice)


def jacobian_budget(requested: int, workers: int, root: Path | None = None,
                    limits: Limits | None = None) -> int:
    """Bytes of Jacobian blocks one check may hold: as asked, but at most a quarter of its
    share of memory, so that parallel checks cannot together exhaust it."""
    room = share(workers, root, limits)
    if room is None:
        return requested
    return max(1 << 20, min(requested, room[0] // 4))


def budget_bound(requested: int, workers: int, root: Path | None = None,
                 limits: Limits | None = None) -> str | None:
    """Why the Jacobian budget is less than `requested`, in words, when memory bounds it
    (a larger request would change nothing then); None when the request stands."""
    room = share(workers, root, limits)
    if room is None or jacobian_budget(requested, workers, root, limits) >= requested:
        return None
    return (f"the budget is a quarter of the {human_bytes(room[0])} {room[1]}, so asking "
            "for more would not help: shrink the input shapes in the spec"
            + ("" if room[1].startswith("free") else " or raise that limit"))


_OOM_WORDS = ("can't allocate memory", "out of memory", "cannot allocate memory")


def out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` says an allocation failed (MemoryError, torch's allocators)."""
    if isinstance(exc, MemoryError):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    text = first_line(exc).lower()
    return any(words in text for words in _OOM_WORDS)


class OutOfMemory(GradcheckCliError):
    """An allocation failed during a check: that check's error, with what bounds memory."""

    def __init__(self, message: str, advice: list[Advice], where: str | None = None) -> None:
        super().__init__(message)
        self.advice = advice
        self.where = where  # file:line in the user's code, when the allocation was there


def ran_out(exc: BaseException, phase: str, workers: int = 1, where: str | None = None
            ) -> OutOfMemory:
    """The error for an allocation that failed during `phase` ("forward", "backward"; ""
    for the checker's own work, where probe mode's smaller Jacobians may fit)."""
    room = share(workers)
    phrase = f" in {phase}" if phase else " while checking"
    fix = "shrink the input shapes in the spec"
    bound = ""
    if room is not None:
        bound = f": only {human_bytes(room[0])} was {room[1]}"
        if not room[1].startswith("free"):
            fix += " or raise that limit"
    said = first_line(exc)
    if "DefaultCPUAllocator" in said:  # past "[enforce fail at alloc_cpu.cpp:127] err == 0."
        said = said[said.index("DefaultCPUAllocator"):]
    said = f"{type_name(exc)}: {said}" if said else type_name(exc)
    advice = [] if phase else [Advice("probe_mode")]
    if workers > 1 and room is not None and "worker(s)" in room[1]:
        advice.append(Advice("one_job"))
    return OutOfMemory(f"ran out of memory{phrase}{bound}; {fix} ({said})", advice, where)
