"""Spec files (YAML) -> spec records; every error names the file, line and column."""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gradcheck_cli.engine.checks import check_names
from gradcheck_cli.errors import SpecError, did_you_mean
from gradcheck_cli.specs import yamlsource
from gradcheck_cli.specs.yamlsource import LocDict, LocList, Mark

TENSOR_DTYPES = (
    "float64", "float32", "float16", "bfloat16", "complex128", "complex64",
    "int64", "int32", "int16", "int8", "uint8", "bool",
)
FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16", "complex128", "complex64")
SETTING_KEYS = ("devices", "checks", "seed", "atol", "rtol", "eps", "nondet_tol", "float32",
                "init")
FUNCTION_KEYS = ("inputs", "kwargs", "cases", *SETTING_KEYS)
CASE_KEYS = ("name", "inputs", "kwargs", *SETTING_KEYS)
TOP_KEYS = ("module", "defaults", "functions")
# What a tensor input is drawn from when the spec gives no `low`/`high` (the tool's draw
# and the repro scripts it writes must agree). Floats: uniform in [-1, 1], the scale
# gradcheck's default tolerances are tuned for, both signs so that sign bugs show.
# Integers: randint in [0, 10).
DEFAULT_LOW, DEFAULT_HIGH = -1.0, 1.0
DEFAULT_INT_LOW, DEFAULT_INT_HIGH = 0, 10
TENSOR_KEYS = ("shape", "dtype", "low", "high", "requires_grad", "name", "avoid",
               "exclude_zero")
VALUE_KEYS = ("value", "name")
LIST_KEYS = ("list", "name")
MAX_DIMS = 64  # torch's own limit on a tensor's dimensions
SEED_RANGE = (-(2**63), 2**63)  # what torch.Generator.manual_seed takes (an int64)
# Integer dtypes: the values torch.randint may draw (`high` is exclusive).
INT_RANGE = {"uint8": (0, 2**8), "int8": (-(2**7), 2**7), "int16": (-(2**15), 2**15),
             "int32": (-(2**31), 2**31), "int64": (-(2**63), 2**63)}
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class CheckSettings:
    """Settings that may stand at every level (defaults, function, case); None = not set."""

    devices: tuple[str, ...] | None = None
    checks: tuple[str, ...] | None = None
    seed: int | None = None
    atol: float | None = None
    rtol: float | None = None
    eps: float | None = None
    nondet_tol: float | None = None
    float32: bool | None = None  # also compare float32 gradients with float64 ones
    init: dict[str, Any] | None = None  # constructor arguments of an nn.Module

    def merged(self, over: CheckSettings) -> CheckSettings:
        """These settings with every field that `over` sets replaced."""
        changes = {k: v for k, v in vars(over).items() if v is not None}
        return replace(self, **changes)


@dataclass(frozen=True)
class TensorInput:
    """A tensor argument, made from a seeded uniform draw."""

    shape: tuple[int, ...]
    dtype: str = "float64"
    low: float | None = None
    high: float | None = None
    requires_grad: bool = True
    name: str | None = None
    line: int | None = None
    avoid: tuple[float, ...] = ()  # points (kinks) the values keep away from


@dataclass(frozen=True)
class LiteralInput:
    """A non-tensor argument, passed as is."""

    value: Any
    name: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class GivenTensor:
    """A tensor given as a value (the Python API's arguments): cloned for each check."""

    value: Any
    requires_grad: bool
    name: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class ListInput:
    """A list argument (`{list: [...]}`, a `Tensor[]`): its items are inputs of their own,
    named `xs[0]`, `xs[1]`, and passed to the call as one Python list."""

    items: tuple[TensorInput | LiteralInput | GivenTensor, ...]
    name: str | None = None
    line: int | None = None


Leaf = TensorInput | LiteralInput | GivenTensor
InputSpec = TensorInput | LiteralInput | GivenTensor | ListInput
Keywords = tuple[tuple[str, InputSpec], ...]


def leaves(specs: tuple[InputSpec, ...], kwargs: Keywords = ()) -> list[Leaf]:
    """Every input the engine perturbs or passes, flat: lists' items in place, keyword
    arguments after the positional ones."""
    flat: list[Leaf] = []
    for spec in (*specs, *(value for _, value in kwargs)):
        flat.extend(spec.items if isinstance(spec, ListInput) else (spec,))
    return flat


