"""Which custom Function's backward made a composite's gradient wrong: each call checked alone.

A plain function or an nn.Module built on autograd Functions is checked as one function of
its inputs and parameters, so a failure names the inputs whose gradient is wrong, not the
Function at fault: a Function that returns a wrong gradient for its own input spoils the
gradient of every parameter upstream of it (`fc1.weight` wrong because of fc2's Function).
Here forward runs once more while a profile hook records each outermost Function call
(its class and its arguments), then each call is checked on its own by two random
directional derivatives per input, against central differences of that call alone.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import torch

from gradcheck_cli.engine.jacobian import as_tuple
from gradcheck_cli.engine.outcome import Outcome, Tolerances
from gradcheck_cli.results import Diagnosis

MAX_CALLS = 64  # Function calls checked at most: a few forwards and backwards each
PROBES = 2  # random directions per input; a call is wrong only if every one disagrees
VARARGS = inspect.CO_VARARGS


@dataclass
class Call:
    """One call of a custom Function's forward, with its arguments as they were."""

    cls: type[torch.autograd.Function]
    names: list[str]  # forward's parameter names, after ctx
    values: list[Any]  # the arguments (tensors detached and cloned)
    sources: list[int | None]  # for each argument, the checked input it is (by identity)
    wrong: list[int] = field(default_factory=list)  # arguments whose gradient is wrong

    @property
    def title(self) -> str:
        return f"{self.cls.__name__}.backward"

    @property
    def location(self) -> str | None:
        backward = getattr(self.cls, "backward", None)
        backward = getattr(backward, "__wrapped__", backward)
        try:
            file = inspect.getsourcefile(backward)  # type: ignore[arg-type]
            lines, line = inspect.getsourcelines(backward)  # type: ignore[arg-type]
        except (OSError, TypeError):
            return None
        # The `def` line, as for a Function checked itself, not its @staticmethod above.
        line += next((i for i, text in enumerate(lines)
                      if text.lstrip().startswith(("def ", "async def "))), 0)
        return f"{file}:{line}" if file else None


def blame(fn: Callable[..., Any], args: list[Any], outcome: Outcome, tolerances: Tolerances,
          seed: int) -> None:
    """Point a failed composite's outcome at the Function whose backward is wrong: its
    location becomes that backward's, and each wrong input's diagnosis says where its
    error comes from. Nothing changes when no Function call is found wrong on its own."""
    calls = [c for c in record_calls(fn, args) if _check(c, tolerances, seed)]
    if not calls:
        return
    first: Call | None = None
    for entry in outcome.inputs:
        if entry.passed or entry.diagnosis is None:
            continue
        direct = [(c, k) for c in calls for k in c.wrong if c.sources[k] == entry.index]
        upstream = [(c, k) for c in calls for k in c.wrong if c.sources[k] is None]
        if direct:
            said = f"; the error comes from {_returns(direct)}"
        elif upstream:
            said = f"; the error comes from {_returns(upstream)} and flows back to `{entry.name}`"
        else:
            continue
        entry.diagnosis = Diagnosis(entry.diagnosis.kind, entry.diagnosis.detail + said)
        first = first or (direct or upstream)[0][0]
    location = first.location if first is not None else None
    if location is not None:
        outcome.location = location


def _returns(found: list[tuple[Call, int]]) -> str:
    """`F.backward` (its gradient for its input `x`), and others the same way."""
    said = list(dict.fromkeys(f"`{c.title}` (the gradient it returns for its input "
                              f"`{c.names[k]}`)" for c, k in found))
    return said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]


def record_calls(fn: Callable[..., Any], args: list[Any]) -> list[Call]:
    """The outermost custom Function calls one run of `fn(*args)` makes, in order (at most
    MAX_CALLS; none when forward fails, or more calls than that are made)."""
    calls: list[Call] = []
    inside: list[FrameType] = []

    def hook(frame: FrameType, event: str, _: Any) -> None:
        if event == "return" and inside and frame is inside[0]:
            inside.clear()
        if event != "call" or inside or frame.f_code.co_name != "forward" \
                or len(calls) > MAX_CALLS:  # too many to check: keep no more copies
            return
        call = _call(frame, args)
        if call is not None:
            inside.append(frame)
            calls.append(call)

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        fn(*args)
    except Exception:
        return []
    finally:
        sys.setprofile(previous)
    return calls if len(calls) <= MAX_CALLS else []


