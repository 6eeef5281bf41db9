"""Exact mode in bounded memory (dense or nonzeros only, same numbers) and the mode choice."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

import pytest
import torch

from gradcheck_cli.engine import cost, jacobian
from gradcheck_cli.engine.checks.gradcheck import gradcheck
from gradcheck_cli.engine.checks.gradgradcheck import gradgradcheck
from gradcheck_cli.engine.outcome import Outcome, Tolerances
from gradcheck_cli.engine.stats import InputStats
from gradcheck_cli.results import Status
from gradcheck_cli.target.discovery import Target, import_file, resolve

OPS = Path(__file__).resolve().parent.parent / "benchmarks" / "scale_ops.py"
TOL = Tolerances()
MB = 1 << 20


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    """Small tensors gain nothing from threads, and on a busy machine lose a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def target(name: str) -> Target:
    found = resolve(import_file(OPS), OPS.resolve(), name)
    assert found is not None, name
    return found


def plain(name: str) -> Target:
    """The Function called as a plain callable: auto mode's exact/probe choice, without the
    reference mode a Function gets first (test_reference.py)."""
    found = target(name)
    return dataclasses.replace(found, kind="callable", obj=found.obj.apply)


def uniform(seed: int, *shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(*shape, generator=generator, dtype=torch.float64) * 2 - 1
    return values.to(dtype).requires_grad_()


def summary(stats: InputStats) -> tuple[Any, ...]:
    return (stats.position, stats.numel, stats.max_abs, stats.max_rel, stats.wrong, stats.worst,
            stats.worst_wrong, stats.nonfinite_analytical, stats.nonfinite_numerical,
            stats.first_nonfinite, stats.nondeterminism, stats.rows_wrong_by_output)


def with_huge_element() -> list[Any]:
    x = uniform(5, 30)
    with torch.no_grad():
        x[3] = 1e308  # sin is finite there, its central difference is not
    return [x]


CASES = {
    "elementwise, three inputs": ("MulAddSin", lambda: [uniform(i, 12, 12) for i in range(3)]),
    "one wrong entry": ("SinOneWrong", lambda: [uniform(0, 20, 20), 17, 1.1]),
    "dense matmul": ("MatMul", lambda: [uniform(1, 8, 16), uniform(2, 16, 4)]),
    "softmax": ("Softmax", lambda: [uniform(3, 6, 10)]),
    "two outputs": ("SinCosPair", lambda: [uniform(4, 50)]),
    "non-finite numerical": ("Sin", with_huge_element),
    "float32": ("Tanh", lambda: [uniform(6, 40, dtype=torch.float32)]),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_sparse_layout_gives_the_dense_numbers(case):
    name, make = CASES[case]
    fn = target(name).call
    args = make()
    out = jacobian.as_tuple(fn(*args))
    results = {}
    for layout in ("dense", "sparse"):
        comparison = jacobian.compare(fn, args, out, eps=1e-6, atol=1e-5, rtol=1e-3,
                                      budget_bytes=1 << 30, layout=layout)
        assert comparison.layout == layout
        results[layout] = [summary(s) for s in comparison.inputs]
    assert results["sparse"] == results["dense"]


def test_sparse_layout_with_complex_input():
    z = torch.randn(7, dtype=torch.complex128, generator=torch.Generator().manual_seed(0))
    z.requires_grad_()

    def fn(value: torch.Tensor) -> torch.Tensor:
        return (value * value.conj() + value.sin()).real

    out = jacobian.as_tuple(fn(z))
    dense, sparse = (jacobian.compare(fn, [z], out, eps=1e-6, atol=1e-5, rtol=1e-3,
                                      budget_bytes=1 << 30, layout=layout)
                     for layout in ("dense", "sparse"))
    assert [summary(s) for s in sparse.inputs] == [summary(s) for s in dense.inputs]


def test_numerical_jacobian_is_torchs_bit_for_bit():
    # torch.autograd.gradcheck is the function; its module holds the recipe.
    module = importlib.import_module("torch.autograd.gradcheck")
    numerical_jacobian = getattr(module, "_get_numerical_jacobian", None)
    if numerical_jacobian is None:  # pragma: no cover - private in torch
        pytest.skip("torch has no _get_numerical_jacobian")
    fn = target("Softmax").call
    args = [uniform(0, 3, 5)]
    out = jacobian.as_tuple(fn(*args))
    ours = jacobian.numerical_rows(fn, args, 0, out, [0], (0, 15), 1e-6)
    theirs = numerical_jacobian(fn, tuple(args), out, eps=1e-6)[0][0]
    assert torch.equal(ours, theirs.T)


def test_checks_report_the_same_errors_in_both_layouts():
    # Medium case: a dense comparison needs ~15 MB, the nonzeros ~100 KB.
    def run(max_memory: int) -> Outcome:
        args = [uniform(i, 20, 20) for i in range(3)]
        return gradcheck(target("MulAddSin"), args, ["a", "b", "c"], TOL, 1,
                                mode="exact", max_memory=max_memory)

    dense, sparse = run(1 << 30), run(MB)
    assert dense.comparison is not None and dense.comparison.layout == "dense"
    assert sparse.comparison is not None and sparse.comparison.layout == "sparse"
    assert dense.status is sparse.status is Status.PASSED
    assert sparse.mode == dense.mode == "exact"
    assert sparse.inputs == dense.inputs


SIZES = [
    cost.Sizes((10,), 10, 8),
    cost.Sizes((300 * 300,) * 3, 300 * 300, 8),
    cost.Sizes((1000, 4096), 64, 16, (True, False)),
    cost.Sizes((10**6,), 10**6, 8),
    cost.Sizes((512,), 512, 4),
]


@pytest.mark.parametrize("budget", [1, MB, 64 * MB, 1 << 30, 1 << 40])
@pytest.mark.parametrize("sizes", SIZES)
def test_plan_never_holds_a_dense_block_over_the_budget(sizes, budget):
    plan = cost.plan_exact(sizes, budget)
    assert plan.dense_bytes == cost.dense_bytes(sizes)
    if plan.layout == "dense":
        assert plan.dense_bytes <= budget
        assert plan.block_bytes <= plan.dense_bytes
    else:
        assert plan.dense_bytes > budget
        # Only one Jacobian row or column at a time is ever dense.
        assert plan.block_bytes == max(sizes.columns, sizes.output_numel) * sizes.itemsize
    sparse = cost.plan_exact(sizes, budget, nonzeros=sizes.output_numel)
    assert sparse.fits == (sparse.layout == "dense" or cost.sparse_bytes(
        sizes.output_numel, sizes.itemsize) <= budget)


def test_compare_allocates_dense_blocks_only_when_planned(monkeypatch):
    blocks: list[int] = []
    original = jacobian.analytical_rows

    def spy(outputs: Any, inputs: Any, rows: tuple[int, int], sizes: Any) -> Any:
        result = original(outputs, inputs, rows, sizes)
        blocks.extend(b.numel() * b.element_size() for b in result)
        return result

    monkeypatch.setattr(jacobian, "analytical_rows", spy)
    fn = target("MulAddSin").call
    args = [uniform(i, 10, 10) for i in range(3)]
    out = jacobian.as_tuple(fn(*args))
    needed = cost.dense_bytes(jacobian.sizes_of(args, out))
    for budget in (needed - 1, needed):
        blocks.clear()
        comparison = jacobian.compare(fn, args, out, eps=1e-6, atol=1e-5, rtol=1e-3,
                                      budget_bytes=budget)
        if budget < needed:
            assert comparison.layout == "sparse" and not blocks
        else:
            assert comparison.layout == "dense" and blocks
            assert sum(blocks) <= budget


def test_nonzeros_over_the_budget_stop_the_exact_comparison():
    # A dense Jacobian (every output depends on 80 inputs): 128,000 nonzeros, ~10 MB.
    fn = target("MatMul").call
    args = [uniform(0, 40, 40), uniform(1, 40, 40)]
    out = jacobian.as_tuple(fn(*args))
    with pytest.raises(jacobian.ExactTooLarge) as raised:
        jacobian.compare(fn, args, out, eps=1e-6, atol=1e-5, rtol=1e-3, budget_bytes=MB,
                         layout="sparse")
    assert raised.value.needed_bytes > MB
    assert raised.value.nonzeros == 128_000


def test_forced_exact_over_the_budget_is_an_error_that_says_what_to_do():
    args = [uniform(0, 40, 40), uniform(1, 40, 40)]
    outcome = gradcheck(target("MatMul"), args, ["x", "w"], TOL, 1, mode="exact",
                               max_memory=MB)
    assert outcome.status is Status.ERROR
    assert outcome.mode == "exact"
    assert outcome.message.startswith("exact mode needs about ")
    assert outcome.message.endswith("over the memory budget of 1 MB")
    assert "--" not in outcome.message  # what to do is advice, as data
    assert [a.kind for a in outcome.advice] == ["probe_mode", "more_memory"]
    needed = outcome.advice[1].needed
    assert needed is not None and needed > MB
    assert cost.human_bytes(needed) in outcome.message


def test_auto_falls_back_to_probe_when_exact_does_not_fit():
    args = [uniform(0, 40, 40), uniform(1, 40, 40)]
    outcome = gradcheck(plain("MatMul"), args, ["x", "w"], TOL, 1, mode="auto",
                               max_memory=MB, max_seconds=1e9)
    assert outcome.status is Status.PASSED, outcome.message
    assert outcome.mode == "probe"
    assert "budget" in outcome.mode_reason


def test_auto_picks_exact_for_small_checks():
    outcome = gradcheck(plain("Sin"), [uniform(0, 100)], ["x"], TOL, 1 << 26)
    assert outcome.status is Status.PASSED
    assert outcome.mode == "exact" and outcome.mode_reason == ""
    assert outcome.inputs[0].worst is not None  # exact mode names an element even when right


def test_auto_picks_probe_when_exact_would_take_too_long():
    args = [uniform(0, 20000), 123, 2.0]
    outcome = gradcheck(plain("SinOneWrong"), args, ["x", "index", "factor"], TOL,
                               1 << 26, max_seconds=0.5)
    assert outcome.mode == "probe"
    assert "over the" in outcome.mode_reason and "forward" in outcome.mode_reason
    assert outcome.status is Status.FAILED
    assert outcome.inputs[0].worst is not None
    assert outcome.inputs[0].worst.input_index == [123]


def test_gradgradcheck_takes_the_mode_too():
    args = [uniform(0, 20000), 77, 1.1]
    outcome = gradgradcheck(plain("SinSecondOrderOneWrong"), args,
                                   ["x", "index", "factor"], TOL, 1 << 26, 0, max_seconds=0.5)
    assert outcome.mode == "probe" and outcome.mode_reason
    assert outcome.status is Status.FAILED
    assert outcome.inputs[0].worst is not None
    assert outcome.inputs[0].worst.input_index == [77]


def test_choose_for_a_huge_check():
    sizes = cost.Sizes((10**6,), 10**6, 8)
    timing = cost.Timing(0.005, 0.01)
    decision = cost.choose("auto", sizes, 1 << 30, timing)
    assert decision.mode == "probe"
    assert decision.exact_seconds is not None and decision.exact_seconds > 3600
    assert "h" in decision.reason and "2,000,000 forward" in decision.reason
    by_memory = cost.choose("auto", sizes, MB, timing, nonzeros=10**6, max_seconds=1e12)
    assert by_memory.mode == "probe" and "budget" in by_memory.reason
    forced = cost.choose("exact", sizes, 1 << 30, timing)
    assert forced.mode == "exact" and forced.plan.layout == "sparse" and forced.plan.fits
    small = cost.choose("auto", cost.Sizes((10,), 10, 8), 1 << 30, cost.Timing(1e-5, 1e-5))
    assert small.mode == "exact" and small.reason == "" and small.plan.layout == "dense"
    with pytest.raises(ValueError, match="mode must be one of"):
        cost.choose("fast", sizes, 1, timing)


def test_cost_model_arithmetic():
    assert cost.memory_budget(100, None) == 1600
    assert cost.memory_budget(100, 12345) == 12345
    small, big = cost.Sizes((100,), 100, 8), cost.Sizes((1000,), 1000, 8)
    timing = cost.Timing(1e-4, 2e-4)
    assert cost.exact_seconds(big, timing) > 10 * cost.exact_seconds(small, timing)
    complex_input = cost.Sizes((100,), 100, 16, (True,))
    assert complex_input.perturbations == 200
    assert cost.human_bytes(3 * MB) == "3 MB"
    assert cost.human_seconds(7200 * 3) == "6 h"
