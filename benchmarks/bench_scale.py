"""Benchmark: gradcheck-cli's exact and probe modes at scale, side by side with torch's.

Run from the project root:

    python benchmarks/bench_scale.py            # the full run (about 15 minutes on 2 cores)
    python benchmarks/bench_scale.py --quick    # a short run (about 1 minute)

It prints three tables:
  1. detection power: elementwise sin with one wrong Jacobian entry (x2, x1.1) at 10^3..10^6
     elements: how often each checker fails it, how often gradcheck-cli names the wrong
     element, and the median time per check;
  2. false alarms: right sin, tanh, matmul and softmax at the same sizes;
  3. exact mode on three 300x300 inputs of an elementwise op: per-input max errors, peak
     memory (RSS of a child process) and time, next to what torch's slow mode would need.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
OPS = Path(__file__).resolve().parent / "scale_ops.py"
sys.path.insert(0, str(ROOT))

from gradcheck_cli.engine.checks.gradcheck import gradcheck  # noqa: E402
from gradcheck_cli.engine.outcome import Outcome, Tolerances  # noqa: E402
from gradcheck_cli.results import Status  # noqa: E402
from gradcheck_cli.target.discovery import Target, import_file, resolve  # noqa: E402

TOLERANCES = Tolerances()
BUDGET_ELEMENTS = (1 << 30) // 16  # the CLI's default --max-memory, 1 GiB
SIZES = (1_000, 10_000, 100_000, 1_000_000)


def target(name: str) -> Target:
    found = resolve(import_file(OPS), OPS.resolve(), name)
    assert found is not None, name
    return found


def uniform(generator: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    values = (torch.rand(*shape, generator=generator, dtype=torch.float64) * 2 - 1) * scale
    return values.requires_grad_()


def available_memory() -> int:
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0  # pragma: no cover


def slow_mode_bytes(input_numel: int, output_numel: int) -> int:
    """torch's slow mode holds the dense numerical Jacobian and the analytical one twice
    (it computes it twice to check reentrancy): 3 x inputs x outputs doubles."""
    return 3 * input_numel * output_numel * 8


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.3g} {unit}"
        size /= 1024
    return f"{size:.3g} TB"  # pragma: no cover


@dataclass
class Tally:
    """Verdicts and times of one checker on one row of a table."""

    runs: int = 0
    failed: int = 0
    localized: int = 0
    seconds: list[float] = field(default_factory=list)
    modes: set[str] = field(default_factory=set)
    note: str = ""

    def add(self, failed: bool, seconds: float, localized: bool = False, mode: str = "") -> None:
        self.runs += 1
        self.failed += failed
        self.localized += localized
        self.seconds.append(seconds)
        if mode:
            self.modes.add(mode)

    def median(self) -> str:
        return f"{statistics.median(self.seconds):.2f}s" if self.seconds else "-"


def ours(name: str, args: list[Any], mode: str, seed: int) -> tuple[Outcome, float]:
    names = [f"a{i}" for i in range(len(args))]
    started = time.perf_counter()
    outcome = gradcheck(target(name), args, names, TOLERANCES, BUDGET_ELEMENTS,
                               mode=mode, seed=seed)
    return outcome, time.perf_counter() - started


def torch_check(name: str, args: list[Any], fast: bool) -> tuple[bool, float]:
    """(failed, seconds) of torch.autograd.gradcheck; an exception counts as failed."""
    fn: Callable[..., Any] = target(name).call
    started = time.perf_counter()
    try:
        ok = torch.autograd.gradcheck(fn, tuple(args), fast_mode=fast, raise_exception=False)
    except Exception:
        ok = False
    return not ok, time.perf_counter() - started


def one_wrong(size: int, factor: float, seed: int) -> tuple[list[Any], int]:
    generator = torch.Generator().manual_seed(seed)
    x = uniform(generator, size)
    index = int(torch.randint(0, size, (1,), generator=generator))
    return [x, index, factor], index


def detection(sizes: tuple[int, ...], seeds: int, slow_seeds: int | None, quick: bool) -> None:
    """Table 1. torch's slow mode runs `slow_seeds` seeds (default: all at 10^3, 2 above,
    where one check takes half a minute and several GB; none above 10^3 with --quick),
    and only where it fits memory."""
    print("\n1. Detection: elementwise sin whose backward is wrong at ONE element "
          f"({seeds} seeds; found = the check fails; named = it reports that element; "
          "needs = the dense Jacobians torch's slow mode holds, computed)")
    header = (f"{'elements':>10} {'bug':>5} | {'gradcheck-cli auto':^28} | "
              f"{'gradcheck-cli probe':^22} | {'torch fast_mode':^16} | {'torch slow mode':^26}")
    print(header)
    print(f"{'':>10} {'':>5} | {'found':>6} {'named':>6} {'median':>7} {'mode':>6} | "
          f"{'found':>6} {'named':>6} {'median':>7} | {'found':>6} {'median':>8} | "
          f"{'found':>6} {'median':>8} {'needs':>9}")
    print("-" * len(header))
    available = available_memory()
    for size in sizes:
        slow_runs = (slow_seeds if slow_seeds is not None else
                     seeds if size <= 1000 else 0 if quick else 2)
        for factor in (2.0, 1.1):
            auto, probe, fast, slow = Tally(), Tally(), Tally(), Tally()
            slow_need = slow_mode_bytes(size, size)
            slow_fits = slow_need <= available // 2
            for seed in range(seeds):
                args, index = one_wrong(size, factor, seed)
                outcome, seconds = ours("SinOneWrong", args, "auto", seed)
                auto.add(outcome.status is Status.FAILED, seconds, _named(outcome, index),
                         outcome.mode)
                if outcome.mode == "probe":
                    probe.add(outcome.status is Status.FAILED, seconds, _named(outcome, index))
                else:
                    outcome, seconds = ours("SinOneWrong", args, "probe", seed)
                    probe.add(outcome.status is Status.FAILED, seconds, _named(outcome, index))
                fast.add(*torch_check("SinOneWrong", args, fast=True))
                if slow_fits and seed < slow_runs:
                    slow.add(*torch_check("SinOneWrong", args, fast=False))
            if not slow_fits:
                slow_cells = f"{'does not fit: needs ' + human_bytes(slow_need):>26}"
            elif slow.runs == 0:
                slow_cells = f"{'not run (about 30s each)':>26}"
            else:
                slow_cells = (f"{slow.failed:>3}/{slow.runs:<2} {slow.median():>8} "
                              f"{human_bytes(slow_need):>9}")
            print(f"{size:>10,} {'x' + format(factor, 'g'):>5} | "
                  f"{auto.failed:>3}/{auto.runs:<2} {auto.localized:>3}/{auto.runs:<2} "
                  f"{auto.median():>7} {'/'.join(sorted(auto.modes)):>6} | "
                  f"{probe.failed:>3}/{probe.runs:<2} {probe.localized:>3}/{probe.runs:<2} "
                  f"{probe.median():>7} | {fast.failed:>3}/{fast.runs:<2} {fast.median():>8} | "
                  + slow_cells, flush=True)


def _named(outcome: Outcome, index: int) -> bool:
    worst = outcome.inputs[0].worst if outcome.inputs else None
    return outcome.status is Status.FAILED and worst is not None and worst.input_index == [index]


def right_args(name: str, size: int, seed: int) -> list[Any]:
    generator = torch.Generator().manual_seed(seed)
    if name in ("Sin", "Tanh"):
        return [uniform(generator, size)]
    if name == "MatMul":  # x (size/64 x 64) @ w (64 x 64)
        return [uniform(generator, size // 64, 64), uniform(generator, 64, 64)]
    if name == "Softmax":  # over rows of 64
        return [uniform(generator, size // 64, 64, scale=3.0)]
    raise AssertionError(name)


def false_alarms(sizes: tuple[int, ...], seeds: int) -> None:
    print(f"\n2. False alarms: right Functions ({seeds} seeds; failures should be 0; matmul "
          "is x(size/64 x 64) @ w(64 x 64), softmax over rows of 64)")
    header = (f"{'function':>9} {'elements':>10} | {'gradcheck-cli auto':^24} | "
              f"{'gradcheck-cli probe':^16} | {'torch fast_mode':^16}")
    print(header)
    print(f"{'':>9} {'':>10} | {'failed':>7} {'median':>7} {'mode':>8} | {'failed':>7} "
          f"{'median':>8} | {'failed':>7} {'median':>8}")
    print("-" * len(header))
    for name in ("Sin", "Tanh", "MatMul", "Softmax"):
        for size in sizes:
            auto, probe, fast = Tally(), Tally(), Tally()
            for seed in range(seeds):
                args = right_args(name, size, seed)
                outcome, seconds = ours(name, args, "auto", seed)
                auto.add(outcome.status is not Status.PASSED, seconds, mode=outcome.mode)
                if outcome.mode == "probe":
                    probe.add(outcome.status is not Status.PASSED, seconds)
                else:
                    outcome, seconds = ours(name, args, "probe", seed)
                    probe.add(outcome.status is not Status.PASSED, seconds)
                fast.add(*torch_check(name, args, fast=True))
            print(f"{name.lower():>9} {size:>10,} | {auto.failed:>3}/{auto.runs:<3} "
                  f"{auto.median():>7} {'/'.join(sorted(auto.modes)):>8} | "
                  f"{probe.failed:>3}/{probe.runs:<3} {probe.median():>8} | "
                  f"{fast.failed:>3}/{fast.runs:<3} {fast.median():>8}", flush=True)


def exact_child(side: int) -> None:
    """In a child process: exact mode on MulAddSin(a, b, c), each side x side; one JSON line."""
    generator = torch.Generator().manual_seed(0)
    args = [uniform(generator, side, side) for _ in range(3)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    outcome = gradcheck(target("MulAddSin"), args, ["a", "b", "c"], TOLERANCES,
                               BUDGET_ELEMENTS, mode="exact")
    seconds = time.perf_counter() - started
    layout = outcome.comparison.layout if outcome.comparison else None
    print(json.dumps({
        "status": outcome.status.value, "message": outcome.message, "layout": layout,
        "seconds": seconds, "rss_before_check": before, "vm_hwm": _vm_hwm(),
        "inputs": [{"name": e.name, "max_abs_error": e.max_abs_error,
                    "max_rel_error": e.max_rel_error, "wrong": e.wrong_elements}
                   for e in outcome.inputs],
    }))


def _vm_hwm() -> int:
    """This process's own peak RSS (VmHWM, reset at exec), in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0  # pragma: no cover