def _call(frame: FrameType, args: list[Any]) -> Call | None:
    """The Function call this forward frame is, or None (a module's forward, a Function
    with setup_context, whose forward gets no ctx to tell it by)."""
    code = frame.f_code
    if code.co_argcount == 0:
        return None
    local = frame.f_locals
    ctx = local.get(code.co_varnames[0])
    if not isinstance(ctx, torch.autograd.function.BackwardCFunction):
        return None
    cls = getattr(type(ctx), "_forward_cls", None)
    if cls is None:
        return None
    names = list(code.co_varnames[1:code.co_argcount])
    values = [local[n] for n in names]
    if code.co_flags & VARARGS:
        rest = code.co_varnames[code.co_argcount + code.co_kwonlyargcount]
        extra = list(local.get(rest, ()))
        names += [f"{rest}[{i}]" for i in range(len(extra))]
        values += extra
    sources = [next((p for p, a in enumerate(args) if a is v), None)
               if isinstance(v, torch.Tensor) else None for v in values]
    kept = [_kept(v) for v in values]
    return Call(cls, names, kept, sources)


def _kept(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_(value.requires_grad)
    return value


def _check(call: Call, tolerances: Tolerances, seed: int) -> bool:
    """Whether the call's backward is wrong for some argument (recorded in `call.wrong`)."""
    positions = [k for k, v in enumerate(call.values) if isinstance(v, torch.Tensor)
                 and v.requires_grad and v.dtype.is_floating_point]
    if not positions:
        return False
    generator = torch.Generator().manual_seed(seed + 7_919)
    disagree = {k: 0 for k in positions}
    try:
        for _ in range(PROBES):
            for k, bad in _probe(call, positions, tolerances, generator).items():
                disagree[k] += bad
    except Exception:  # a call that fails alone tells nothing about the composite's error
        return False
    call.wrong = [k for k in positions if disagree[k] == PROBES]
    return bool(call.wrong)


def _probe(call: Call, positions: list[int], tol: Tolerances, generator: torch.Generator
           ) -> dict[int, bool]:
    """For each argument: whether vᵀJu by backward disagrees with the central difference
    of vᵀf along u beyond the difference's own noise (its change when the step doubles)."""
    values = [_kept(v) for v in call.values]
    every = as_tuple(call.cls.apply(*values))
    which = [i for i, o in enumerate(every) if isinstance(o, torch.Tensor) and o.requires_grad]
    if not which or any(every[i].is_complex() for i in which):
        return {}
    v = {i: _unit(every[i], generator) for i in which}
    grads = torch.autograd.grad([every[i] for i in which], [values[k] for k in positions],
                                list(v.values()), allow_unused=True)
    found = {}
    for k, grad in zip(positions, grads):
        u = _unit(values[k], generator)
        analytical = 0.0 if grad is None else float((grad * u).sum())
        near = _central(call, k, u, v, tol.eps)
        far = _central(call, k, u, v, 2 * tol.eps)
        # The check's tolerances, on one derivative along unit directions, widened by the
        # difference's noise: truncation, rounding and a kink crossed move with the step,
        # a wrong formula does not. Missing a bug here only leaves the location as it was.
        allowed = tol.atol + tol.rtol * abs(near) + 10 * abs(near - far)
        found[k] = abs(analytical - near) > allowed
    return found


def _central(call: Call, k: int, u: torch.Tensor, v: dict[int, torch.Tensor], eps: float
             ) -> float:
    """(vᵀf(x + eps·u) - vᵀf(x - eps·u)) / 2eps, with argument k moved along u; `v` weighs
    the outputs by their place."""
    sides = []
    for sign in (1.0, -1.0):
        values = [_kept(a) for a in call.values]
        with torch.no_grad():
            values[k] = values[k] + sign * eps * u
            every = as_tuple(call.cls.apply(*values))
        sides.append(sum(float((every[i] * w).sum()) for i, w in v.items()))
    return (sides[0] - sides[1]) / (2 * eps)


def _unit(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    direction = torch.randn(like.shape, generator=generator, dtype=torch.float64)
    direction = direction.to(dtype=like.dtype, device=like.device)
    norm = direction.norm()
    return direction / norm if float(norm) > 0 else direction
