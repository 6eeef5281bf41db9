"""Results as plain data: statuses, per-input errors, check results and the run summary."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from gradcheck_cli.errors import ExitCode

# The `check` (and `device`) of a result made before any check ran: a spec or module that
# does not load, a Function the module lacks. Such a result stands for all its checks.
NO_CHECK = "-"


def format_index(index: Sequence[int]) -> str:
    """`[0, 1]`: an element's index as messages and reports write it."""
    return "[" + ", ".join(str(i) for i in index) + "]"


class Status(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value

    @property
    def is_problem(self) -> bool:
        """Failed or error: what the report details and CI fails on."""
        return self in (Status.FAILED, Status.ERROR)


@dataclass(frozen=True)
class Advice:
    """Something the user can change to get a (better) verdict, as data.

    The engine never names a flag: each front end words advice as its own command-line
    flag, ini option or keyword argument (see `gradcheck_cli.cli.advice`).
    """

    kind: str  # dodge_kinks | avoid_zero | probe_mode | exact_mode | more_memory | one_job
    needed: int | None = None  # bytes, for more_memory


@dataclass
class Diagnosis:
    """The most likely cause of a wrong gradient, with the evidence in words."""

    kind: str
    detail: str


@dataclass
class Worst:
    """The element where analytical and numerical derivatives differ most."""

    output: int
    output_index: list[int]
    input_index: list[int]
    analytical: float | list[float]  # [real, imag] for complex values
    numerical: float | list[float]


@dataclass
class InputError:
    """How far the analytical gradient of one input is from the numerical one."""

    index: int
    name: str
    max_abs_error: float | None
    max_rel_error: float | None
    passed: bool
    numel: int = 0
    wrong_elements: int = 0
    worst: Worst | None = None
    note: str | None = None
    diagnosis: Diagnosis | None = None


@dataclass
class CheckResult:
    """One Function x case x device x check."""

    module: str | None
    spec: str | None
    function: str | None
    case: str
    device: str
    check: str
    status: Status
    inputs: list[InputError] = field(default_factory=list)
    message: str = ""
    seed: int | None = None
    duration: float = 0.0
    line: int | None = None
    location: str | None = None
    mode: str = "exact"  # how the Jacobians were compared: "exact", "probe", "reference"
    mode_reason: str = ""  # why: auto's reason for probe, reference's evidence, a fallback's
    cached: bool = False
    reproduce: str | None = None
    # How the inputs were made and the tolerances used: what --save-repro needs.
    recipe: dict[str, Any] | None = None
    # For the "capabilities" check: name -> {"status": ok|fail|n/a, "reason": ...}
    capabilities: dict[str, dict[str, str]] | None = None
    # For --plot / --show-jacobian: input name -> {"analytical": rows, "numerical": rows,
    # "shape": [outputs, input elements], "downsampled": bool}, failing inputs only.
    jacobians: dict[str, dict[str, Any]] | None = None
    advice: list[Advice] = field(default_factory=list)
    # A bare .py's inputs, as inferred from forward (`x (4, 3), weight (5, 3)`); None when
    # a spec gave them.
    inputs_inferred: str | None = None

    @property
    def before_checks(self) -> bool:
        """A result for a problem found before any check ran (it stands for all of them)."""
        return self.check == NO_CHECK

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        data = dict(data)
        data["status"] = Status(data["status"])
        inputs = []
        for entry in data.get("inputs") or []:
            entry = dict(entry)
            if entry.get("worst"):
                entry["worst"] = Worst(**entry["worst"])
            if entry.get("diagnosis"):
                entry["diagnosis"] = Diagnosis(**entry["diagnosis"])
            inputs.append(InputError(**entry))
        data["inputs"] = inputs
        data["advice"] = [Advice(**a) for a in data.get("advice") or []]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class ShardInfo:
    """Which part of a split run a report holds (`--shard 2/4`), and what it was split from.

    `plan` fingerprints the whole run's checks and the options that change verdicts;
    `split` fingerprints which shard each check went to: shards to merge share both.
    """

    index: int  # 1-based
    count: int
    checks: int  # checks in this shard
    planned: int  # checks in the whole run (a .py without spec counted by its checks found)
    plan: str
    split: str
    # The plan position of each result, in the report's order: merged shards interleave
    # back into the order of the whole run.
    order: list[int] = field(default_factory=list)
    # .py files without spec in other shards: their checks are known only once imported.
    undiscovered: int = 0

    def line(self) -> str:
        """`shard 2/4: 37 of 146 checks`."""
        text = f"shard {self.index}/{self.count}: {self.checks} of {self.planned} checks"
        if self.undiscovered:
            files = "file" if self.undiscovered == 1 else "files"
            text += f" (and the checks of {self.undiscovered} .py {files} in other shards)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardInfo:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


class Results(list[CheckResult]):
    """Results in report order, and the shard of a split run they are (None: all of it)."""

    def __init__(self, results: Sequence[CheckResult] = (),
                 shard: ShardInfo | None = None) -> None:
        super().__init__(results)
        self.shard = shard


@dataclass
class Summary:
    """Counts of each status over a run, and the exit code they imply."""

    passed: int = 0
    failed: int = 0
    error: int = 0
    skipped: int = 0
    duration: float = 0.0
    interrupted: bool = False
    signal: int | None = None  # the SIGTERM or SIGHUP that ended the run (exit 128 + it)
    # A Function or case chosen that matches nothing planned (a typo): a usage error.
    selection_error: str | None = None
    shard: ShardInfo | None = None  # the part of a split run (`--shard`) these results are
    merged: int = 0  # reports combined by `merge` (their durations summed), 0: one run

    @classmethod
    def of(cls, results: list[CheckResult], duration: float = 0.0) -> Summary:
        """The counts of `results`; their shard when they are one (`Results.shard`)."""
        summary = cls(duration=duration, shard=getattr(results, "shard", None))
        for result in results:
            name = result.status.value
            setattr(summary, name, getattr(summary, name) + 1)
        return summary

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.error + self.skipped

    @property
    def exit_code(self) -> ExitCode:
        """The process exit status, as pytest's: the one place that decides it.

        2 when interrupted (128 + the signal for SIGTERM or SIGHUP), 4 when a Function or
        case chosen matches nothing, 1 when any check failed or errored, 5 when nothing was
        collected (a shard left empty by a run that has checks is not that), else 0
        (skipped checks do not fail a run).
        """
        if self.interrupted:
            return ExitCode.for_signal(self.signal)
        if self.selection_error is not None:
            return ExitCode.USAGE_ERROR
        if self.failed or self.error:
            return ExitCode.FAILED
        if self.total == 0 and not (self.shard is not None and self.shard.planned):
            return ExitCode.NO_CHECKS
        return ExitCode.OK

    def counts(self) -> dict[str, int]:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "error": self.error,
            "skipped": self.skipped,
        }

    def line(self) -> str:
        """`7 passed, 2 failed, 1 skipped in 1.93s`, as pytest prints it; a shard's says
        which (`shard 2/4: 37 of 146 checks: 37 passed in 9.10s`)."""
        parts = [f"{n} {name}" for name, n in self.counts().items() if n]
        if not parts:
            parts = ["no checks ran"]
        text = ", ".join(parts) + f" in {self.duration:.2f}s"
        if self.shard is not None:
            text = f"{self.shard.line()}: {text}"
        if self.merged > 1:
            text += f" (summed over {self.merged} reports)"
        if self.interrupted:
            text += " (interrupted)" if self.signal is None else (
                f" (interrupted by {_signal_name(self.signal)})")
        return text


def _signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