@dataclass(frozen=True)
class CaseSpec:
    """One input set; `inputs` None means: infer them from forward's signature."""

    name: str
    inputs: tuple[InputSpec, ...] | None
    settings: CheckSettings = field(default_factory=CheckSettings)
    line: int | None = None
    kwargs: Keywords = ()  # keyword arguments, by name (`kwargs:` in a spec)


@dataclass
class FunctionSpec:
    """What a spec says about one Function (or plain function) of the module."""

    name: str
    line: int
    cases: list[CaseSpec] = field(default_factory=list)
    settings: CheckSettings = field(default_factory=CheckSettings)
    error: SpecError | None = None


@dataclass
class SpecFile:
    """A parsed spec file: the module it names and its functions."""

    path: Path
    module: Path | None = None
    module_line: int | None = None
    functions: list[FunctionSpec] = field(default_factory=list)
    error: SpecError | None = None


class _Context:
    """Where we are in the file, for error messages."""

    def __init__(self, path: str) -> None:
        self.path = path

    def error(self, message: str, mark: Mark | None, hint: str | None = None) -> SpecError:
        line, column = mark if mark else (None, None)
        return SpecError(message, file=self.path, line=line, column=column, hint=hint)

    def check_keys(self, mapping: LocDict, allowed: tuple[str, ...], what: str) -> None:
        for key in mapping:
            if key not in allowed:
                hint = did_you_mean(str(key), allowed) or f"valid keys: {', '.join(allowed)}"
                raise self.error(f"unknown key `{key}` in {what}", mapping.key_marks[key], hint)


def load_spec(path: Path, display: str | None = None) -> SpecFile:
    """Read and validate a spec file. Never raises: problems land in `.error` fields."""
    shown = display or str(path)
    spec = SpecFile(path=path)
    ctx = _Context(shown)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        spec.error = SpecError(f"cannot read spec: {exc}", file=shown)
        return spec
    try:
        doc = yamlsource.load(text, shown)
        _parse_top(doc, path, spec, ctx)
    except SpecError as exc:
        spec.error = exc
    return spec


def _parse_top(doc: Any, path: Path, spec: SpecFile, ctx: _Context) -> None:
    if not isinstance(doc, LocDict):
        raise ctx.error(
            "a spec must be a mapping with `module` and `functions`",
            getattr(doc, "mark", (1, 1)),
            hint="start the file with `module: path/to/op.py`",
        )
    ctx.check_keys(doc, TOP_KEYS, "the spec")
    if "module" not in doc:
        raise ctx.error("missing `module`", doc.mark,
                        hint="add `module: path/to/op.py` (relative to this spec file)")
    module = doc["module"]
    if not isinstance(module, str) or not module.strip():
        raise ctx.error("`module` must be a path to a .py file", doc.value_marks["module"])
    if "\0" in module:
        raise ctx.error("`module` contains a NUL character", doc.value_marks["module"],
                        hint="give the path to a .py file")
    try:
        spec.module = (path.parent / module).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise ctx.error(f"`module` cannot be resolved ({exc})", doc.value_marks["module"],
                        hint="the path is a symlink loop or unreadable: name the .py file "
                        "itself") from None
    spec.module_line = doc.key_marks["module"][0]
    defaults = CheckSettings()
    if "defaults" in doc and doc["defaults"] is not None:
        raw = doc["defaults"]
        if not isinstance(raw, LocDict):
            raise ctx.error("`defaults` must be a mapping", doc.value_marks["defaults"])
        ctx.check_keys(raw, FUNCTION_KEYS, "`defaults`")
        for key in ("inputs", "cases"):
            if key in raw:
                raise ctx.error(f"`{key}` cannot stand in `defaults`", raw.key_marks[key],
                                hint="give inputs per function")
        defaults = _parse_settings(raw, ctx)
    if "functions" not in doc:
        raise ctx.error("missing `functions`", doc.mark,
                        hint="add `functions:` with one entry per Function to check")
    functions = doc["functions"]
    if not isinstance(functions, LocDict) or not functions:
        raise ctx.error("`functions` must be a mapping of Function names to their inputs",
                        doc.value_marks["functions"],
                        hint="e.g.\nfunctions:\n  MyFunction:\n    inputs:\n      - shape: [3, 4]")
    for name, body in functions.items():
        line = functions.key_marks[name][0]
        entry = FunctionSpec(name=str(name), line=line)
        try:
            _parse_function(body, functions.value_marks[name], defaults, entry, ctx)
        except SpecError as exc:
            entry.error = exc
        spec.functions.append(entry)


