"""A memory limit (ulimit -v / prlimit, a container's cgroup) or a failed allocation is one clear
`error` for the check that needs the memory, never a crash or a `failed` (issue 12, item 9)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gradcheck_cli.engine import resources

MiB = 1 << 20
GiB = 1 << 30

OPS = '''import torch

HUGE = 1 << 62  # past any address space: this allocation fails everywhere


class Mul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, grad):
        return grad * 3


class HogInForward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        waste = torch.empty(HUGE, dtype=torch.uint8)
        return x * 3 + waste[:1].double() * 0

    @staticmethod
    def backward(ctx, grad):
        return grad * 3


class HogInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, grad):
        return grad * 3 + bytearray(HUGE)[0]


class HogOnUndefinedGrad(torch.autograd.Function):
    """Right for every defined gradient; runs out of memory given an undefined one."""

    @staticmethod
    def forward(ctx, x):
        ctx.set_materialize_grads(False)
        return x * 3, x * 2

    @staticmethod
    def backward(ctx, g1, g2):
        if g1 is None or g2 is None:
            torch.empty(HUGE, dtype=torch.uint8)
        return g1 * 3 + g2 * 2


class HogInJvp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, grad):
        return grad * 3

    @staticmethod
    def jvp(ctx, x_t):
        torch.empty(HUGE, dtype=torch.uint8)
        return x_t * 3
'''

ALLOCATOR = ("RuntimeError: DefaultCPUAllocator: can't allocate memory: you tried to allocate "
             "4611686018427387904 bytes. Error code 12 (Cannot allocate memory)")


def _line(text: str) -> int:
    return next(i for i, line in enumerate(OPS.splitlines(), 1) if text in line)


# --- an allocation that fails, in this process (nothing to limit: 2**62 bytes never fit) ---


def test_failed_allocations_in_the_users_code_are_errors(tmp_path: Path, run_json: Any) -> None:
    (tmp_path / "ops.py").write_text(OPS)
    (tmp_path / "ops.yaml").write_text(
        "module: ops.py\nfunctions:\n" + "".join(
            f"  {name}: {{inputs: [{{shape: [3]}}], checks: [gradcheck]}}\n"
            for name in ("Mul", "HogInForward", "HogInBackward", "HogOnUndefinedGrad")))
    doc = run_json("ops.yaml")
    assert "Traceback" not in doc["_stderr"]
    got = {r["function"]: r for r in doc["results"]}
    assert {name: r["status"] for name, r in got.items()} == {
        "Mul": "passed", "HogInForward": "error", "HogInBackward": "error",
        "HogOnUndefinedGrad": "error"}
    forward, backward = got["HogInForward"], got["HogInBackward"]
    assert forward["message"].startswith("ran out of memory in forward: only ")
    assert forward["message"].endswith(f"; shrink the input shapes in the spec ({ALLOCATOR})")
    assert forward["location"] == f"ops.py:{_line('waste = torch.empty(HUGE')}"
    assert backward["message"].startswith("ran out of memory in backward: only ")
    assert backward["message"].endswith(" (MemoryError)")
    assert backward["location"] == f"ops.py:{_line('bytearray(HUGE)')}"
    # torch's undefined-gradient sub-check caught every exception as a failure of the op.
    undefined = got["HogOnUndefinedGrad"]
    assert undefined["message"].startswith("ran out of memory in backward: only ")
    assert undefined["location"] == f"ops.py:{_line('if g1 is None or g2 is None')+1}"


def test_a_capability_that_runs_out_of_memory_is_not_a_failure(tmp_path: Path,
                                                               run_json: Any) -> None:
    (tmp_path / "ops.py").write_text(OPS)
    (tmp_path / "ops.yaml").write_text(
        "module: ops.py\nfunctions:\n"
        "  HogInJvp: {inputs: [{shape: [3]}], checks: [capabilities]}\n"
        "  Mul: {inputs: [{shape: [3]}], checks: [capabilities]}\n")
    doc = run_json("ops.yaml")
    got = {r["function"]: r for r in doc["results"]}
    assert got["Mul"]["status"] == "passed"
    hog = got["HogInJvp"]
    assert hog["status"] == "error", hog
    assert hog["message"].startswith("ran out of memory while checking: only ")
    assert hog["message"].endswith(f"; shrink the input shapes in the spec ({ALLOCATOR})")
    assert [a["kind"] for a in hog["advice"]] == ["probe_mode"]


# --- what bounds memory, read from a fake /proc and /sys ---


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in {"proc/meminfo": "MemTotal: 33554432 kB\nMemAvailable: 16777216 kB\n",
                       "proc/self/status": "VmPeak:\t 700000 kB\nVmSize:\t  655360 kB\n"
                                           "VmData:\t  262144 kB\n",
                       **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _no_rlimits(which: int) -> tuple[int, int]:
    return (-1, -1)


def test_free_memory_alone(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"proc/self/cgroup": "0::/\n"})
    assert resources.available_memory(root, _no_rlimits) == 16 * GiB
    assert resources.share(4, root, _no_rlimits) == (4 * GiB, "free for each of 4 worker(s)")


def test_cgroup_v2_limit_of_an_ancestor_binds(tmp_path: Path) -> None:
    """A container's limit sits on a parent of the process's own cgroup; the page cache it
    is charged for can be dropped, so it does not count as used."""
    root = _tree(tmp_path, {
        "proc/self/cgroup": "0::/kubepods/pod1/app\n",
        "sys/fs/cgroup/kubepods/pod1/app/memory.max": "max\n",
        "sys/fs/cgroup/kubepods/pod1/app/memory.current": "1000\n",
        "sys/fs/cgroup/kubepods/pod1/memory.max": f"{GiB}\n",
        "sys/fs/cgroup/kubepods/pod1/memory.current": f"{600 * MiB}\n",
        "sys/fs/cgroup/kubepods/pod1/memory.stat": f"anon 1\ninactive_file {100 * MiB}\n",
        "sys/fs/cgroup/memory.max": "garbage\n",
    })
    assert resources.available_memory(root, _no_rlimits) == 524 * MiB
    bytes_, bound = resources.share(2, root, _no_rlimits) or (0, "")
    assert bytes_ == 262 * MiB
    assert bound == ("left under the memory limit of this process's cgroup (a container's or "
                     "service's limit) for each of 2 worker(s)")


def test_cgroup_v1_limit_and_its_no_limit_sentinel(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "proc/self/cgroup": "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n",
        "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
        "sys/fs/cgroup/memory/memory.usage_in_bytes": f"{8 * GiB}\n",
        "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": f"{2 * GiB}\n",
        "sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes": f"{GiB}\n",
        "sys/fs/cgroup/memory/docker/abc/memory.stat": f"total_inactive_file {GiB // 2}\n",
    })
    assert resources.available_memory(root, _no_rlimits) == 3 * GiB // 2


def test_rlimit_as_less_what_is_mapped_and_each_workers_own(tmp_path: Path) -> None:
    """RLIMIT_AS bounds the address space, of which torch alone maps hundreds of MB (VmSize):
    the room is the limit less that, and every worker has a limit of its own."""
    root = _tree(tmp_path, {"proc/self/cgroup": "0::/\n"})

    def limits(which: int) -> tuple[int, int]:
        import resource

        return (2 * GiB, 2 * GiB) if which == resource.RLIMIT_AS else (-1, -1)

    assert resources.available_memory(root, limits) == 2 * GiB - 640 * MiB
    assert resources.share(8, root, limits) == (
        2 * GiB - 640 * MiB, "left under this process's address-space limit (ulimit -v)")
    inputs = [_tensor([1000, 1000])]  # 8 MB of float64: 48 MB to check
    assert resources.check_fits(inputs, 8, root, limits) is None
    big = [_tensor([20000, 10000])]  # 1.49 GiB
    assert resources.check_fits(big, 8, root, limits) == (
        "this check needs about 8.94 GB (inputs of 1.49 GB, about 6x that while checking) but "
        "only 1.38 GB is left under this process's address-space limit (ulimit -v): shrink "
        "the input shapes in the spec", [])
    assert resources.jacobian_budget(4 * GiB, 8, root, limits) == (2 * GiB - 640 * MiB) // 4
    assert resources.budget_bound(4 * GiB, 8, root, limits) == (
        "the budget is a quarter of the 1.38 GB left under this process's address-space "
        "limit (ulimit -v), so asking for more would not help: shrink the input shapes in "
        "the spec or raise that limit")
    assert resources.budget_bound(100 * MiB, 8, root, limits) is None


def test_nothing_readable_means_no_bound(tmp_path: Path) -> None:
    assert resources.available_memory(tmp_path / "nothing", _no_rlimits) is None
    assert resources.check_fits([_tensor([10**5, 10**5])], 1, tmp_path / "nothing",
                                _no_rlimits) is None


def _tensor(shape: list[int]) -> Any:
    from gradcheck_cli.specs.specfile import TensorInput

    return TensorInput(shape=tuple(shape))


BIG = """module: ops.py
functions:
  Mul:
    inputs: [{shape: [3]}]
    cases:
      - {name: huge, inputs: [{shape: [6000, 6000]}]}
