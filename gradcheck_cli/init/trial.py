"""Trying drafts: forward and backward once on CPU, the first draft that runs, made finite."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from gradcheck_cli.init.drafting import Guess
from gradcheck_cli.init.symbols import POSITIVE
from gradcheck_cli.streams import user_output_to_stderr

if TYPE_CHECKING:
    from gradcheck_cli.specs.specfile import InputSpec
    from gradcheck_cli.target.discovery import Target

NON_FINITE = "forward returned non-finite values"


def trial(target: Target, specs: list[InputSpec]) -> str | None:
    """Run forward and backward once on CPU; None when they run, else what went wrong."""
    return run_once(target, tuple(specs))[0]


def run_once(target: Target, specs: tuple[InputSpec, ...],
             init: dict[str, Any] | None = None) -> tuple[str | None, set[int]]:
    """Run forward and backward once on CPU (an nn.Module built with `init`, else its
    defaults). What went wrong (None when both ran), and the positions of the inputs that
    require grad but got no gradient from backward."""
    import torch

    from gradcheck_cli.engine.inputs import build_inputs
    from gradcheck_cli.engine.vjp import vjp
    from gradcheck_cli.target.module import module_target

    try:
        built = build_inputs(target, specs, 0, "cpu")
        checked, args = target, list(built.args)
        with user_output_to_stderr():
            if target.kind == "module":
                checked, args, _ = module_target(target, args, built.names, init or {}, 0,
                                                 "cpu")
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
            if not diff_out or not positions:
                return None, set()
            grads = vjp(diff_out, [args[i] for i in positions],
                        [torch.ones_like(o) for o in diff_out])
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        return f"{type(exc).__name__}: {first}"[:200], set()
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
    return tried[0], first_error
