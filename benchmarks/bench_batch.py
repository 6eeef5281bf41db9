"""Batch benchmark: gradcheck-cli -j 1, -j auto and a cached re-run, next to a hand-written loop.

Builds a folder of 48 specs of varied size (elementwise, matmul, softmax and two-input
Functions), then times, in one run, on the same Functions, inputs and checks:

  1. gradcheck-cli -j 1 --no-cache        (one worker process)
  2. gradcheck-cli -j auto --no-cache     (one worker per core)
  3. a hand-written loop: one Python process calling torch.autograd.gradcheck and
     gradgradcheck on every Function, as a user would write it
  4. gradcheck-cli (cache on), twice: the second, unchanged run reuses cached passes

Runs 1-4 alternate, round after round (--repeat, default 3); the medians are compared, as
this shared machine's speed drifts by 10-20% from minute to minute.

Usage: python benchmarks/bench_batch.py [--repeat N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

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
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of all five runs, alternated; medians are compared")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="gradcheck-bench-"))
    if folder.exists() and any(folder.iterdir()):
        shutil.rmtree(folder)
    plan = build(folder)
    # As any install has it after its first run (see bench_startup.py).
    compileall.compile_dir(ROOT / "gradcheck_cli", quiet=1)
    tool = [sys.executable, "-m", "gradcheck_cli", "."]
    hand = [sys.executable, "-c", HAND_LOOP, str(folder / "ops" / "ops.py"), repr(plan)]
    labels = ["gradcheck-cli -j 1", "gradcheck-cli -j auto", "hand-written torch loop",
              "gradcheck-cli, cache filled (first run)",
              "gradcheck-cli, unchanged re-run (cached)"]
    times: dict[str, list[float]] = {label: [] for label in labels}
    codes: dict[str, set[int]] = {label: set() for label in labels}
    for round_ in range(args.repeat):
        cache = folder / f".cache-{round_}"
        commands = [[*tool, "-j", "1", "--no-cache"], [*tool, "-j", "auto", "--no-cache"], hand,
                    [*tool, "--cache-dir", str(cache)], [*tool, "--cache-dir", str(cache)]]
        for label, command in zip(labels, commands):
            seconds, proc = timed(command, folder)
            times[label].append(seconds)
            codes[label].add(proc.returncode)
    cores = os.cpu_count()
    print(f"{len(plan)} specs, {2 * len(plan)} checks (gradcheck + gradgradcheck), "
          f"{cores} cores, torch {torch_version()}, {args.repeat} rounds")
    print(f"{'run':44} {'median s':>9} {'exit':>5}   each round")
    by = {label: statistics.median(values) for label, values in times.items()}
    for label in labels:
        rounds = " ".join(f"{value:.2f}" for value in times[label])
        exits = ",".join(str(code) for code in sorted(codes[label]))
        print(f"{label:44} {by[label]:9.2f} {exits:>5}   {rounds}")
    auto_vs_hand = by["hand-written torch loop"] / by["gradcheck-cli -j auto"]
    cache_ratio = by[labels[3]] / by[labels[4]]
    rounds = [hand / auto for hand, auto in zip(times["hand-written torch loop"],
                                                 times["gradcheck-cli -j auto"])]
    print(f"-j auto vs hand-written loop: {auto_vs_hand:.2f}x faster (target >= 3x, issue #15); "
          f"round by round: {' '.join(f'{r:.2f}x' for r in rounds)}")
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
