"""Benchmark: reference mode (autograd through forward) at scale, and a default run of ten
mid-size ops next to a one-process loop of torch.autograd.gradcheck + gradgradcheck.

Run from the project root:

    python benchmarks/bench_reference.py             # everything (about 10 minutes on 2 cores)
    python benchmarks/bench_reference.py --quick     # fewer seeds, no 10^7, one corpus round
    python benchmarks/bench_reference.py --only big  # one table: big, detect, alarms, corpus

Tables:
  big     three 300x300 inputs of a*b + sin(c), gradcheck and gradgradcheck in auto mode
          (reference), each in a child process: per-input errors, time, peak RSS;
  detect  sin whose backward is wrong at ONE element (x2, x1.1) of 10^6, and sin whose
          backward's own derivative is wrong at one element (gradgradcheck), 10 seeds:
          found, the element named (its exact index), the check's time;
  alarms  right sin, tanh, matmul and softmax at 10^3..10^7 elements, gradcheck (and
          gradgradcheck up to 10^6) in auto mode: failures should be 0;
  corpus  benchmarks/mid_ops.py (linear, layernorm, softmax, GELU, attention, conv1d,
          logsumexp, RMSNorm, SiLU, bilinear): `gradcheck-cli` (default run, -j auto)
          against a hand-written loop in one process, alternated, medians compared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from gradcheck_cli.engine.checks.gradcheck import gradcheck  # noqa: E402
from gradcheck_cli.engine.checks.gradgradcheck import gradgradcheck  # noqa: E402
from gradcheck_cli.engine.outcome import Outcome, Tolerances  # noqa: E402
from gradcheck_cli.results import Status  # noqa: E402
from gradcheck_cli.target.discovery import Target, import_file, resolve  # noqa: E402

SCALE_OPS = HERE / "scale_ops.py"
MID_OPS = HERE / "mid_ops.py"
BUDGET = (1 << 30) // 16  # the CLI's default --max-memory, 1 GiB, in Jacobian elements


def target(name: str, path: Path = SCALE_OPS) -> Target:
    found = resolve(import_file(path), path.resolve(), name)
    assert found is not None, name
    return found


def uniform(generator: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    values = (torch.rand(*shape, generator=generator, dtype=torch.float64) * 2 - 1) * scale
    return values.requires_grad_()


def check(name: str, args: list[Any], order: str, seed: int) -> tuple[Outcome, float]:
    """One check in auto mode (reference for these Functions), and its seconds."""
    names = [f"a{i}" for i in range(len(args))]
    started = time.perf_counter()
    if order == "first":
        outcome = gradcheck(target(name), args, names, Tolerances(), BUDGET, seed=seed)
    else:
        outcome = gradgradcheck(target(name), args, names, Tolerances(), BUDGET, seed)
    return outcome, time.perf_counter() - started


# ---------------------------------------------------------------------------- big
def big_child(side: int, order: str) -> None:
    """In a child process: MulAddSin on three side x side inputs; one JSON line."""
    generator = torch.Generator().manual_seed(0)
    args = [uniform(generator, side, side) for _ in range(3)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    outcome, seconds = check("MulAddSin", args, order, 0)
    print(json.dumps({
        "status": outcome.status.value, "mode": outcome.mode, "seconds": seconds,
        "rss_before": before, "message": outcome.message,
        "inputs": [(e.name, e.max_abs_error, e.max_rel_error) for e in outcome.inputs]}))


def big(side: int, threads: int) -> None:
    print(f"\nbig: three {side}x{side} inputs of a*b + sin(c), auto mode, each check in a "
          "child process (peak RSS: getrusage of the children)")
    for order in ("first", "second"):
        command = [sys.executable, str(Path(__file__).resolve()), "--big-child", str(side),
                   "--order", order, "--threads", str(threads)]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        if done.returncode != 0:
            print(f"  {order} order: the child failed: {done.stderr[-1500:]}")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        errors = ", ".join(f"{n} {a:.2g}" for n, a, _ in result["inputs"])
        which = "gradcheck" if order == "first" else "gradgradcheck"
        print(f"  {which}: {result['status']} ({result['mode']}) in {result['seconds']:.2f}s "
              f"({wall:.1f}s with start-up), peak RSS {peak / 2**20:.0f} MB "
              f"({result['rss_before'] / 2**20:.0f} MB before the check); max abs errors "
              f"{errors}", flush=True)


# ------------------------------------------------------------------------- detect
def detect(size: int, seeds: int) -> None:
    print(f"\ndetect: one wrong element among {size:,} (its index drawn per seed), "
          f"{seeds} seeds, auto mode")
    print(f"  {'check':13} {'bug':5} {'found':>6} {'named':>6} {'median':>8} {'max':>8} "
          f"{'modes':>10}")
    rows = [("SinOneWrong", "first", 2.0), ("SinOneWrong", "first", 1.1),
            ("SinSecondOrderOneWrong", "second", 2.0), ("SinSecondOrderOneWrong", "second", 1.1)]
    for name, order, factor in rows:
        found = named = 0
        seconds: list[float] = []
        modes: set[str] = set()
        for seed in range(seeds):
            generator = torch.Generator().manual_seed(seed)
            x = uniform(generator, size)
            index = int(torch.randint(0, size, (1,), generator=generator))
            outcome, spent = check(name, [x, index, factor], order, seed)
            seconds.append(spent)
            modes.add(outcome.mode)
            failed = outcome.status is Status.FAILED
            found += failed
            worst = outcome.inputs[0].worst if outcome.inputs else None
            named += failed and worst is not None and worst.input_index == [index]
        which = "gradcheck" if order == "first" else "gradgradcheck"
        print(f"  {which:13} x{factor:<4g} {found:>3}/{seeds:<2} {named:>3}/{seeds:<2} "
              f"{statistics.median(seconds):>7.2f}s {max(seconds):>7.2f}s "
              f"{'/'.join(sorted(modes)):>10}", flush=True)


# ------------------------------------------------------------------------- alarms
def right_args(name: str, size: int, seed: int) -> list[Any]:
    generator = torch.Generator().manual_seed(seed)
    if name in ("Sin", "Tanh"):
        return [uniform(generator, size)]
    if name == "MatMul":  # x (size/64 x 64) @ w (64 x 64)
        return [uniform(generator, size // 64, 64), uniform(generator, 64, 64)]
    return [uniform(generator, size // 64, 64, scale=3.0)]  # Softmax over rows of 64


def alarms(sizes: list[int], seeds: int, second_up_to: int) -> None:
    print(f"\nalarms: right Functions, {seeds} seeds per row, auto mode (failures should be "
          "0; matmul is x(size/64 x 64) @ w(64 x 64), softmax over rows of 64)")
    print(f"  {'function':9} {'elements':>12} {'order':>6} {'failed':>7} {'median':>8} "
          f"{'modes':>10}")
    for name in ("Sin", "Tanh", "MatMul", "Softmax"):
        for size in sizes:
            for order in ("first", "second"):
                if order == "second" and size > second_up_to:
                    continue
                failed = 0
                seconds: list[float] = []
                modes: set[str] = set()
                for seed in range(seeds):
                    outcome, spent = check(name, right_args(name, size, seed), order, seed)
                    failed += outcome.status is not Status.PASSED
                    seconds.append(spent)
                    modes.add(outcome.mode)
                print(f"  {name.lower():9} {size:>12,} {order:>6} {failed:>3}/{seeds:<3} "
                      f"{statistics.median(seconds):>7.2f}s {'/'.join(sorted(modes)):>10}",
                      flush=True)


# ------------------------------------------------------------------------- corpus
HAND_LOOP = textwrap.dedent('''
    import importlib.util, sys
    import torch
    spec = importlib.util.spec_from_file_location("mid_ops", sys.argv[1])
    ops = importlib.util.module_from_spec(spec); spec.loader.exec_module(ops)
    ok = 0
    for name, shapes in ops.SHAPES.items():
        g = torch.Generator().manual_seed(0)
        inputs = tuple((torch.rand(s, generator=g, dtype=torch.float64) * 2 - 1)
                       .requires_grad_() for s in shapes)
        fn = getattr(ops, name).apply
        ok += torch.autograd.gradcheck(fn, inputs)
        ok += torch.autograd.gradgradcheck(fn, inputs)
    print(ok)
''')


def _spec(shapes: dict[str, list[list[int]]]) -> str:
    lines = ["module: mid_ops.py", "defaults: {devices: [cpu], seed: 0}", "functions:"]
    for name, inputs in shapes.items():
        lines.append(f"  {name}:")
        lines.append("    inputs:")
        lines.extend(f"      - {{shape: {shape}}}" for shape in inputs)
    return "\n".join(lines) + "\n"


def corpus(rounds: int) -> None:
    sys.path.insert(0, str(HERE))
    import mid_ops

    folder = Path(tempfile.mkdtemp(prefix="gradcheck-reference-"))
    shutil.copy(MID_OPS, folder / "mid_ops.py")
    (folder / "mid.yaml").write_text(_spec(mid_ops.SHAPES), encoding="utf-8")
    tool = [sys.executable, "-m", "gradcheck_cli", "mid.yaml", "--no-cache"]
    runs = {"gradcheck-cli (default run, -j auto)": tool,
            "gradcheck-cli --check gradcheck --check gradgradcheck":
                [*tool, "--check", "gradcheck", "--check", "gradgradcheck"],
            "torch gradcheck + gradgradcheck loop, one process":
                [sys.executable, "-c", HAND_LOOP, str(folder / "mid_ops.py")]}
    times: dict[str, list[float]] = {label: [] for label in runs}
    print(f"\ncorpus: {len(mid_ops.SHAPES)} mid-size ops (benchmarks/mid_ops.py), "
          f"{rounds} round(s), alternated", flush=True)
    for _ in range(rounds):
        for label, command in runs.items():
            started = time.perf_counter()
            done = subprocess.run(command, cwd=folder, capture_output=True, text=True,
                                  env={**os.environ, "CI": "1"}, check=False)
            times[label].append(time.perf_counter() - started)
            if done.returncode != 0:
                print(f"  {label}: exit {done.returncode}\n{done.stdout[-1500:]}")
    json_run = subprocess.run([*tool, "--format", "json"], cwd=folder, capture_output=True,
                              text=True, check=False)
    results = json.loads(json_run.stdout)["results"]
    counts: dict[tuple[str, str, str], int] = {}
    for r in results:
        key = (r["check"], r["status"], r["mode"])
        counts[key] = counts.get(key, 0) + 1
    medians = {label: statistics.median(values) for label, values in times.items()}
    for label, values in times.items():
        print(f"  {label:56} {medians[label]:8.2f}s   ({' '.join(f'{v:.2f}' for v in values)})")
    hand = medians["torch gradcheck + gradgradcheck loop, one process"]
    for label in list(runs)[:2]:
        print(f"  {label}: {hand / medians[label]:.1f}x faster than the torch loop "
              "(target >= 3x)")
    shown = ", ".join(f"{n} {c} {s} ({m})" for (c, s, m), n in sorted(counts.items()))
    print(f"  the default run's results: {shown}")
    shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("big", "detect", "alarms", "corpus"))
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1, as the tool's worker processes run)")
    parser.add_argument("--rounds", type=int, default=None, help="corpus rounds (default 2)")
    parser.add_argument("--big-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--order", default="first", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    torch.set_num_threads(options.threads)
    if options.big_child is not None:
        big_child(options.big_child, options.order)
        return 0
    quick = options.quick
    print(f"gradcheck-cli reference-mode benchmark: torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, {options.threads} torch thread(s), load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    started = time.perf_counter()
    if options.only in (None, "big"):
        big(300, options.threads)  # first: a child's ru_maxrss starts from the parent's
    check("Sin", right_args("Sin", 10_000, 0), "first", 0)  # warm-up, outside the timings
    if options.only in (None, "detect"):
        detect(10 ** 6, 3 if quick else 10)
    if options.only in (None, "alarms"):
        sizes = [10 ** k for k in range(3, 7 if quick else 8)]
        alarms(sizes, 1 if quick else 3, 10 ** 6)
    if options.only in (None, "corpus"):
        corpus(options.rounds or (1 if quick else 2))
    print(f"\ntotal {time.perf_counter() - started:.0f}s, load average now "
          f"{os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