"""


def test_a_containers_limit_is_read(tmp_path: Path, run_json: Any,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI under a (fake) container limit of 1 GiB, 800 MB of it in use: a check of
    275 MiB of inputs does not fit; the default case beside it runs."""
    (tmp_path / "ops.py").write_text(OPS)
    (tmp_path / "big.yaml").write_text(BIG)
    root = _tree(tmp_path / "sys", {
        "proc/self/cgroup": "0::/\n",
        "sys/fs/cgroup/memory.max": f"{GiB}\n",
        "sys/fs/cgroup/memory.current": f"{800 * MiB}\n",
    })
    monkeypatch.setattr(resources, "SYSTEM_ROOT", root)
    doc = run_json("big.yaml")
    got = {(r["case"], r["check"]): r for r in doc["results"]}
    assert {key: r["status"] for key, r in got.items()} == {
        ("default", "gradcheck"): "passed", ("default", "gradgradcheck"): "passed",
        ("huge", "gradcheck"): "error", ("huge", "gradgradcheck"): "error"}
    assert got["huge", "gradcheck"]["message"] == (
        "this check needs about 1.61 GB (inputs of 275 MB, about 6x that while checking) but "
        "only 224 MB is left under the memory limit of this process's cgroup (a container's "
        "or service's limit) for each of 1 worker(s): shrink the input shapes in the spec")


