"""Trying drafts: forward and backward once on CPU, the first draft that runs, made finite."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from types import FrameType
from typing import TYPE_CHECKING, Any

from gradcheck_cli.engine.describe import summary
from gradcheck_cli.init.drafting import Guess
from gradcheck_cli.init.symbols import POSITIVE
from gradcheck_cli.streams import user_output_to_stderr

if TYPE_CHECKING:
    from gradcheck_cli.specs.specfile import InputSpec, Keywords
    from gradcheck_cli.target.discovery import Target

NON_FINITE = "forward returned non-finite values"
# Drafted inputs are small: forward and backward that take longer than this on them
# loop, or wait on something; `init` must not hang on them. Generous, as a loaded CI
# machine (or a first call into a big kernel) may be slow; a zero-config run tries drafts
# with it too, and a correct op must not be turned away.
TRIAL_SECONDS = 20.0


TIMED_OUT = "TimeoutError"


class TrialTimeout(BaseException):
    """The trial ran past its time limit (a BaseException: the user's `except Exception`
    in a loop must not swallow it)."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TrialTimeout in the block after `seconds`, where SIGALRM can (the main thread
    of a POSIX process); a timer already set (pytest-timeout's) gets its time back."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not \
            threading.main_thread():
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        raise TrialTimeout

    previous = signal.signal(signal.SIGALRM, expired)
    before, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        left, _ = signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if before:
            signal.setitimer(signal.ITIMER_REAL, max(before - (seconds - left), 0.001))


def trial(target: Target, specs: list[InputSpec]) -> str | None:
    """Run forward and backward once on CPU; None when they run, else what went wrong."""
    return run_once(target, tuple(specs))[0]


def run_once(target: Target, specs: tuple[InputSpec, ...],
             init: dict[str, Any] | None = None, kwargs: Keywords = ()
             ) -> tuple[str | None, set[int]]:
    """Run forward and backward once on CPU (an nn.Module built with `init`, else its
    defaults). What went wrong (None when both ran, a TimeoutError past TRIAL_SECONDS),
    and the positions of the inputs that require grad but got no gradient from backward."""
    try:
        return _run_once(target, specs, init, kwargs)
    except TrialTimeout:
        return (f"{TIMED_OUT}: forward/backward still running after {TRIAL_SECONDS:g}s, the "
                "limit for a trial run (a loop that never ends?)"), set()


def _run_once(target: Target, specs: tuple[InputSpec, ...], init: dict[str, Any] | None,
              kwargs: Keywords = ()) -> tuple[str | None, set[int]]:
    import torch

    from gradcheck_cli.engine.inputs import build_inputs
    from gradcheck_cli.engine.vjp import vjp
    from gradcheck_cli.target.module import module_target

    try:
        built = build_inputs(target, specs, 0, "cpu", kwargs)
        checked, args = target, list(built.args)
        if built.layout is not None:
            checked = replace(target, layout=built.layout)
        with user_output_to_stderr(), time_limit(TRIAL_SECONDS):
            if target.kind == "module":
                checked, args, _ = module_target(target, args, built.names, init or {}, 0,
                                                 "cpu", built.layout)
            out = checked.call(*args)
            outs = out if isinstance(out, (tuple, list)) else (out,)
            tensors = [o for o in outs if isinstance(o, torch.Tensor)]
            for o in tensors:
                if (o.is_floating_point() or o.is_complex()) and not bool(
                        torch.isfinite(o.detach()).all()):
                    return NON_FINITE, set()
            diff_out = [o for o in tensors if o.requires_grad]
            positions = [i for i, a in enumerate(built.args)
                         if isinstance(a, torch.Tensor) and a.requires_grad]
            # A custom op without an autograd formula: its checks differentiate nothing,
            # and opcheck needs only a forward that runs.
            if not diff_out or not positions or not getattr(target, "differentiable", True):
                return None, set()
            grads = vjp(diff_out, [args[i] for i in positions],
                        [torch.ones_like(o) for o in diff_out])
    except (Exception, SystemExit, GeneratorExit) as exc:
        # An exit in the user's forward is its failure, not the end of `init`. (Their own
        # KeyboardInterrupt goes up: only the caller can tell it from Ctrl-C.)
        return summary(exc)[:200], set()
    return None, {i for i, g in zip(positions, grads) if g is None}


def with_domain(specs: list[InputSpec]) -> list[InputSpec]:
    """The specs with every tensor that has no range drawn from the positive domain."""
    from gradcheck_cli.specs.specfile import TensorInput

    return [replace(s, low=POSITIVE[0], high=POSITIVE[1])
            if isinstance(s, TensorInput) and s.low is None else s for s in specs]


def first_that_runs(target: Target, tried: list[Guess]) -> tuple[Guess, str | None]:
    """The first guess forward and backward run with (widened into forward's domain when
    its outputs are not finite), marking what differs from the first guess; else the
    first guess and its error."""
    from gradcheck_cli.specs.specfile import TensorInput

    first_error: str | None = None
    seen: list[list[InputSpec]] = []
    for candidate in tried:
        if candidate.specs in seen:
            continue
        seen.append(candidate.specs)
        specs, comments = candidate.specs, list(candidate.comments)
        problem = trial(target, specs)
        if problem == NON_FINITE:
            widened = with_domain(specs)
            if trial(target, widened) is None:
                comments = [c + "; low/high keep forward finite" if w != s else c
                            for c, s, w in zip(comments, specs, widened)]
                specs, problem = widened, None
        if problem is None:
            for i, (spec, base) in enumerate(zip(specs, tried[0].specs)):
                if (isinstance(spec, TensorInput) and isinstance(base, TensorInput)
                        and spec.shape != base.shape):
                    comments[i] = "TODO: check it; found by trying (forward runs with it)"
            todo = [t or c.startswith("TODO") for t, c in zip(candidate.todo, comments)]
            return Guess(specs, comments, todo, candidate.notes, candidate.biases), None
        first_error = first_error or problem
        if problem is not None and problem.startswith(TIMED_OUT):
            break  # other shapes would loop the same way, each costing the whole limit
    return tried[0], first_error