def run_exact_child(side: int, threads: int) -> tuple[dict[str, Any] | None, int, float, str]:
    """Run table 3's check in a child; (its JSON, peak RSS of children, wall time, stderr).

    Run it before this process grows: on Linux a child's ru_maxrss starts from the
    parent's high-water mark when it is spawned."""
    command = [sys.executable, str(Path(__file__).resolve()), "--exact-child", str(side),
               "--threads", str(threads)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KB on Linux
    if done.returncode != 0:
        return None, peak, wall, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), peak, wall, ""


def exact_table(side: int, run: tuple[dict[str, Any] | None, int, float, str]) -> None:
    numel = side * side
    print(f"\n3. Exact mode on three {side}x{side} inputs of an elementwise op "
          "(a*b + sin(c)), in a child process")
    result, peak, wall, error = run
    if result is None:
        print(f"   the child failed: {error}")
        return
    print(f"   status {result['status']}, layout {result['layout']}, check time "
          f"{result['seconds']:.1f}s ({wall:.1f}s with start-up)")
    print(f"   peak RSS {human_bytes(peak)} (getrusage of the child; its own VmHWM "
          f"{human_bytes(result['vm_hwm'])}; {human_bytes(result['rss_before_check'])} "
          "before the check: Python, torch and the inputs)")
    for entry in result["inputs"]:
        print(f"   input {entry['name']}: max abs error {entry['max_abs_error']:.3g}, "
              f"max rel error {entry['max_rel_error']:.3g}, wrong entries {entry['wrong']}")
    need = slow_mode_bytes(3 * numel, numel)
    print(f"   torch slow mode (not run): dense Jacobians of {3 * numel:,} x {numel:,} "
          f"doubles, numerical plus analytical twice = {human_bytes(need)} "
          f"(this machine has {human_bytes(available_memory())} available)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer seeds, and exact mode at 3 x 60x60 (about a minute)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per row (default 10)")
    parser.add_argument("--slow-seeds", type=int, default=None,
                        help="seeds for torch's slow mode (default: all at 10^3, 2 at 10^4, "
                             "where one check takes half a minute)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads (default: torch's default)")
    parser.add_argument("--exact-side", type=int, default=None,
                        help="side of the three square inputs of table 3 (default 300)")
    parser.add_argument("--exact-child", type=int, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    torch.set_num_threads(options.threads)
    if options.exact_child is not None:
        exact_child(options.exact_child)
        return 0
    seeds = options.seeds or (3 if options.quick else 10)
    side = options.exact_side or (60 if options.quick else 300)
    print(f"gradcheck-cli scale benchmark: torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, {options.threads} torch thread(s), "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    started = time.perf_counter()
    exact_run = run_exact_child(side, options.threads)  # first: see run_exact_child
    # Warm up once (thread pools, allocator, first-call costs) outside the timings.
    ours("SinOneWrong", one_wrong(10_000, 2.0, 0)[0], "probe", 0)
    detection(SIZES, seeds, options.slow_seeds, options.quick)
    false_alarms(SIZES, 2 if options.quick else max(1, seeds // 2))
    exact_table(side, exact_run)
    print(f"\ntotal {time.perf_counter() - started:.0f}s, load average now "
          f"{os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
