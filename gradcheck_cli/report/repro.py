"""--save-repro: a standalone script per failed result that rebuilds its inputs and calls torch.

The script depends on torch alone (not on gradcheck-cli): it can go into a bug report.
Inputs are redrawn exactly as gradcheck-cli draws them (same generator, same order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gradcheck_cli.engine.checks import CHECKS
from gradcheck_cli.report import file_stem
from gradcheck_cli.results import CheckResult, Status
from gradcheck_cli.specs.specfile import (
    DEFAULT_HIGH,
    DEFAULT_INT_HIGH,
    DEFAULT_INT_LOW,
    DEFAULT_LOW,
)

TEMPLATE = '''"""Reproduces {what} with torch.autograd only.

Written by gradcheck-cli --save-repro. Run: python {script}
"""

import importlib
import importlib.util
import sys

import torch

MODULE = {module!r}
sys.path.insert(0, {root!r})
if {dotted!r} != "":
    # The file is part of a package: import it as such, so its relative imports work.
    user_module = importlib.import_module({dotted!r})
else:
    spec = importlib.util.spec_from_file_location("user_module", MODULE)
    user_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(user_module)
target = user_module.{function}
fn = target.apply if isinstance(target, type) and issubclass(target, torch.autograd.Function) \\
    else target

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


def _input_line(entry: dict[str, Any]) -> str:
    if "value" in entry:
        return f"inputs.append({entry['value']!r})  # {entry.get('name')}"
    shape = tuple(entry["shape"])
    dtype = str(entry["dtype"])
    low = DEFAULT_LOW if entry.get("low") is None else entry["low"]
    high = DEFAULT_HIGH if entry.get("high") is None else entry["high"]
    grad = bool(entry.get("requires_grad"))
    if dtype.startswith("complex"):
        make = f"complex_uniform({shape!r}, {low!r}, {high!r}, torch.{dtype})"
    elif dtype in ("float64", "float32", "float16", "bfloat16"):
        make = f"uniform({shape!r}, {low!r}, {high!r}, torch.{dtype}, {tuple(entry.get('avoid') or ())!r})"  # noqa: E501
    elif dtype == "bool":
        make = f"torch.rand({shape!r}, generator=generator) < 0.5"
    else:
        int_low = DEFAULT_INT_LOW if entry.get("low") is None else int(entry["low"])
        int_high = DEFAULT_INT_HIGH if entry.get("high") is None else int(entry["high"])
        make = (f"torch.randint({int_low}, {int_high}, {shape!r}, generator=generator, "
                f"dtype=torch.{dtype})")
    return f"inputs.append(({make}).requires_grad_({grad}))  # {entry.get('name')}"


def script(result: CheckResult, module_path: Path, name: str) -> str:
    """The text of a standalone script reproducing `result` with torch.autograd alone."""
    recipe = result.recipe or {}
    lines = "\n".join(_input_line(e) for e in recipe.get("inputs", []))
    seed = result.seed or 0
    call = template(result)
    if call is None:
        raise ValueError(f"no torch call reproduces a {result.check} check")
    call = call.format(eps=recipe.get("eps", 1e-6), atol=recipe.get("atol", 1e-5),
                       rtol=recipe.get("rtol", 1e-3), seed=seed)
    from gradcheck_cli.target.discovery import package_root

    root, dotted = package_root(module_path.resolve())
    return TEMPLATE.format(
        what=f"{result.function} [{result.device}, {result.check}, case {result.case}]",
        script=name, module=str(module_path.resolve()), root=str(root),
        dotted=dotted if "." in dotted else "",
        function=result.function, seed=seed, inputs=lines, call=call,
    )


def save(results: list[CheckResult], folder: Path) -> list[Path]:
    """Write one script per failed result whose check a torch call reproduces; returns
    their paths."""
    written = []
    for result in results:
        if (result.status is not Status.FAILED or result.recipe is None
                or template(result) is None or not result.module):
            continue
        path = folder / f"repro_{file_stem(result)}.py"
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(script(result, Path(result.module), path.name), encoding="utf-8")
        written.append(path)
    return written
