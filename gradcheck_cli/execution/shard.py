"""Shards: a run's planned checks split into N disjoint parts balanced by expected duration.

What goes whole to one shard is a *piece*: the checks of one Function x case x device (one
job, as the workers run it), a problem found while planning, or a `.py` without spec (its
checks are known only once it is imported). Each piece is weighed by the durations earlier
runs recorded in the cache folder, else by the cost model's estimate from the spec's input
sizes; the heaviest go first, each to the least loaded shard, ties broken by a hash of the
piece's id. Nothing depends on the machine nor on the cache's passes, only on the specs,
the options and those recorded durations (which no shard writes), so the same command
with the same durations gives the same shards anywhere; `ShardInfo.split` fingerprints
the assignment, and `merge` refuses shards that were split differently.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradcheck_cli.engine import cost
from gradcheck_cli.engine.checks import CHECKS
from gradcheck_cli.execution.tasks import Task
from gradcheck_cli.results import CheckResult, ShardInfo
from gradcheck_cli.settings import RunOptions
from gradcheck_cli.specs.collect import display
from gradcheck_cli.specs.specfile import TensorInput
from gradcheck_cli.version import __version__

DURATIONS_FILE = "durations.json"
DURATIONS_FORMAT = 1

# The estimate when no duration is recorded, in seconds (measured on a 2-core CPU): a
# check's fixed cost (inputs, isolation, the verdict), then the cost model's exact-mode time
# with each forward and backward call of a small op taken as CALL_SECONDS.
CHECK_SECONDS = 0.02
CALL_SECONDS = 50e-6
SECOND_ORDER = 3.0  # gradgradcheck differentiates backward itself: about 3x first order
MODULE_SECONDS = 1.0  # a .py without spec whose checks no earlier run recorded
PROBLEM_SECONDS = 0.001  # a problem found while planning: nothing runs

# The options that change what a check says: shards to merge must agree on them.
VERDICT_OPTIONS = ("devices", "checks", "seed", "atol", "rtol", "eps", "shape", "functions",
                   "cases", "max_memory", "mode", "timeout", "float32", "dodge_kinks",
                   "capabilities")


def check_id(where: str, function: str | None, case: str, device: str, check: str) -> str:
    """`specs/op.yaml::MulAdd[wide-cpu-gradcheck]`: one check, named as the reports name it."""
    params = [device, check] if case == "default" else [case, device, check]
    return f"{where}::{function}[{'-'.join(params)}]"


def _where(task: Task) -> str:
    return display(task.spec) if task.spec is not None else display(task.module)


def task_id(task: Task) -> str:
    return check_id(_where(task), task.function, task.case.name, task.device, task.check)


def result_id(result: CheckResult) -> str | None:
    """The id of the check a result is about; None for a problem found before checks ran."""
    if result.before_checks or result.function is None:
        return None
    where = result.spec or result.module or "?"
    return check_id(where, result.function, result.case, result.device, result.check)


@dataclass
class Piece:
    """What goes whole to one shard: one job's tasks, a problem found while planning, or a
    `.py` without spec whose Functions are found when it runs."""

    id: str
    order: int  # where its first result stands in the whole run's report
    tasks: list[Task] = field(default_factory=list)
    result: CheckResult | None = None
    module: Path | None = None

    @property
    def checks(self) -> int:
        """The checks it stands for (a `.py` without spec: 0 until imported)."""
        return len(self.tasks) if self.tasks else int(self.result is not None)


def job_piece(tasks: list[Task]) -> Piece:
    first = tasks[0]
    case = first.case.name
    params = first.device if case == "default" else f"{case}-{first.device}"
    return Piece(f"{_where(first)}::{first.function}[{params}]", first.order, tasks)


def problem_piece(result: CheckResult, order: int) -> Piece:
    where = result.spec or result.module or "?"
    return Piece(f"{where}::{result.function or '-'} (problem at {order})", order,
                 result=result)


def module_piece(path: Path, order: int) -> Piece:
    return Piece(display(path), order, module=path)


class Durations:
    """Seconds each check took when it last ran, by check id, in the cache folder.

    Written by whole runs and by `merge` (from the shards' reports), never by a shard:
    the shards of one split, run one after another, must all read the same durations.
    Kept beside the cached passes but not signed: a duration only weighs a check for
    sharding and never changes a verdict.
    """

    def __init__(self, folder: Path | None) -> None:
        self.path = folder / DURATIONS_FILE if folder is not None else None
        self.seconds: dict[str, float] = {}
        self._changed = False
        if self.path is not None:
            self.seconds = _read(self.path)

    def get(self, key: str) -> float | None:
        return self.seconds.get(key)

    def under(self, where: str) -> float:
        """Every recorded check of a file together (a `.py` without spec)."""
        prefix = where + "::"
        return sum(v for k, v in self.seconds.items() if k.startswith(prefix))

    def record(self, results: Sequence[CheckResult]) -> None:
        """Note how long each check that ran took (cached answers took no time to give)."""
        for result in results:
            key = result_id(result)
            if key is None or result.cached or not result.duration > 0:
                continue
            seconds = round(float(result.duration), 4)
            if self.seconds.get(key) != seconds:
                self.seconds[key] = seconds
                self._changed = True

    def save(self) -> None:
        """Write them back, whole or not at all; a folder that cannot be written is passed
        over (durations are an optimisation, as the cache is)."""
        if self.path is None or not self._changed:
            return
        text = json.dumps({"format": DURATIONS_FORMAT, "tool": __version__,
                           "checks": dict(sorted(self.seconds.items()))}, indent=0)
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            ignore = folder / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# written by gradcheck-cli\n*\n", encoding="utf-8")
            handle, temp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    out.write(text)
                os.replace(temp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        except OSError:
            return
        self._changed = False


def record_durations(folder: Path, results: Sequence[CheckResult]) -> None:
    """Note in `folder` how long the checks of `results` that ran took."""
    if any(r.duration > 0 and not r.cached for r in results):
        durations = Durations(folder)
        durations.record(results)
        durations.save()


def _read(path: Path) -> dict[str, float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    checks = data.get("checks") if isinstance(data, dict) else None
    if not isinstance(checks, dict) or data.get("format") != DURATIONS_FORMAT:
        return {}
    return {k: float(v) for k, v in checks.items() if isinstance(k, str)
            and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v) and v >= 0}


def estimate(task: Task, options: RunOptions) -> float:
    """Seconds a check should take, from its spec alone: the cost model's exact-mode time
    for inputs of the spec's sizes (inferred ones: two of `--shape`), the output guessed
    as large as the largest input."""
    inputs = task.case.inputs
    if inputs is None:
        numels = [math.prod(options.shape)] * 2
    else:
        numels = [math.prod(i.shape) for i in inputs if isinstance(i, TensorInput)] or [1]
    sizes = cost.Sizes(tuple(numels), max(numels), 8)
    seconds = cost.exact_seconds(sizes, cost.Timing(CALL_SECONDS, CALL_SECONDS))
    if CHECKS[task.check].double_backward:
        seconds *= SECOND_ORDER
    return CHECK_SECONDS + seconds


def weigh(piece: Piece, durations: Durations, options: RunOptions) -> float:
    """A piece's expected seconds: recorded durations, else estimates. Never whether a
    check is cached: the shards run one after another on one machine would each see the
    passes the ones before stored, and split differently."""
    if piece.result is not None:
        return PROBLEM_SECONDS
    if piece.module is not None:
        return durations.under(piece.id) or MODULE_SECONDS
    total = 0.0
    for task in piece.tasks:
        recorded = durations.get(task_id(task))
        total += recorded if recorded is not None else estimate(task, options)
    return total


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def assign(weights: Sequence[tuple[str, float]], count: int) -> list[int]:
    """The 0-based shard of each (id, seconds): the heaviest first, each to the shard with
    the least so far (the lowest index on a tie); equal weights in the order of a hash of
    their ids, so that neighbours in a folder spread over the shards."""
    shard_of = [0] * len(weights)
    loads = [0.0] * count
    ranked = sorted(range(len(weights)),
                    key=lambda i: (-weights[i][1], _hash(weights[i][0]), i))
    for i in ranked:
        target = min(range(count), key=lambda s: (loads[s], s))
        shard_of[i] = target
        loads[target] += weights[i][1]
    return shard_of


def _digest(material: Any) -> str:
    text = json.dumps(material, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def plan_fingerprint(pieces: Sequence[Piece], options: RunOptions) -> str:
    """The whole run: every piece and its checks, the options that change verdicts, the tool."""
    return _digest({"tool": __version__, "pieces": [[p.id, p.checks] for p in pieces],
                    "options": {k: getattr(options, k) for k in VERDICT_OPTIONS}})


def split(pieces: Sequence[Piece], options: RunOptions,
          durations: Durations) -> tuple[list[Piece], ShardInfo]:
    """The pieces of shard `options.shard` (I, N), and what the report says of the split."""
    assert options.shard is not None
    index, count = options.shard
    weights = [(p.id, weigh(p, durations, options)) for p in pieces]
    shard_of = assign(weights, count)
    plan = plan_fingerprint(pieces, options)
    mine = [p for p, s in zip(pieces, shard_of) if s == index - 1]
    info = ShardInfo(
        index=index, count=count, checks=sum(p.checks for p in mine),
        planned=sum(p.checks for p in pieces), plan=plan,
        split=_digest({"plan": plan, "count": count, "shards": shard_of}),
        undiscovered=sum(1 for p, s in zip(pieces, shard_of)
                         if p.module is not None and s != index - 1))
    return mine, info
