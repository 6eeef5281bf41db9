"""--save-repro: a standalone script per failed result that rebuilds its inputs and calls torch.

The script depends on torch alone (not on gradcheck-cli): it can go into a bug report.
Inputs are redrawn exactly as gradcheck-cli draws them (same generator, same order).
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Any

from gradcheck_cli.engine.checks import CHECKS
from gradcheck_cli.report.files import Folder, Warn, warn_on_stderr
from gradcheck_cli.report.naming import unique_stem
from gradcheck_cli.results import CheckResult, Status
from gradcheck_cli.specs.specfile import (
    DEFAULT_HIGH,
    DEFAULT_INT_HIGH,
    DEFAULT_INT_LOW,
    DEFAULT_LOW,
)

# Names from the spec (Function, case, inputs) and paths enter the script only as repr()
# string literals, never in a docstring, comment or identifier: a case name must not be
# able to write code into a script the user runs.
TEMPLATE = '''"""Reproduces one gradcheck-cli result (RESULT below) with torch.autograd only.

Written by gradcheck-cli --save-repro. Run this file with python.
"""

import datetime
import importlib
import importlib.util
import sys

import torch

RESULT = {what!r}
MODULE = {module!r}
FUNCTION = {function!r}
OP = {op!r}  # a torch.library op, called through torch.ops by its qualified name
sys.path.insert(0, {root!r})
if {dotted!r} != "":
    # The file is part of a package: import it as such, so its relative imports work.
    user_module = importlib.import_module({dotted!r})
else:
    spec = importlib.util.spec_from_file_location("user_module", MODULE)
    user_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(user_module)
target = getattr(user_module, FUNCTION) if OP is None \\
    else getattr(getattr(torch.ops, OP.split("::")[0]), OP.split("::")[1])
fn = target.apply if isinstance(target, type) and issubclass(target, torch.autograd.Function) \\
    else target
{packing}

generator = torch.Generator().manual_seed({seed})


def uniform(shape, low, high, dtype, avoid=()):
    value = torch.rand(shape, generator=generator, dtype=torch.float64) * (high - low) + low
    margin = max(1e-4, 1e-3 * (high - low))
    for _ in range(100):
        near = torch.zeros(value.shape, dtype=torch.bool)
        for point in avoid:
            near |= (value - point).abs() < margin
        if not near.any():
            break
        value[near] = torch.rand(int(near.sum()), generator=generator,
                                 dtype=torch.float64) * (high - low) + low
    return value.to(dtype)


def complex_uniform(shape, low, high, dtype):
    real = torch.rand(shape, generator=generator, dtype=torch.float64)
    imag = torch.rand(shape, generator=generator, dtype=torch.float64)
    return torch.complex(real * (high - low) + low, imag * (high - low) + low).to(dtype)


inputs = []
INPUT_NAMES = {input_names!r}
{inputs}
inputs = tuple(inputs)
{call}
'''

GRADCHECK = '''ok = torch.autograd.gradcheck(fn, inputs, eps={eps!r}, atol={atol!r}, rtol={rtol!r},
                               raise_exception=False)
print("gradcheck:", ok)
try:
    torch.autograd.gradcheck(fn, inputs, eps={eps!r}, atol={atol!r}, rtol={rtol!r})
except Exception as exc:  # torch's own report of the first mismatch
    print(exc)
'''

GRADGRADCHECK = '''outputs = fn(*inputs)
outputs = outputs if isinstance(outputs, tuple) else (outputs,)
outputs = [o for o in outputs if isinstance(o, torch.Tensor) and o.requires_grad]
grads = torch.Generator().manual_seed({seed} + 1_000_003)
grad_outputs = tuple(
    (torch.rand(o.shape, generator=grads, dtype=torch.float64) * 2 - 1).to(o.dtype)
    .requires_grad_(True) for o in outputs)
ok = torch.autograd.gradgradcheck(fn, inputs, grad_outputs, eps={eps!r}, atol={atol!r},
                                  rtol={rtol!r}, raise_exception=False)
print("gradgradcheck:", ok)
'''

# A script per torch function a check's `torch_call` names; checks without one (or with
# one not here) get no script.
TEMPLATES = {"torch.autograd.gradcheck": GRADCHECK,
             "torch.autograd.gradgradcheck": GRADGRADCHECK}


def template(result: CheckResult) -> str | None:
    """The call that reproduces `result`'s check, or None when no script can."""
    kind = CHECKS.get(result.check)
    return TEMPLATES.get(kind.torch_call or "") if kind is not None else None