def _parse_function(body: Any, mark: Mark, defaults: CheckSettings, entry: FunctionSpec,
                    ctx: _Context) -> None:
    if body is None:
        body = LocDict()
    if not isinstance(body, LocDict):
        raise ctx.error(f"`{entry.name}` must be a mapping with `inputs`", mark,
                        hint="e.g.\n  inputs:\n    - shape: [3, 4]")
    ctx.check_keys(body, FUNCTION_KEYS, f"function `{entry.name}`")
    entry.settings = defaults.merged(_parse_settings(body, ctx))
    inputs = _parse_inputs(body, ctx) if "inputs" in body else None
    kwargs = _parse_kwargs(body, ctx)
    if kwargs and inputs is None:
        inputs = ()  # keyword arguments alone: no positional ones
    entry.cases.append(CaseSpec("default", inputs, CheckSettings(), entry.line, kwargs))
    if "cases" in body:
        cases = body["cases"]
        if not isinstance(cases, LocList):
            raise ctx.error("`cases` must be a list of mappings with `name` and `inputs`",
                            body.value_marks["cases"])
        seen = {"default"}
        for case, case_mark in zip(cases, cases.item_marks):
            if not isinstance(case, LocDict):
                raise ctx.error("each case must be a mapping with `name` and `inputs`", case_mark)
            ctx.check_keys(case, CASE_KEYS, "a case")
            name = case.get("name")
            if not isinstance(name, (str, int)) or isinstance(name, bool):
                raise ctx.error("each case needs a `name`", case.mark,
                                hint="e.g. `- {name: wide, inputs: [{shape: [2, 50]}]}`")
            if str(name) in seen:
                raise ctx.error(f"duplicate case name `{name}`", case.key_marks["name"])
            seen.add(str(name))
            case_inputs = _parse_inputs(case, ctx) if "inputs" in case else inputs
            case_kwargs = _parse_kwargs(case, ctx) if "kwargs" in case else kwargs
            if case_kwargs and case_inputs is None:
                case_inputs = ()
            entry.cases.append(CaseSpec(str(name), case_inputs, _parse_settings(case, ctx),
                                        case_mark[0], case_kwargs))


def _parse_inputs(body: LocDict, ctx: _Context) -> tuple[InputSpec, ...]:
    raw = body["inputs"]
    if raw is None:
        return ()
    if not isinstance(raw, LocList):
        raise ctx.error("`inputs` must be a list, one entry per argument of forward",
                        body.value_marks["inputs"], hint="e.g.\ninputs:\n  - shape: [3, 4]\n  - 1")
    return tuple(_parse_input(item, mark, ctx) for item, mark in zip(raw, raw.item_marks))


def _parse_kwargs(body: LocDict, ctx: _Context) -> Keywords:
    raw = body.get("kwargs")
    if raw is None:
        return ()
    if not isinstance(raw, LocDict):
        raise ctx.error("`kwargs` must be a mapping of argument names to inputs",
                        body.value_marks["kwargs"],
                        hint="e.g.\nkwargs:\n  scale: 0.5\n  weight: {shape: [4]}")
    found = []
    for key, value in raw.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ctx.error(f"`{key}` is not an argument name", raw.key_marks[key])
        spec = _parse_input(value, raw.value_marks[key], ctx)
        if spec.name is not None and spec.name != key:
            raise ctx.error(f"keyword argument `{key}` has its name already; remove "
                            f"`name: {spec.name}`", raw.value_marks[key])
        found.append((key, spec))
    return tuple(found)


