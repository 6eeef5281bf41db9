"""The capability matrix: which autograd features a Function supports, and which work.

Each capability is `ok`, `fail` (with the reason) or `n/a` (not implemented, said as
such), so "no jvp" is never confused with "a wrong jvp".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from gradcheck_cli.engine.checks import double_backward, first_order, jvp
from gradcheck_cli.engine.checks.gradcheck import gradcheck
from gradcheck_cli.engine.checks.gradgradcheck import gradgradcheck
from gradcheck_cli.engine.describe import safe_str, summary
from gradcheck_cli.engine.inputs import make_grad_outputs
from gradcheck_cli.engine.jacobian import as_tuple, is_diff_tensor
from gradcheck_cli.engine.outcome import CheckContext, Outcome, Tolerances
from gradcheck_cli.engine.resources import OutOfMemory, out_of_memory, ran_out
from gradcheck_cli.engine.vjp import vjp
from gradcheck_cli.results import Status
from gradcheck_cli.target.custom_op import OpTarget
from gradcheck_cli.target.discovery import Target

Capability = dict[str, str]
NAMES = ("first_order", "second_order", "forward_ad", "vmap", "undefined_grad",
         "non_contiguous", "cuda", "cpu_cuda_agreement")


def _ok(reason: str = "") -> Capability:
    return {"status": "ok", "reason": reason}


def _fail(reason: str) -> Capability:
    return {"status": "fail", "reason": reason}


def _na(reason: str) -> Capability:
    return {"status": "n/a", "reason": reason}


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _from_outcome(outcome: Outcome) -> Capability:
    if outcome.status.value == "passed":
        return _ok()
    return _fail(_first_line(outcome.message) or outcome.status.value)


def _overrides(target: Target, name: str) -> bool:
    """Whether the Function class defines `name` itself rather than inheriting torch's."""
    for klass in target.obj.__mro__:
        if name in vars(klass):
            return not klass.__module__.startswith("torch.")
    return False


