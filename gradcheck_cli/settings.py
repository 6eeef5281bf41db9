"""Settings: the project config plus a front end's choices -> the one frozen record of a run.

The command line (flags) and the pytest plugin (its options) both call `resolve`, so for the
same project config they run the same checks. Keys are the project config's names
(`devices`, `checks`, `atol`, ...), never a front end's flag names.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradcheck_cli.config import ProjectConfig, project_root
from gradcheck_cli.errors import UsageError, did_you_mean

DEFAULT_MAX_MEMORY = 1 << 30  # bytes of Jacobian blocks held at once per check
DEFAULT_TIMEOUT = 120.0  # seconds per check
DEFAULT_SHAPE = (3, 4)  # inferred tensor inputs of a .py without a spec
DEVICES = ("cpu", "cuda")
TORCH_DEFAULTS = {"atol": 1e-5, "rtol": 1e-3, "eps": 1e-6}
MODES = ("auto", "exact", "probe", "reference")


@dataclass(frozen=True)
class RunOptions:
    """The run's choices; None means: as the spec says, else the default."""

    devices: tuple[str, ...] | None = None
    checks: tuple[str, ...] | None = None
    seed: int | None = None
    atol: float | None = None
    rtol: float | None = None
    eps: float | None = None
    shape: tuple[int, ...] = DEFAULT_SHAPE
    functions: tuple[str, ...] = ()
    cases: tuple[str, ...] = ()
    max_memory: int = DEFAULT_MAX_MEMORY
    mode: str = "auto"
    jobs: int = 0  # worker processes; 0 runs in this process, -1 one per core
    timeout: float = DEFAULT_TIMEOUT
    cache_dir: Path | None = None  # None: no cache
    float32: bool = False  # add the float32 consistency check everywhere
    bfloat16: bool = False  # add the bfloat16 check everywhere (--dtype bfloat16)
    float16: bool = False  # add the float16 check everywhere (--dtype float16)
    dodge_kinks: bool = False  # redraw inputs when the only failures sit at kinks
    capabilities: bool = False  # add the capability matrix of each Function x case
    keep_jacobians: bool = False  # attach (downsampled) Jacobians of failing inputs
    shard: tuple[int, int] | None = None  # (I, N): run only the I-th of N shards (1-based)


@dataclass(frozen=True)
class Settings:
    """Everything a run is made with: the engine's options and the front end's own."""

    options: RunOptions = field(default_factory=RunOptions)
    format: str = "table"
    specs_folder: Path | None = None  # where specs of a .py are looked up
    allow_empty: bool = False  # nothing collected is not an error (pre-commit)
    root: Path | None = None  # the project root the config and cache belong to
    quiet: int = 0  # 1: only failures and the summary line; 2: the summary line only


def _given(choices: Mapping[str, Any], config: Mapping[str, Any], key: str,
           default: Any = None) -> Any:
    """The front end's choice when it made one, else the project config's, else `default`."""
    value = choices.get(key)
    if value not in (None, ()):
        return value
    return config.get(key, default)


def _names(values: Any, allowed: tuple[str, ...], what: str) -> tuple[str, ...] | None:
    chosen = tuple(dict.fromkeys(values or ())) or None
    for value in chosen or ():
        if value not in allowed:
            hint = did_you_mean(value, allowed) or f"one of: {', '.join(allowed)}"
            raise UsageError(f"unknown {what} `{value}` in the project config", hint=hint)
    return chosen


def _tolerance(value: Any, name: str, strictly: bool) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value):
        raise UsageError(f"`{name}` must be a finite number, not {value}",
                         hint=f"torch's default is {TORCH_DEFAULTS[name]}")
    if value < 0 or (strictly and value == 0):
        raise UsageError(f"`{name}` must be {'positive' if strictly else 'non-negative'}",
                         hint=f"torch's default is {TORCH_DEFAULTS[name]}")
    return float(value)


def _seed(value: Any) -> int | None:
    """torch's generators take seeds in [-2**63, 2**64); the tool adds small offsets."""
    if value is not None and not -(1 << 63) <= value < (1 << 63) - (1 << 20):
        raise UsageError(f"`seed` {value} is out of range",
                         hint="give an integer below 2**63, e.g. 0")
    return value