def _parse_list(item: LocDict, mark: Mark, ctx: _Context) -> ListInput:
    ctx.check_keys(item, LIST_KEYS, "a list input")
    raw = item["list"]
    if not isinstance(raw, LocList):
        raise ctx.error("`list` must be a list of inputs", item.value_marks["list"],
                        hint="e.g. `- {list: [{shape: [3]}, {shape: [3]}]}`")
    items = []
    for entry, entry_mark in zip(raw, raw.item_marks):
        parsed = _parse_input(entry, entry_mark, ctx)
        if isinstance(parsed, ListInput):
            raise ctx.error("a list inside a list is not supported", entry_mark,
                            hint="give the inner items as one flat list")
        items.append(parsed)
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        raise ctx.error("`name` must be a string", item.value_marks["name"])
    return ListInput(tuple(items), name=name, line=mark[0])


def _parse_input(item: Any, mark: Mark, ctx: _Context) -> InputSpec:
    if not isinstance(item, LocDict):
        return LiteralInput(value=_plain(item), line=mark[0])
    if "list" in item:
        return _parse_list(item, mark, ctx)
    if "shape" in item and "value" in item:
        raise ctx.error("an input has either `shape` (a tensor) or `value` (a literal), not both",
                        item.mark)
    if "value" in item:
        ctx.check_keys(item, VALUE_KEYS, "a literal input")
        name = item.get("name")
        if name is not None and not isinstance(name, str):
            raise ctx.error("`name` must be a string", item.value_marks["name"])
        return LiteralInput(value=_plain(item["value"]), name=name, line=mark[0])
    if "shape" not in item:
        ctx.check_keys(item, TENSOR_KEYS + VALUE_KEYS[:1], "an input")
        raise ctx.error("an input mapping needs `shape` (a tensor) or `value` (a literal)",
                        item.mark, hint="e.g. `- {shape: [3, 4]}` or `- {value: [0, 1]}`")
    ctx.check_keys(item, TENSOR_KEYS, "a tensor input")
    shape = item["shape"]
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = [shape]
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise ctx.error("`shape` must be a list of non-negative integers",
                        item.value_marks["shape"],
                        hint="e.g. `shape: [3, 4]`; `shape: []` is a 0-d tensor")
    if len(shape) > MAX_DIMS:
        raise ctx.error(f"`shape` has {len(shape)} dimensions; torch tensors have at most "
                        f"{MAX_DIMS}", item.value_marks["shape"])
    dtype = item.get("dtype", "float64")
    if dtype not in TENSOR_DTYPES:
        raise ctx.error(f"unknown dtype `{dtype}`", item.value_marks.get("dtype"),
                        hint=did_you_mean(str(dtype), TENSOR_DTYPES)
                        or f"one of: {', '.join(TENSOR_DTYPES)}")
    low = _number(item, "low", ctx)
    high = _number(item, "high", ctx)
    for key, bound in (("low", low), ("high", high)):
        if bound is not None and not math.isfinite(bound):
            raise ctx.error(f"`{key}` must be a finite number (got {bound})",
                            item.value_marks[key])
    if low is not None and high is not None and not low < high:
        raise ctx.error(f"`low` ({low}) must be smaller than `high` ({high})",
                        item.key_marks["low"])
    _int_range(item, dtype, low, high, ctx)
    requires_grad = item.get("requires_grad", dtype in FLOAT_DTYPES)
    if not isinstance(requires_grad, bool):
        raise ctx.error("`requires_grad` must be true or false", item.value_marks["requires_grad"])
    if requires_grad and dtype not in FLOAT_DTYPES:
        raise ctx.error(f"a {dtype} tensor cannot require grad", item.key_marks["requires_grad"],
                        hint="set `requires_grad: false`, or use a floating dtype")
    name = item.get("name")
    if name is not None and not isinstance(name, str):
        raise ctx.error("`name` must be a string", item.value_marks["name"])
    avoid = _avoid(item, ctx)
    return TensorInput(shape=tuple(shape), dtype=dtype, low=low, high=high,
                       requires_grad=requires_grad, name=name, line=mark[0], avoid=avoid)


