"""Torch's global state kept apart per check: a baseline taken once, put back before each check."""

from __future__ import annotations

import ast
import operator
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

# Private references, taken before any user code runs: a module that replaces
# torch.set_grad_enabled cannot fool the code that puts the state back.
_inference_guard = torch.inference_mode
_is_inference = torch.is_inference_mode_enabled
_get_rng, _set_rng = torch.get_rng_state, torch.set_rng_state


_is_anomaly, _is_nan_check = torch.is_anomaly_enabled, torch.is_anomaly_check_nan_enabled
_set_anomaly_enabled = torch.set_anomaly_enabled
_is_deterministic = torch.are_deterministic_algorithms_enabled
_is_warn_only = torch.is_deterministic_algorithms_warn_only_enabled
_use_deterministic = torch.use_deterministic_algorithms


def _anomaly() -> tuple[bool, bool]:
    return _is_anomaly(), _is_nan_check()


def _set_anomaly(value: tuple[bool, bool]) -> None:
    _set_anomaly_enabled(*value)


def _deterministic() -> tuple[bool, bool]:
    return _is_deterministic(), _is_warn_only()


def _set_deterministic(value: tuple[bool, bool]) -> None:
    _use_deterministic(value[0], warn_only=value[1])


@dataclass(frozen=True)
class Flag:
    """One piece of torch's global state: how to read it, how to set it, and the names of
    the calls that change it (to find the line in the user's source)."""

    label: str
    get: Callable[[], Any]
    put: Callable[[Any], None] | None  # None: only a guard around the check can undo it
    calls: tuple[str, ...]
    second: str = ""  # what the second of a pair of values says



FLAGS: tuple[Flag, ...] = (
    Flag("grad mode", torch.is_grad_enabled, torch._C._set_grad_enabled,
         ("set_grad_enabled", "_set_grad_enabled", "no_grad", "enable_grad")),
    Flag("inference mode", _is_inference, None, ("inference_mode", "_InferenceMode")),
    Flag("default dtype", torch.get_default_dtype, torch.set_default_dtype,
         ("set_default_dtype", "set_default_tensor_type")),
    Flag("default device", torch.get_default_device, torch.set_default_device,
         ("set_default_device",)),
    Flag("anomaly mode", _anomaly, _set_anomaly,
         ("set_anomaly_enabled", "set_detect_anomaly", "detect_anomaly"), "NaN check"),
    Flag("deterministic algorithms", _deterministic, _set_deterministic,
         ("use_deterministic_algorithms",), "warn only"),
    Flag("number of threads", torch.get_num_threads, torch.set_num_threads,
         ("set_num_threads",)),
    Flag("float32 matmul precision", torch.get_float32_matmul_precision,
         torch.set_float32_matmul_precision, ("set_float32_matmul_precision",)),
)


def _namespaces() -> dict[str, Any]:
    """Where the functions the checker calls live (torch.autograd.grad, Tensor.backward,
    the gradcheck helpers, vmap, ...): every callable in them is kept."""
    return {
        "torch": torch,
        "torch.autograd": torch.autograd,
        "torch.autograd.gradcheck": sys.modules["torch.autograd.gradcheck"],
        "torch.autograd.function": sys.modules["torch.autograd.function"],
        "torch.autograd.Function": torch.autograd.Function,
        "torch.Tensor": torch.Tensor,
        "torch.func": torch.func,
    }


@dataclass(frozen=True)
class _Space:
    """One namespace watched: its owner, the names of the callables it showed when this
    module loaded (before any user code; a class's inherited ones too, as `Tensor.__mul__`
    of `TensorBase`), and where each one lived then."""

    label: str
    owner: Any
    names: tuple[str, ...]
    homes: tuple[Any, ...]

    def view(self) -> Mapping[str, Any]:
        """Each name's value as attribute lookup finds it, without running descriptors (a
        classmethod would give a new bound method at every read)."""
        if not isinstance(self.owner, type):
            return vars(self.owner)
        # Copies of the class dicts (fast), merged dict into dict: a mapping proxy itself
        # would be merged key by key.
        merged: dict[str, Any] = {}
        for klass in reversed(self.owner.__mro__[:-1]):  # `object` aside
            merged.update(vars(klass).copy())
        return merged

    def read(self) -> tuple[Any, ...]:
        # One C-level pass (microseconds for torch's ~1,500 names): every check reads
        # these several times, and a Python loop over them cost milliseconds.
        return tuple(map(self.view().get, self.names))

    def put(self, name: str, value: Any) -> None:
        """Give `name` back its `value`, where it lived: a shadow set on the class over
        a base class's method is removed."""
        home = self.homes[self.names.index(name)]
        with suppress(AttributeError, TypeError):
            if home is not self.owner and name in vars(self.owner):
                delattr(self.owner, name)
            if vars(home).get(name) is not value:
                setattr(home, name, value)


def _spaces() -> tuple[_Space, ...]:
    spaces = []
    for label, owner in _namespaces().items():
        klasses = owner.__mro__[:-1] if isinstance(owner, type) else (owner,)
        homes: dict[str, Any] = {}
        for klass in reversed(klasses):  # the nearest class wins, as lookup does
            homes.update({name: klass for name, value in list(vars(klass).items())
                          if callable(value) and not isinstance(value, ModuleType)})
        spaces.append(_Space(label, owner, tuple(homes), tuple(homes.values())))
    return tuple(spaces)


