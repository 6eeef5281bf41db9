"""Shard benchmark: 4 shards run one after another next to one unsharded run, in CPU time.

Builds bench_batch.py's 48 specs (96 checks), then, round after round (--repeat, default 3):

  1. gradcheck-cli . -j 0 --no-cache                    (the whole run, in one process)
  2. gradcheck-cli . -j 0 --no-cache --shard I/4, I = 1..4, one after another

and compares the CPU time (user + system) the processes used, with their wall time, and the
start-up each extra process pays: a run of one small spec (`import torch`, the tool, torch's
first calls, its teardown), and `python -c "import torch"` alone. `-j 0` keeps every check
in the measured process (a worker's time would be lost to getrusage when its fork server
exits without waiting for it); it runs with one torch thread, as the workers do. Also
times `-j 1` once per round, for `-j 0` against a worker.

`--copies K` builds K copies of the 48 specs (each with its own module), for a run long
enough that start-up is a small part of it; `--sizes` changes their sizes.

Usage: python benchmarks/bench_shard.py [--repeat N] [--shards N] [--copies K] [--sizes N...]
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
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_batch  # noqa: E402
from bench_batch import build, torch_version  # noqa: E402

Run = subprocess.CompletedProcess[str]


def measured(command: list[str], cwd: Path) -> tuple[float, float, Run]:
    """(CPU seconds, wall seconds, the process) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "CI": "1"}, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are compared")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--sizes", type=int, nargs="+", default=bench_batch.SIZES,
                        help=f"the specs' sizes (default: {bench_batch.SIZES})")
    parser.add_argument("--copies", type=int, default=1)
    args = parser.parse_args()
    bench_batch.SIZES = args.sizes
    folder = Path(tempfile.mkdtemp(prefix="gradcheck-shard-bench-"))
    plan = [entry for k in range(args.copies) for entry in build(folder / f"copy{k}")]
    one_spec = [sys.executable, "-m", "gradcheck_cli", "copy0/spec_00.yaml", "--no-cache",
                "-j", "0", "-qq"]
    tool = [sys.executable, "-m", "gradcheck_cli", ".", "--no-cache", "--format", "json"]
    rows: dict[str, list[tuple[float, float]]] = {
        "whole run, -j 0": [], f"{args.shards} shards one after another, -j 0": [],
        "start-up: a run of one small spec, -j 0": [], "python -c 'import torch'": []}
    workers: list[float] = []  # -j 1: the worker's CPU time is not the command's
    checks: list[int] = []
    for _ in range(args.repeat):
        cpu, wall, proc = measured([*tool, "-j", "0"], folder)
        whole = json.loads(proc.stdout)
        rows["whole run, -j 0"].append((cpu, wall))
        total_cpu = total_wall = 0.0
        ids: list[str] = []
        for index in range(1, args.shards + 1):
            cpu, wall, proc = measured([*tool, "-j", "0", "--shard", f"{index}/{args.shards}"],
                                       folder)
            doc = json.loads(proc.stdout)
            ids += [f"{r['spec']}::{r['function']}[{r['check']}]" for r in doc["results"]]
            checks.append(doc["shard"]["checks"])
            total_cpu += cpu
            total_wall += wall
        assert sorted(ids) == sorted(f"{r['spec']}::{r['function']}[{r['check']}]"
                                     for r in whole["results"]), "shards != whole run"
        rows[f"{args.shards} shards one after another, -j 0"].append((total_cpu, total_wall))
        workers.append(measured([*tool, "-j", "1"], folder)[1])
        rows["start-up: a run of one small spec, -j 0"].append(measured(one_spec, folder)[:2])
        rows["python -c 'import torch'"].append(
            measured([sys.executable, "-c", "import torch"], folder)[:2])
    print(f"{len(plan)} specs ({args.copies} x 48, sizes {args.sizes}), {2 * len(plan)} checks, "
          f"{os.cpu_count()} cores, torch "
          f"{torch_version()}, {args.repeat} rounds; checks per shard: {checks[:args.shards]}")
    print(f"{'run':42} {'CPU s (median)':>15} {'wall s (median)':>16}   CPU s each round")
    medians = {}
    for label, values in rows.items():
        cpu = statistics.median(v[0] for v in values)
        wall = statistics.median(v[1] for v in values)
        medians[label] = cpu
        each = " ".join(f"{v[0]:.2f}" for v in values)
        print(f"{label:42} {cpu:15.2f} {wall:16.2f}   {each}")
    print(f"{'whole run, -j 1 (one worker)':42} {'-':>15} {statistics.median(workers):16.2f}")
    whole_cpu = medians["whole run, -j 0"]
    sharded_cpu = medians[f"{args.shards} shards one after another, -j 0"]
    start_up = medians["start-up: a run of one small spec, -j 0"]
    extra = sharded_cpu - whole_cpu
    print(f"shards vs whole run: {sharded_cpu / whole_cpu:.3f}x the CPU time (+{extra:.2f} s, "
          f"{extra / max(args.shards - 1, 1):.2f} s per extra process; a one-spec run costs "
          f"{start_up:.2f} s); net of {args.shards - 1} extra start-ups: "
          f"{(sharded_cpu - (args.shards - 1) * start_up) / whole_cpu:.3f}x")
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