def _fresh(args: list[Any], device: str | None = None,
           transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> list[Any]:
    out = []
    for arg in args:
        if isinstance(arg, torch.Tensor):
            value = arg.detach()
            if device is not None:
                value = value.to(device)
            if transform is not None:
                value = transform(value)
            out.append(value.requires_grad_(arg.requires_grad))
        else:
            out.append(arg)
    return out


def _forward_backward(target: Target, args: list[Any], seed: int
                      ) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    outs = [o for o in as_tuple(target.call(*args)) if is_diff_tensor(o)]
    grads_out = [g.to(o.device) for g, o in zip(make_grad_outputs(tuple(o.cpu() for o in outs),
                                                                  seed), outs)]
    grads = vjp(outs, [a for a in args if is_diff_tensor(a)], grads_out)
    return [o.detach() for o in outs], [None if g is None else g.detach() for g in grads]


def _same(a: list[torch.Tensor | None], b: list[torch.Tensor | None], atol: float = 1e-7,
          rtol: float = 1e-6) -> str | None:
    for index, (x, y) in enumerate(zip(a, b)):
        if x is None and y is None:
            continue
        if x is None or y is None:
            return f"value {index} is missing on one side"
        x, y = x.cpu(), y.cpu()
        if x.shape != y.shape:
            return f"value {index} has shape {tuple(x.shape)} vs {tuple(y.shape)}"
        if not torch.allclose(x, y, atol=atol, rtol=rtol):
            return f"value {index} differs by up to {float((x - y).abs().max()):.3g}"
    return None


def _guard(probe: Callable[[], Capability]) -> Capability:
    try:
        return probe()
    except OutOfMemory:
        raise
    except Exception as exc:
        if out_of_memory(exc):  # no verdict on a capability that had no room to run
            raise ran_out(exc, "") from None
        return _fail(summary(exc))


def run(context: CheckContext) -> Outcome:
    """The capability matrix as an outcome: failed when a feature the Function claims fails."""
    found = matrix(context.target, context.args, context.names, context.tolerances,
                   context.budget, context.seed, context.mode)
    failing = {k: v for k, v in found.items() if v["status"] == "fail"}
    return Outcome(Status.FAILED if failing else Status.PASSED,
                   "; ".join(f"{k}: {v['reason']}" for k, v in failing.items()),
                   capabilities=dict(found))


def matrix(target: Target, args: list[Any], names: list[str], tol: Tolerances,
           budget: int, seed: int, mode: str = "auto") -> dict[str, Capability]:
    """Probe every capability on these inputs (CPU), CUDA ones where CUDA exists.

    `budget` is the bytes of Jacobian a check may hold; `mode` auto, exact or probe.
    """
    if isinstance(target, OpTarget) and target.kind == "custom_op":
        return _op_matrix(target, args, names, tol, budget, seed, mode)
    engine: dict[str, Any] = {"mode": mode, "max_memory": budget, "seed": seed}
    found: dict[str, Capability] = {}
    fresh = _fresh(args)
    found["first_order"] = _from_outcome(first_order.with_linearity(  # as the gradcheck check
        target, fresh, names, tol, seed,
        gradcheck(target, fresh, names, tol, budget // 16, **engine)))
    engine.pop("seed")
    undifferentiable = None if target.once_differentiable else \
        double_backward.undifferentiable(target, args, names, seed)
    if target.once_differentiable:
        found["second_order"] = _na("backward is @once_differentiable")
    elif undifferentiable is not None:  # as the gradgradcheck check says (double_backward)
        found["second_order"] = _na(undifferentiable[0])
    else:
        found["second_order"] = _from_outcome(
            gradgradcheck(target, _fresh(args), names, tol, budget // 16, seed, **engine))
    found["forward_ad"] = _guard(lambda: _forward_ad(target, args, names, tol, budget, seed,
                                                     mode))
    found["vmap"] = _guard(lambda: _vmap(target, args))
    found["undefined_grad"] = _guard(lambda: _undefined(target, args, seed))
    found["non_contiguous"] = _guard(lambda: _non_contiguous(target, args, seed))
    if not torch.cuda.is_available():
        found["cuda"] = _na("CUDA not available")
        found["cpu_cuda_agreement"] = _na("CUDA not available")
    else:
        found["cuda"] = _from_outcome(
            gradcheck(target, _fresh(args, "cuda"), names, tol, budget // 16,
                             mode=mode, max_memory=budget, seed=seed))
        found["cpu_cuda_agreement"] = _guard(lambda: _agreement(target, args, seed))
    return found


# What a custom op's capabilities need: an autograd formula for these.
NEEDS_BACKWARD = ("first_order", "second_order", "undefined_grad", "non_contiguous", "cuda",
                  "cpu_cuda_agreement")


def _op_matrix(target: OpTarget, args: list[Any], names: list[str], tol: Tolerances,
               budget: int, seed: int, mode: str) -> dict[str, Capability]:
    """A custom op's matrix: the Function's capabilities where they apply (n/a, with the
    reason, where they cannot), plus its fake kernel and torch.compile (opcheck's tests)."""
    from gradcheck_cli.engine.checks.opcheck import opcheck

    if target.differentiable:
        # As for a plain callable (what the op is called as); forward-mode AD and vmap
        # are said for the op below.
        found = matrix(replace(target, kind="callable"), args, names, tol, budget, seed, mode)
    else:
        found = {name: _na("no autograd formula registered (torch.library.register_autograd)")
                 for name in NEEDS_BACKWARD}
        found["vmap"] = _guard(lambda: _vmap(replace(target, kind="callable"), args))
    # torch.library has no forward-mode formula for custom ops: jvp through one is zeros.
    found["forward_ad"] = _na(jvp.NO_OP_FORMULA)
    if "Batching rule not implemented" in found["vmap"]["reason"]:
        found["vmap"] = _na("no vmap rule (register_vmap), and torch has no fallback for "
                            "this op's arguments")
    elif getattr(target.obj, "_vmap_fn", True) is None and found["vmap"]["status"] == "ok":
        found["vmap"] = _ok("no register_vmap: torch runs the op once per batch element")
    context = CheckContext(target, args, names, tol, budget, seed, mode)
    fake = opcheck(context, "faketensor")
    if fake.status is Status.FAILED and "has no fake kernel" in fake.message:
        found["fake_kernel"] = _na("no fake kernel registered (register_fake)")
    else:
        found["fake_kernel"] = _from_outcome(fake) if fake.status is not Status.SKIPPED \
            else _na(fake.message)
    traced = opcheck(context, "aot_dispatch_dynamic")
    found["compile"] = _na(traced.message) if traced.status is Status.SKIPPED \
        else _from_outcome(traced)
    return found


def _forward_ad(target: Target, args: list[Any], names: list[str], tol: Tolerances,
                budget: int, seed: int, mode: str) -> Capability:
    """The jvp check's verdict (engine/checks/jvp.py): n/a when it does not apply."""
    try:
        outcome = jvp.run(CheckContext(target, _fresh(args), names, tol, budget, seed, mode))
    except OutOfMemory as exc:  # as for every capability: the question ran out of memory
        raise ran_out(exc.__context__ or exc, "") from None
    if outcome.status is Status.SKIPPED:
        return _na(outcome.message)
    if outcome.status is Status.PASSED:
        return _ok()
    return _fail(f"jvp disagrees with finite differences: {_first_line(outcome.message)}"
                 if outcome.status is Status.FAILED else _first_line(outcome.message))


def _vmap(target: Target, args: list[Any]) -> Capability:
    if target.is_autograd_function and not (getattr(target.obj, "generate_vmap_rule", False)
                                            or _overrides(target, "vmap")):
        return _na("no vmap rule: set `generate_vmap_rule = True` (with setup_context) or "
                   "add a vmap staticmethod")
    batch = 3
    tensors = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
    stacked = [torch.stack([a.detach() * (1 + 0.1 * k) for k in range(batch)])
               if isinstance(a, torch.Tensor) else a for a in args]
    in_dims = tuple(0 if i in tensors else None for i in range(len(args)))
    try:
        batched = as_tuple(torch.func.vmap(target.call, in_dims=in_dims)(*stacked))
    except RuntimeError as exc:
        if "setup_context" in safe_str(exc) or "generate_vmap_rule" in safe_str(exc):
            return _na("a custom Function inside has no vmap rule")
        raise
    for k in range(batch):
        single = as_tuple(target.call(*[s[k] if i in tensors else s
                                        for i, s in enumerate(stacked)]))
        problem = _same([b[k] for b in batched], list(single))
        if problem:
            return _fail(f"vmap result differs from a loop: {problem}")
    return _ok()


def _undefined(target: Target, args: list[Any], seed: int) -> Capability:
    fresh = _fresh(args)
    outs = [o for o in as_tuple(target.call(*fresh)) if is_diff_tensor(o)]
    if len(outs) < 2:
        return _na("one differentiable output: no output gradient can be undefined")
    inputs = [a for a in fresh if is_diff_tensor(a)]
    grads_out = make_grad_outputs(tuple(outs), seed)
    for skipped in range(len(outs)):
        keep = [k for k in range(len(outs)) if k != skipped]
        partial = vjp([outs[k] for k in keep], inputs, [grads_out[k] for k in keep],
                      retain_graph=True)
        zeros = [torch.zeros_like(g) if k == skipped else g for k, g in enumerate(grads_out)]
        full = vjp(outs, inputs, zeros, retain_graph=True)
        problem = _same(list(partial), list(full))
        if problem:
            return _fail(f"with output {skipped}'s gradient undefined, backward differs from "
                         f"treating it as zeros: {problem}")
    return _ok()


def _non_contiguous(target: Target, args: list[Any], seed: int) -> Capability:
    def strided(t: torch.Tensor) -> torch.Tensor:
        # The same values, every other element of a buffer twice as long: non-contiguous.
        holder = torch.zeros((*t.shape[:-1], 2 * t.shape[-1]) if t.dim() else (2,),
                             dtype=t.dtype, device=t.device)
        view = holder[..., ::2] if t.dim() else holder[::2][0]
        view.copy_(t)
        return view

    if not any(isinstance(a, torch.Tensor) and a.dim() for a in args):
        return _na("no tensor input with a dimension to make non-contiguous")
    base_out, base_grads = _forward_backward(target, _fresh(args), seed)
    out, grads = _forward_backward(target, _fresh(args, transform=strided), seed)
    problem = _same(list(base_out), list(out)) or _same(list(base_grads), list(grads))
    return _fail(f"non-contiguous inputs give other results: {problem}") if problem else _ok()


def _agreement(target: Target, args: list[Any], seed: int) -> Capability:
    cpu_out, cpu_grads = _forward_backward(target, _fresh(args, "cpu"), seed)
    gpu_out, gpu_grads = _forward_backward(target, _fresh(args, "cuda"), seed)
    problem = _same(list(cpu_out), list(gpu_out), 1e-6, 1e-5) or _same(
        list(cpu_grads), list(gpu_grads), 1e-6, 1e-5)
    return _fail(f"CPU and CUDA disagree: {problem}") if problem else _ok()