def literal(value: Any) -> str:
    """`value` (what YAML's safe loader gives) as Python source that evaluates back to it."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(literal(v) for v in value)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (set, frozenset)):
        return f"set([{', '.join(literal(v) for v in value)}])"
    if isinstance(value, datetime.datetime):
        return f"datetime.datetime.fromisoformat({value.isoformat()!r})"
    if isinstance(value, datetime.date):
        return f"datetime.date.fromisoformat({value.isoformat()!r})"
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return repr(value)
    return repr(str(value))  # nothing else comes out of a safe YAML load


def _input_line(entry: dict[str, Any]) -> str:
    if "value" in entry:
        return f"inputs.append({literal(entry['value'])})"
    shape = tuple(entry["shape"])
    dtype = str(entry["dtype"])
    low = DEFAULT_LOW if entry.get("low") is None else entry["low"]
    high = DEFAULT_HIGH if entry.get("high") is None else entry["high"]
    grad = bool(entry.get("requires_grad"))
    if dtype.startswith("complex"):
        make = f"complex_uniform({shape!r}, {literal(low)}, {literal(high)}, torch.{dtype})"
    elif dtype in ("float64", "float32", "float16", "bfloat16"):
        avoid = literal(tuple(float(v) for v in entry.get("avoid") or ()))
        make = f"uniform({shape!r}, {literal(low)}, {literal(high)}, torch.{dtype}, {avoid})"
    elif dtype == "bool":
        make = f"torch.rand({shape!r}, generator=generator) < 0.5"
    else:
        int_low = DEFAULT_INT_LOW if entry.get("low") is None else int(entry["low"])
        int_high = DEFAULT_INT_HIGH if entry.get("high") is None else int(entry["high"])
        make = (f"torch.randint({int_low}, {int_high}, {shape!r}, generator=generator, "
                f"dtype=torch.{dtype})")
    return f"inputs.append(({make}).requires_grad_({grad}))"


def script(result: CheckResult, module_path: Path, name: str) -> str:
    """The text of a standalone script reproducing `result` with torch.autograd alone."""
    recipe = result.recipe or {}
    lines = "\n".join(_input_line(e) for e in recipe.get("inputs", []))
    seed = result.seed or 0
    call = template(result)
    if call is None:
        raise ValueError(f"no torch call reproduces a {result.check} check")
    call = call.format(eps=_finite(recipe.get("eps"), 1e-6), atol=_finite(recipe.get("atol"), 1e-5),
                       rtol=_finite(recipe.get("rtol"), 1e-3), seed=int(seed))
    from gradcheck_cli.target.discovery import package_root

    root, dotted = package_root(module_path.resolve())
    names = [e.get("name") for e in recipe.get("inputs", [])]
    op = recipe.get("op")
    return TEMPLATE.format(
        op=str(op) if op else None, packing=_packing(recipe.get("layout")),
        what=f"{result.function} [{result.device}, {result.check}, case {result.case}]",
        module=str(module_path.resolve()), root=str(root),
        dotted=dotted if "." in dotted else "", function=str(result.function),
        seed=int(seed), inputs=lines, call=call,
        input_names=[n if n is None else str(n) for n in names],
    )


PACKING = '''
# The check's inputs are flat; the call takes some by name or as lists: [keyword, length].
LAYOUT = {layout}
packed = fn


def fn(*flat):
    args, kwargs, at = [], {{}}, 0
    for keyword, count in LAYOUT:
        value = flat[at] if count is None else list(flat[at:at + count])
        at += 1 if count is None else count
        if keyword is None:
            args.append(value)
        else:
            kwargs[keyword] = value
    return packed(*args, *flat[at:], **kwargs)
'''


def _packing(layout: Any) -> str:
    """The wrapper that passes the flat inputs as the check did, when not one per argument."""
    if not isinstance(layout, list) or not layout:
        return ""
    slots = [(str(k) if k is not None else None, int(n) if n is not None else None)
             for k, n in layout]
    if all(k is None and n is None for k, n in slots):
        return ""
    return PACKING.format(layout=literal([list(s) for s in slots]))


def _finite(value: Any, default: float) -> float:
    # A tolerance is written as a literal: one that is not a finite number has no honest one.
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return default


def save(results: list[CheckResult], folder: Path,
         warn: Warn = warn_on_stderr) -> list[Path]:
    """Write one script per failed result whose check a torch call reproduces; returns
    their paths. A folder that cannot be written (read-only, below a file, a full disk) is
    told to `warn` once and the run's report never depends on it."""
    written: list[Path] = []
    taken: set[str] = set()
    target = Folder(folder, "a repro script", warn)
    for result in results:
        if (result.status is not Status.FAILED or result.recipe is None
                or template(result) is None or not result.module
                or any(e.get("given") for e in result.recipe.get("inputs", []))):
            continue  # values given in code (the API's) cannot be redrawn
        name = f"repro_{unique_stem(result, taken)}.py"
        text = script(result, Path(result.module), name)

        def write(path: Path, text: str = text) -> None:
            path.write_text(text, encoding="utf-8")

        path = target.write(name, write)
        if path is not None:
            written.append(path)
    target.finish()
    return written