_SPACES = _spaces()


@dataclass
class TorchState:
    """A copy of torch's global state: the flags, the RNG, and the functions kept (per
    watched namespace, the values of its names, in `_Space.names` order)."""

    flags: dict[str, Any]
    rng: torch.Tensor
    functions: tuple[tuple[Any, ...], ...]


def capture() -> TorchState:
    return TorchState({f.label: f.get() for f in FLAGS}, _get_rng(),
                      tuple(space.read() for space in _SPACES))


def _same(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    return old is new or all(map(operator.is_, old, new))


def _replaced(old: tuple[Any, ...], new: tuple[Any, ...], space: _Space) -> list[str]:
    """The names of `space` whose value in `new` is not the one in `old`."""
    if _same(old, new):
        return []
    return [name for name, before, after in zip(space.names, old, new) if before is not after]


def changes(before: TorchState, after: TorchState) -> list[tuple[str, str]]:
    """What differs, as (label, words): the RNG aside, which every check seeds itself."""
    found: list[tuple[str, str]] = []
    for flag in FLAGS:
        old, new = before.flags[flag.label], after.flags[flag.label]
        if old != new:
            shown = f"{_shown(old, flag.second)} -> {_shown(new, flag.second)}"
            found.append((flag.label, f"{flag.label} {shown}"))
    for space, old, new in zip(_SPACES, before.functions, after.functions):
        for name in _replaced(old, new, space):
            found.append((f"{space.label}.{name}", f"{space.label}.{name} replaced"))
    return found


def _shown(value: Any, second: str = "") -> str:
    if isinstance(value, tuple):
        return f"{_shown(value[0])} ({second} {_shown(value[1])})"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value).removeprefix("torch.")


def put_back(state: TorchState) -> list[str]:
    """Set torch's state to `state`; the labels of what could not be put back."""
    touched = False  # whether anything differed: only then is the state read again
    for flag in FLAGS:
        if flag.get() != state.flags[flag.label]:
            touched = True
            if flag.put is not None:
                # Checked below: a state that stays wrong retires the worker.
                with suppress(Exception):
                    flag.put(state.flags[flag.label])
    for space, kept in zip(_SPACES, state.functions):
        for name in _replaced(kept, space.read(), space):
            touched = True
            space.put(name, kept[space.names.index(name)])
    _set_rng(state.rng)
    return [label for label, _ in changes(state, capture())] if touched else []


_baseline: TorchState | None = None
_import_notes: dict[Path, str] = {}


def baseline() -> TorchState:
    """The process's state before any user code ran (taken on first use)."""
    global _baseline
    if _baseline is None:
        _baseline = capture()
    return _baseline


def watch_import(path: Path, importer: Callable[[], Any]) -> Any:
    """Run `importer` (which imports the user's `path`); note what it changed in torch's
    state, for that module's results, and put the baseline back."""
    start = baseline()  # taken now, if not yet: before the user's code runs
    before = capture()
    try:
        return importer()
    finally:
        found = changes(before, capture())
        if found:
            _import_notes[path.resolve()] = _note(path, found)
        put_back(start)


def import_note(path: Path) -> str | None:
    """The warning for the results of `path`, if importing it changed torch's state."""
    return _import_notes.get(path.resolve())


def _note(path: Path, found: list[tuple[str, str]]) -> str:
    from gradcheck_cli.specs.collect import display

    lines = _lines(path, [label for label, _ in found])
    shown = display(path)
    parts = [words + (f" ({shown}:{lines[label]})" if label in lines else "")
             for label, words in found]
    return (f"warning: importing {shown} changed torch's global state: {', '.join(parts)}; "
            "gradcheck-cli put it back before each check, so these results do not depend on "
            "it, but code that imports this module does")


def _lines(path: Path, labels: list[str]) -> dict[str, int]:
    """The first line in `path` that changes each piece of state named by `labels`."""
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return {}
    calls = {flag.label: flag.calls for flag in FLAGS}
    found: dict[str, int] = {}
    for node in ast.walk(tree):
        for label in labels:
            if label in found:
                continue
            wanted = calls.get(label, ())
            attr = label.rpartition(".")[2]
            if _changes_at(node, wanted, attr if label not in calls else None):
                found[label] = node.lineno  # type: ignore[attr-defined]
    return found


def _changes_at(node: ast.AST, calls: tuple[str, ...], attr: str | None) -> bool:
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in calls:
            return True
        return (attr is not None and name == "setattr" and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant) and node.args[1].value == attr)
    if attr is not None and isinstance(node, (ast.Assign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(isinstance(t, ast.Attribute) and t.attr == attr for t in targets)
    return False


@contextmanager
def checking() -> Iterator[list[str]]:
    """Run a check under the baseline state, then put back the caller's state (the pytest
    plugin's process goes on with other tests). Yields what could not be put back (the
    check must not be trusted then); inference mode left on is undone by a guard."""
    outer = capture()
    unrestored = put_back(baseline())
    with ExitStack() as stack:
        if "inference mode" in unrestored and not baseline().flags["inference mode"]:
            stack.enter_context(_inference_guard(False))
            unrestored.remove("inference mode")
        try:
            yield unrestored
        finally:
            stack.close()
            put_back(outer)


def settle() -> list[str]:
    """Put the baseline back between jobs; what could not be (the worker must not be reused)."""
    return put_back(baseline())
