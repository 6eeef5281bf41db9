"""opcheck: torch.library.opcheck's tests of a custom op, each its own result, in plain words.

opcheck tests how an op is registered (schema, autograd registration, fake kernel, tracing
under torch.compile), never whether its backward is right: gradcheck does that. Each test
runs on the check's inputs; torch's error becomes what it means and the likely fix, and a
wrong fake kernel is told by comparing its outputs' metadata with the real outputs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gradcheck_cli.engine.contract import explain
from gradcheck_cli.engine.describe import first_line, safe_str, summary
from gradcheck_cli.engine.outcome import CheckContext, Outcome
from gradcheck_cli.results import Status
from gradcheck_cli.target.custom_op import OpTarget
from gradcheck_cli.target.discovery import user_frame

TESTS = ("schema", "autograd_registration", "faketensor", "aot_dispatch_dynamic")
NO_FAKE = ("no fake impl", "no fake kernel", "does not have a fake", "no abstract impl")


def run_schema(context: CheckContext) -> Outcome:
    return opcheck(context, "schema")


def run_autograd_registration(context: CheckContext) -> Outcome:
    return opcheck(context, "autograd_registration")


def run_faketensor(context: CheckContext) -> Outcome:
    return opcheck(context, "faketensor")


def run_aot_dispatch_dynamic(context: CheckContext) -> Outcome:
    return opcheck(context, "aot_dispatch_dynamic")


def run(context: CheckContext) -> Outcome:
    """All of the tests as one outcome: the first that does not pass, else a pass."""
    outcomes = [opcheck(context, test) for test in TESTS]
    for outcome in outcomes:
        if outcome.status is not Status.PASSED and outcome.status is not Status.SKIPPED:
            return outcome
    return next((o for o in outcomes if o.status is Status.PASSED), outcomes[0])


def opcheck(context: CheckContext, test: str) -> Outcome:
    """Run one of opcheck's tests (`schema`, ...) on the context's op and inputs."""
    target = context.target
    if not isinstance(target, OpTarget):
        return Outcome(Status.SKIPPED, f"{target.name} is not a custom op (torch.library): "
                                       "opcheck tests only those")
    tester = getattr(torch.library, "opcheck", None)
    if tester is None:
        return Outcome(Status.SKIPPED, f"this torch ({torch.__version__}) has no "
                                       "torch.library.opcheck (it came in torch 2.4)")
    # Without an autograd formula only the registration test looks at gradients; the others
    # get inputs that need none, so that tracing does not stop at the missing backward.
    grads = target.differentiable or test == "autograd_registration"
    args, kwargs = target.pack(_fresh(context.args, grads))
    if test == "autograd_registration" and not _any_requires_grad(args, kwargs):
        return Outcome(Status.SKIPPED, "no input requires grad, so there is no autograd "
                                       "registration to test")
    try:  # a kernel that raises on these inputs is an error of its own, not a test's failure
        target.call(*_fresh(context.args, False))
    except Exception as exc:
        why = explain(exc, target, context.names, "forward")
        return Outcome(Status.ERROR, why.message, location=why.location)
    try:
        found = tester(target.overload, tuple(args), kwargs, test_utils=(f"test_{test}",),
                       raise_exception=False)
    except Exception as exc:  # opcheck refusing the op itself (several overloads, ...)
        return Outcome(Status.ERROR, f"torch.library.opcheck could not test "
                                     f"`{target.qualname}`: {summary(exc)}",
                       location=target.forward_location)
    verdict = found.get(f"test_{test}")
    if verdict == "SUCCESS" or verdict is None:
        return Outcome(Status.PASSED, f"`{target.qualname}` passes torch.library.opcheck's "
                                      f"test_{test}")
    return TRANSLATE[test](target, verdict, args, kwargs)


def _fresh(args: list[Any], grads: bool) -> list[Any]:
    """Copies of the inputs (opcheck runs the op several times; none may see another's
    changes), requiring grad as the check's inputs do when `grads`, else not at all."""
    def copy(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            fresh = value.detach().clone()
            return fresh.requires_grad_(value.requires_grad and grads)
        if isinstance(value, list):
            return [copy(v) for v in value]
        return value

    return [copy(a) for a in args]


def _any_requires_grad(args: list[Any], kwargs: dict[str, Any]) -> bool:
    import torch.utils._pytree as pytree

    return any(t.requires_grad for t in pytree.tree_leaves((args, kwargs))
               if isinstance(t, torch.Tensor))


def _torch_said(exc: BaseException) -> str:
    return f"(torch: {first_line(exc)[:300]})"


def _failed(message: str, location: str | None) -> Outcome:
    return Outcome(Status.FAILED, message, location=location)


def _raised(target: OpTarget, exc: BaseException, what: str, location: str) -> Outcome:
    """A failure torch did not explain: the exception, at the line of the user's code that
    raised it (the fake kernel, backward, ...) when it came from there."""
    file, line = user_frame(exc, target.file)
    here = file is not None and Path(file).resolve() == target.file.resolve()
    if here:
        return _failed(f"{what}: {summary(exc)}, raised at line {line}", f"{target.file}:{line}")
    return _failed(f"{what}: {summary(exc)}", location)


def _schema(target: OpTarget, exc: BaseException, args: list[Any],
            kwargs: dict[str, Any]) -> Outcome:
    text = safe_str(exc)
    said = _torch_said(exc)
    mutated = re.search(r"Argument (\w+) is not defined as mutable but was mutated", text)
    if mutated:
        name = mutated.group(1)
        return _failed(f"the kernel changes its input `{name}` in place, but the op does not "
                       f"declare it: add \"{name}\" to mutates_args (or change a copy: "
                       f"{name} = {name}.clone()) {said}", target.forward_location)
    if any(s in text for s in ("must not also be an input", "may not alias",
                               "directly return inputs", "but was aliasing")):
        return _failed("the kernel returns one of its inputs (or a view of one) as an "
                       "output; a custom op's outputs must be new tensors: return x.clone() "
                       f"rather than x, x.view(...) or x[...] {said}", target.forward_location)
    both = re.search(r"Outputs (\d+) and (\d+) alias", text)
    if both:
        return _failed(f"outputs {both.group(1)} and {both.group(2)} are the same tensor (or "
                       f"views of one): return a clone for one of them {said}",
                       target.forward_location)
    return _raised(target, exc, "the op does not do what its schema says",
                   target.forward_location)


def _autograd_registration(target: OpTarget, exc: BaseException, args: list[Any],
                           kwargs: dict[str, Any]) -> Outcome:
    if "NYI devices" in safe_str(exc):
        return Outcome(Status.SKIPPED, f"opcheck tests autograd registration on CPU and "
                                       f"CUDA inputs only {_torch_said(exc)}")
    if "autograd kernel" in safe_str(exc):
        return _failed(
            f"{target.name}'s outputs require grad, but no autograd formula is registered "
            "for it: autograd recorded the torch ops inside its kernel, which torch does not "
            "support for custom ops (gradients can be silently wrong, under torch.compile "
            "above all). Register one with torch.library.register_autograd (or, for plain "
            "torch code, use a Python function rather than an op)", target.forward_location)
    return _raised(target, exc, "the op's autograd registration is wrong",
                   target.forward_location)


def _faketensor(target: OpTarget, exc: BaseException, args: list[Any],
                kwargs: dict[str, Any]) -> Outcome:
    text = safe_str(exc)
    if _no_fake(target, exc):
        how = (f"@{target.name}.register_fake" if hasattr(target.obj, "register_fake")
               else f"@torch.library.register_fake(\"{target.qualname}\")")
        return _failed(f"{target.name} (`{target.qualname}`) has no fake kernel, so "
                       "torch.compile, torch.export and FX tracing cannot run it. Register "
                       f"one with {how}: a function of the same arguments returning empty "
                       "tensors of the outputs' shapes and dtypes (torch.empty_like(x) for "
                       "an elementwise op)", target.forward_location)
    if "metadata" in text.lower() or type(exc).__name__ == "MetadataMismatchError":
        mismatch = fake_mismatch(target, args, kwargs)
        if mismatch:
            return _failed(f"{mismatch} {_torch_said(exc)}", target.fake_location)
    if _reads_values(text):
        return _failed("the fake kernel reads the values of its inputs (.item(), .tolist(), "
                       "numpy, data_ptr), which fake tensors do not have: compute the output "
                       "shapes from the input shapes alone (a size that depends on values: "
                       f"torch.library.get_ctx().new_dynamic_size()) {_torch_said(exc)}",
                       target.fake_location)
    return _raised(target, exc, "the fake kernel does not match the op", target.fake_location)


def _aot_dispatch_dynamic(target: OpTarget, exc: BaseException, args: list[Any],
                          kwargs: dict[str, Any]) -> Outcome:
    text = safe_str(exc)
    if _no_fake(target, exc):
        return Outcome(Status.SKIPPED, "torch.compile needs a fake kernel to trace the op, "
                                       "and it has none (opcheck:faketensor says so)")
    if "Gradients of the operator are different" in text:
        return _failed("under torch.compile the op's gradients differ from those it gives "
                       "when called directly: the backward given to register_autograd must "
                       "be traceable (torch ops on the tensors saved on ctx; no .item(), "
                       "numpy, data_ptr or Python state)", target.backward_location)
    if "Outputs of the operator are different" in text:
        return _failed("under torch.compile the op returns other values than when called "
                       "directly: its kernel or fake kernel depends on something tracing "
                       "does not see (state kept between calls, random numbers, a global); "
                       "keep it a function of its inputs alone", target.forward_location)
    if _reads_values(text):
        return _failed("the fake kernel reads the values of its inputs (.item(), .tolist(), "
                       "numpy), which tracing cannot see: compute the output shapes from the "
                       f"input shapes alone {_torch_said(exc)}", target.fake_location)
    mismatch = fake_mismatch(target, args, kwargs)
    if mismatch:  # whatever tracing stumbled on next, the cause is the fake kernel
        return _failed("torch.compile traced the op with its fake kernel's outputs, which do "
                       f"not match the real ones: {mismatch} {_torch_said(exc)}",
                       target.fake_location)
    return _raised(target, exc, "torch.compile (AOT dispatch, dynamic shapes) could not run "
                   "the op", target.forward_location)


def _no_fake(target: OpTarget, exc: BaseException) -> bool:
    """Whether the op has no fake kernel: a custom_op says so, a define-style op without
    one is an operator FakeTensor does not support."""
    text = safe_str(exc)
    return any(s in text for s in NO_FAKE) or (
        type(exc).__name__ == "UnsupportedOperatorException"
        and str(target.overload) in text)


def _reads_values(text: str) -> bool:
    return any(s in text for s in ("data-dependent", "data dependent", "DataDependent",
                                   "data pointer", "_local_scalar_dense", "item()",
                                   "unbacked symbol"))


TRANSLATE: dict[str, Callable[[OpTarget, BaseException, list[Any], dict[str, Any]], Outcome]] = {
    "schema": _schema, "autograd_registration": _autograd_registration,
    "faketensor": _faketensor, "aot_dispatch_dynamic": _aot_dispatch_dynamic}


def fake_mismatch(target: OpTarget, args: list[Any], kwargs: dict[str, Any]) -> str | None:
    """How the fake kernel's outputs differ from the real ones (shape, dtype, device,
    strides), in the user's words; None when they agree or the fake kernel cannot run."""
    import torch.utils._pytree as pytree
    from torch._subclasses.fake_tensor import FakeTensorMode

    op = target.overload

    def copies() -> Any:
        return pytree.tree_map_only(torch.Tensor, lambda t: t.detach().clone(), (args, kwargs))

    try:
        with torch.no_grad():
            real_args, real_kwargs = copies()
            real = op(*real_args, **real_kwargs)
            mode = FakeTensorMode()
            fake_args, fake_kwargs = pytree.tree_map_only(torch.Tensor, mode.from_tensor,
                                                          copies())
            with mode:
                fake = op(*fake_args, **fake_kwargs)
    except Exception:  # the fake kernel raising is told from torch's own message
        return None
    reals, fakes = pytree.tree_leaves(real), pytree.tree_leaves(fake)
    if len(reals) != len(fakes):
        return (f"your register_fake returns {len(fakes)} output(s) but the op returns "
                f"{len(reals)}")
    for index, (r, f) in enumerate(zip(reals, fakes)):
        if not (isinstance(r, torch.Tensor) and isinstance(f, torch.Tensor)):
            continue
        which = "" if len(reals) == 1 else f" (output {index})"
        for what, mine, theirs in (("shape", tuple(f.shape), tuple(r.shape)),
                                   ("dtype", _dtype(f.dtype), _dtype(r.dtype)),
                                   ("device", str(f.device), str(r.device))):
            if mine != theirs:
                return (f"your register_fake returns {what} {mine} but the op returns "
                        f"{theirs}{which}")
        if f.stride() != r.stride() and f.numel() > 1:
            return (f"your register_fake returns strides {f.stride()} but the op returns "
                    f"{r.stride()}{which}: lay the fake outputs out as the kernel does "
                    "(torch.empty_like, x.new_empty, .contiguous())")
    return None


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")
