"""Batch benchmark: gradcheck-cli -j 1, -j auto and a cached re-run, next to a hand-written loop.

Builds a folder of 48 specs of varied size (elementwise, matmul, softmax and two-input
Functions), then times, in one run, on the same Functions, inputs and checks:

  1. gradcheck-cli -j 1 --no-cache        (one worker process)
  2. gradcheck-cli -j auto --no-cache     (one worker per core)
  3. a hand-written loop: one Python process calling torch.autograd.gradcheck and
     gradgradcheck on every Function, as a user would write it
  4. gradcheck-cli (cache on), twice: the second, unchanged run reuses cached passes

Usage: python benchmarks/bench_batch.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

OPS = textwrap.dedent('''
    import torch


    class Tanh(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = torch.tanh(x)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * (1 - y * y)


    class MulAdd(torch.autograd.Function):
        @staticmethod
        def forward(ctx, w, x, b):
            ctx.save_for_backward(w, x)
            return w * x + b

        @staticmethod
        def backward(ctx, g):
            w, x = ctx.saved_tensors
            return g * x, g * w, g


    class Linear(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return x @ w.T

        @staticmethod
        def backward(ctx, g):
            x, w = ctx.saved_tensors
            return g @ w, g.T @ x


    class Softmax(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = torch.softmax(x, dim=-1)
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return y * (g - (g * y).sum(-1, keepdim=True))
''')

# (Function, input shapes) at a few sizes each: 12 Functions x 4 sizes = 48 specs.
SIZES = [4, 8, 12, 16]


def shapes_for(name: str, n: int) -> list[list[int]]:
    if name == "Tanh":
        return [[n, n]]
    if name == "MulAdd":
        return [[n, n], [n, n], [n, n]]
    if name == "Linear":
        return [[n, n // 2 + 1], [n // 2 + 2, n // 2 + 1]]
    return [[n // 2 + 1, n]]


def build(folder: Path) -> list[tuple[str, list[list[int]], int]]:
    (folder / "ops").mkdir(parents=True)
    (folder / "ops" / "ops.py").write_text(OPS)
    plan = []
    index = 0
    for name in ("Tanh", "MulAdd", "Linear", "Softmax"):
        for n in SIZES:
            for seed in range(3):
                shapes = shapes_for(name, n)
                inputs = "\n".join(f"      - {{shape: {s}}}" for s in shapes)
                (folder / f"spec_{index:02d}.yaml").write_text(
                    f"module: ops/ops.py\ndefaults: {{devices: [cpu], seed: {seed}}}\n"
                    f"functions:\n  {name}:\n    inputs:\n{inputs}\n")
                plan.append((name, shapes, seed))
                index += 1
    return plan


HAND_LOOP = textwrap.dedent('''
    import importlib.util, sys, time
    import torch
    spec = importlib.util.spec_from_file_location("ops", sys.argv[1])
    ops = importlib.util.module_from_spec(spec); spec.loader.exec_module(ops)
    plan = eval(sys.argv[2])
    ok = 0
    for name, shapes, seed in plan:
        g = torch.Generator().manual_seed(seed)
        inputs = tuple((torch.rand(s, generator=g, dtype=torch.float64) * 2 - 1)
                       .requires_grad_() for s in shapes)
        fn = getattr(ops, name).apply
        ok += torch.autograd.gradcheck(fn, inputs)
        ok += torch.autograd.gradgradcheck(fn, inputs)
    print(ok)
''')


def timed(command: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "CI": "1"})
    return time.perf_counter() - started, proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the specs here and keep them")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="gradcheck-bench-"))
    if folder.exists() and any(folder.iterdir()):
        shutil.rmtree(folder)
    plan = build(folder)
    tool = [sys.executable, "-m", "gradcheck_cli", "."]
    cache = folder / ".cache"
    rows = []
    for label, extra in (("gradcheck-cli -j 1", ["-j", "1", "--no-cache"]),
                         ("gradcheck-cli -j auto", ["-j", "auto", "--no-cache"])):
        seconds, proc = timed(tool + extra, folder)
        rows.append((label, seconds, proc.returncode))
    seconds, proc = timed([sys.executable, "-c", HAND_LOOP, str(folder / "ops" / "ops.py"),
                           repr(plan)], folder)
    rows.append(("hand-written torch loop", seconds, proc.returncode))
    first, proc1 = timed([*tool, "--cache-dir", str(cache)], folder)
    second, proc2 = timed([*tool, "--cache-dir", str(cache)], folder)
    rows.append(("gradcheck-cli, cache filled (first run)", first, proc1.returncode))
    rows.append(("gradcheck-cli, unchanged re-run (cached)", second, proc2.returncode))
    cores = os.cpu_count()
    print(f"{len(plan)} specs, {2 * len(plan)} checks (gradcheck + gradgradcheck), "
          f"{cores} cores, torch {torch_version()}")
    print(f"{'run':44} {'seconds':>8} {'exit':>5}")
    for label, seconds, code in rows:
        print(f"{label:44} {seconds:8.2f} {code:5d}")
    by = {label: seconds for label, seconds, _ in rows}
    auto_vs_hand = by["hand-written torch loop"] / by["gradcheck-cli -j auto"]
    cache_ratio = first / second
    print(f"-j auto vs hand-written loop: {auto_vs_hand:.2f}x faster (target >= 1.5x)")
    print(f"-j auto vs -j 1: {by['gradcheck-cli -j 1'] / by['gradcheck-cli -j auto']:.2f}x")
    print(f"cached re-run vs first run: {cache_ratio:.1f}x faster (target >= 10x)")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def torch_version() -> str:
    from importlib import metadata

    return metadata.version("torch")


if __name__ == "__main__":
    raise SystemExit(main())