# --- the real thing: the CLI under `prlimit --as` ---


def _torch_vmsize() -> int:
    """Bytes a Python process maps once torch is imported (the limit must leave those)."""
    code = ("import torch; print(next(int(l.split()[1]) for l in open('/proc/self/status') "
            "if l.startswith('VmSize')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return int(out.stdout) * 1024


def _limited(limit: int) -> Callable[[], None]:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("jobs", ["0", "2"])
def test_the_cli_under_an_address_space_limit(tmp_path: Path, jobs: str) -> None:
    """Under RLIMIT_AS of torch's own mapping plus 900 MB (inherited by the workers): the
    275 MiB case is told it does not fit, an op whose forward allocates past the limit is
    that check's error, and the default case passes; no crash, no traceback."""
    (tmp_path / "ops.py").write_text(OPS)
    (tmp_path / "big.yaml").write_text(
        BIG + "  HogInForward: {inputs: [{shape: [3]}], checks: [gradcheck]}\n")
    limit = _torch_vmsize() + 900 * MiB
    proc = subprocess.run(
        [sys.executable, "-m", "gradcheck_cli", "big.yaml", "-j", jobs, "--no-cache",
         "--device", "cpu", "--format", "json"], cwd=tmp_path, capture_output=True,
        text=True, timeout=300, preexec_fn=_limited(limit))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    got = {(r["function"], r["case"], r["check"]): r
           for r in json.loads(proc.stdout)["results"]}
    assert {key: r["status"] for key, r in got.items()} == {
        ("Mul", "default", "gradcheck"): "passed", ("Mul", "default", "gradgradcheck"): "passed",
        ("Mul", "huge", "gradcheck"): "error", ("Mul", "huge", "gradgradcheck"): "error",
        ("HogInForward", "default", "gradcheck"): "error"}
    huge = got["Mul", "huge", "gradcheck"]["message"]
    assert huge.startswith("this check needs about 1.61 GB (inputs of 275 MB, about 6x that "
                           "while checking) but only "), huge
    free = resources.available_memory() or 0
    if free > 2 * GiB:  # else free memory, not the limit, is what is short
        assert huge.endswith(" MB is left under this process's address-space limit "
                             "(ulimit -v): shrink the input shapes in the spec"), huge
    hog = got["HogInForward", "default", "gradcheck"]
    assert hog["message"].startswith("ran out of memory in forward: only "), hog["message"]
    assert hog["message"].endswith(f" ({ALLOCATOR})"), hog["message"]