def _int_range(item: LocDict, dtype: str, low: float | None, high: float | None,
               ctx: _Context) -> None:
    """An integer tensor's `low`/`high` must lie in its dtype's range (torch.randint would
    fail), `high` being exclusive."""
    if dtype not in INT_RANGE:
        return
    least, bound = INT_RANGE[dtype]
    if low is not None and not least <= low < bound:
        raise ctx.error(f"`low` ({low:g}) is out of range for {dtype} ([{least}, {bound - 1}])",
                        item.value_marks["low"])
    if high is not None and not least < high <= bound:
        raise ctx.error(f"`high` ({high:g}) is out of range for {dtype} (at most {bound}, "
                        "as `high` is exclusive)", item.value_marks["high"])


def _avoid(item: LocDict, ctx: _Context) -> tuple[float, ...]:
    points: list[float] = []
    if "exclude_zero" in item:
        if not isinstance(item["exclude_zero"], bool):
            raise ctx.error("`exclude_zero` must be true or false",
                            item.value_marks["exclude_zero"])
        if item["exclude_zero"]:
            points.append(0.0)
    if "avoid" in item:
        raw = item["avoid"]
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            raw = [raw]
        if not isinstance(raw, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw
        ):
            raise ctx.error("`avoid` must be a list of numbers (points where the function has a "
                            "kink, e.g. [0.0])", item.value_marks["avoid"])
        points.extend(float(v) for v in raw)
    return tuple(dict.fromkeys(points))


def _number(body: LocDict, key: str, ctx: _Context) -> float | None:
    if key not in body or body[key] is None:
        return None
    value = body[key]
    if isinstance(value, str):
        # PyYAML reads `1e-5` (no dot) as a string; accept what Python reads as a number.
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ctx.error(f"`{key}` must be a number", body.value_marks[key])
    return float(value)


def _strings(body: LocDict, key: str, allowed: tuple[str, ...] | None,
             ctx: _Context) -> tuple[str, ...] | None:
    if key not in body or body[key] is None:
        return None
    value = body[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ctx.error(f"`{key}` must be a list of names", body.value_marks[key])
    for item in value:
        if allowed is not None and item not in allowed:
            raise ctx.error(f"unknown {key[:-1]} `{item}`", body.value_marks[key],
                            hint=did_you_mean(item, allowed) or f"one of: {', '.join(allowed)}")
        if allowed is None and not _DEVICE.match(item):
            raise ctx.error(f"unknown device `{item}`", body.value_marks[key],
                            hint=did_you_mean(item, ("cpu", "cuda")) or "one of: cpu, cuda")
    return tuple(dict.fromkeys(value))


def _parse_settings(body: LocDict, ctx: _Context) -> CheckSettings:
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ctx.error("`seed` must be an integer", body.value_marks["seed"])
    if seed is not None and not SEED_RANGE[0] <= seed < SEED_RANGE[1]:
        raise ctx.error(f"`seed` must be below 2**63 and at least -2**63 (got {seed})",
                        body.value_marks["seed"])
    tolerances = {key: _number(body, key, ctx) for key in ("atol", "rtol", "eps", "nondet_tol")}
    for key, value in tolerances.items():
        if value is not None and not math.isfinite(value):
            # NaN compares false with everything (torch then blames the backward) and an
            # infinite tolerance passes every op.
            raise ctx.error(f"`{key}` must be a finite number (got {value})",
                            body.value_marks[key], hint="e.g. `atol: 1e-5`")
        if value is not None and (value < 0 or (key == "eps" and value == 0)):
            raise ctx.error(f"`{key}` must be positive", body.value_marks[key])
    float32 = body.get("float32")
    if float32 is not None and not isinstance(float32, bool):
        raise ctx.error("`float32` must be true or false", body.value_marks["float32"])
    init = body.get("init")
    if init is not None and not isinstance(init, LocDict):
        raise ctx.error("`init` must be a mapping of constructor arguments",
                        body.value_marks["init"],
                        hint="e.g. `init: {in_features: 3, out_features: 2}`")
    return CheckSettings(
        devices=_strings(body, "devices", None, ctx),
        checks=_strings(body, "checks", check_names(), ctx),
        seed=seed,
        float32=float32,
        init=_plain(init) if init is not None else None,
        **tolerances,
    )


def _plain(value: Any) -> Any:
    """Strip location bookkeeping from a literal so the user's code sees plain lists and dicts."""
    if isinstance(value, LocDict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, LocList):
        return [_plain(v) for v in value]
    return value
