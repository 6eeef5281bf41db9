"""What a worker tells the pool: typed messages, picklable, one class per kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Ready:
    """The worker has imported torch and waits for jobs."""


@dataclass(frozen=True)
class Importing:
    """The worker is importing the user's module: the time limit starts now."""


@dataclass(frozen=True)
class Started:
    """The worker started the job's task `index`: its time limit starts now."""

    index: int


@dataclass(frozen=True)
class Finished:
    """A result (as `CheckResult.to_dict()`) for task `index` (-1: the job's discovery), and
    the user's files it depends on (for the cache; empty unless it passed)."""

    index: int
    result: dict[str, Any]
    deps: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Discovered:
    """The Functions found in a bare .py, and the user's files its import loaded."""

    names: list[str]
    deps: list[str]


@dataclass(frozen=True)
class Done:
    """The job is over: the worker is free."""


Message = Ready | Importing | Started | Finished | Discovered | Done