def parse_shard(text: str, where: str = "`shard`") -> tuple[int, int]:
    """`"2/4"` -> (2, 4): the I-th of N shards, 1-based as pytest-shard's."""
    index, slash, count = str(text).strip().partition("/")
    try:
        shard = (int(index), int(count))
    except ValueError:
        shard = (0, 0)
    if not slash or not 1 <= shard[0] <= shard[1]:
        raise UsageError(f"{where} {text!r} is not a shard",
                         hint="write I/N, the I-th of N shards with 1 <= I <= N, e.g. 2/4")
    return shard


def resolve(config: ProjectConfig, choices: Mapping[str, Any]) -> Settings:
    """One Settings from the project config and a front end's choices (which win).

    `choices` holds what the front end was told, by config key: devices, checks, seed,
    atol, rtol, eps, shape, functions, cases, max_memory, mode, jobs, timeout, cache
    (False turns the cache off), cache_dir, format, float32, bfloat16, float16,
    dodge_kinks, capabilities,
    keep_jacobians, allow_empty, shard ("I/N" or (I, N)), quiet. Missing or None means
    "not chosen".
    """
    from gradcheck_cli.engine.checks import check_names
    from gradcheck_cli.report import REPORTERS

    values = config.values
    root = config.path.parent if config.path else project_root()
    fmt = _given(choices, values, "format", "table")
    if fmt not in REPORTERS:
        raise UsageError(f"unknown format `{fmt}` in the project config",
                         hint=did_you_mean(fmt, REPORTERS) or f"one of: {', '.join(REPORTERS)}")
    jobs = choices.get("jobs")
    if jobs is None:
        configured = values.get("jobs", "auto")
        jobs = -1 if configured == "auto" else int(configured)
    timeout = float(_given(choices, values, "timeout", DEFAULT_TIMEOUT))
    if timeout <= 0:
        raise UsageError("`timeout` must be positive", hint="a number of seconds per check")
    use_cache = choices.get("cache", True) is not False and values.get("cache", True)
    cache_dir = Path(_given(choices, values, "cache_dir", root / ".gradcheck_cache"))
    specs = values.get("specs")
    specs_folder = Path(specs) if specs else (root / "specs" if (root / "specs").is_dir()
                                              else None)
    options = RunOptions(
        devices=_names(_given(choices, values, "devices"), DEVICES, "device"),
        checks=_names(_given(choices, values, "checks"), check_names(), "check"),
        seed=_seed(_given(choices, values, "seed")),
        atol=_tolerance(_given(choices, values, "atol"), "atol", strictly=False),
        rtol=_tolerance(_given(choices, values, "rtol"), "rtol", strictly=False),
        eps=_tolerance(_given(choices, values, "eps"), "eps", strictly=True),
        shape=tuple(choices.get("shape") or DEFAULT_SHAPE),
        functions=tuple(choices.get("functions") or ()),
        cases=tuple(choices.get("cases") or ()),
        max_memory=int(choices.get("max_memory") or DEFAULT_MAX_MEMORY),
        mode=choices.get("mode") or "auto", jobs=jobs, timeout=timeout,
        cache_dir=cache_dir if use_cache else None,
        float32=bool(choices.get("float32")), dodge_kinks=bool(choices.get("dodge_kinks")),
        bfloat16=bool(choices.get("bfloat16")), float16=bool(choices.get("float16")),
        capabilities=bool(choices.get("capabilities")),
        keep_jacobians=bool(choices.get("keep_jacobians")),
        shard=_shard(_given(choices, values, "shard")),
    )
    allow_empty = bool(choices.get("allow_empty")) or bool(os.environ.get("PRE_COMMIT"))
    return Settings(options=options, format=fmt, specs_folder=specs_folder,
                    allow_empty=allow_empty, root=root, quiet=int(choices.get("quiet") or 0))


def _shard(value: Any) -> tuple[int, int] | None:
    if value is None or isinstance(value, tuple):
        return value
    return parse_shard(value, "`shard` in the project config")
