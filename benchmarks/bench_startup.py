"""Start-up benchmark: gradcheck-cli on one small spec next to `python -c "import torch"`.

Both are run as fresh processes, alternately, several times; the medians are compared.
Also times `gradcheck-cli --help` and `--version` (which must not import torch) and a
fully cached re-run.

The tool's bytecode is compiled first, as any install has it after its first run (pip
compiles on install; Python writes __pycache__ on first import). Without it, as under
PYTHONDONTWRITEBYTECODE=1, every run would compile the tool's modules again.

Usage: python benchmarks/bench_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "multiply_add.yaml"
CUDA_ASKED = """
import sys
import gradcheck_cli.execution.plan as plan
plan.nvidia_nodes_absent = lambda: False
from gradcheck_cli.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, capture_output=True, check=False)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    compileall.compile_dir(ROOT / "gradcheck_cli", quiet=1)
    tool = [sys.executable, "-m", "gradcheck_cli"]
    cache = Path(tempfile.mkdtemp(prefix="gradcheck-startup-"))
    commands = {
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
        "gradcheck-cli one small spec (2 checks)":
            [*tool, str(SPEC), "--device", "cpu", "--no-cache"],
        "gradcheck-cli same, -j 0 (in process)":
            [*tool, str(SPEC), "--device", "cpu", "--no-cache", "-j", "0"],
        "gradcheck-cli same, cached": [*tool, str(SPEC), "--device", "cpu",
                                       "--cache-dir", str(cache)],
        # Where /dev cannot tell whether CUDA is there (NVIDIA devices, or not Linux), the
        # command line imports torch to ask: simulated by forcing that test's answer.
        "same, CUDA asked of torch (simulated)": [sys.executable, "-c", CUDA_ASKED,
                                                  str(SPEC), "--no-cache"],
        "gradcheck-cli --help": [*tool, "--help"],
        "gradcheck-cli --version": [*tool, "--version"],
    }
    seconds(commands["gradcheck-cli same, cached"])  # fill the cache
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():
            times[name].append(seconds(command))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians['python -c "import torch"']
    print(f"{'command':44} {'median s':>9} {'vs import torch':>16}")
    for name, value in medians.items():
        print(f"{name:44} {value:9.3f} {value / base:15.2f}x")
    ratio = medians["gradcheck-cli one small spec (2 checks)"] / base
    print(f"one small spec vs import torch: {ratio:.2f}x (target <= 1.3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
