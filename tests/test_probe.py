"""Probe mode catches a single wrong Jacobian entry, localizes it, and never fails a right one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from gradcheck_cli.engine.checks.gradcheck import gradcheck
from gradcheck_cli.engine.checks.gradgradcheck import gradgradcheck
from gradcheck_cli.engine.inputs import build_inputs
from gradcheck_cli.engine.jacobian import as_tuple
from gradcheck_cli.engine.outcome import Outcome, Tolerances
from gradcheck_cli.engine.probe import ProbeSettings, probe_compare
from gradcheck_cli.results import Advice, Status
from gradcheck_cli.specs.specfile import load_spec
from gradcheck_cli.target.discovery import Target, import_file, resolve

ROOT = Path(__file__).resolve().parent.parent
OPS = ROOT / "benchmarks" / "scale_ops.py"
CORPUS = Path(__file__).resolve().parent / "data" / "corpus"
TOL = Tolerances()
BUDGET = 1 << 26  # Jacobian elements; far more than any test here needs


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    """Small tensors gain nothing from threads, and on a busy machine lose a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def target(name: str, path: Path = OPS) -> Target:
    found = resolve(import_file(path), path.resolve(), name)
    assert found is not None, name
    return found


def uniform(generator: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    values = (torch.rand(*shape, generator=generator, dtype=torch.float64) * 2 - 1) * scale
    return values.requires_grad_()


def correct_args(name: str, size: int, generator: torch.Generator) -> list[Any]:
    if name in ("Sin", "Tanh", "SinCosPair"):
        return [uniform(generator, size)]
    if name == "MatMul":
        return [uniform(generator, size // 16, 16), uniform(generator, 16, 16)]
    if name == "Softmax":
        return [uniform(generator, size // 16, 16, scale=3.0)]
    if name == "MulAddSin":
        return [uniform(generator, size // 3) for _ in range(3)]
    raise AssertionError(name)


def one_wrong(size: int, factor: float, seed: int) -> tuple[list[Any], int]:
    generator = torch.Generator().manual_seed(seed)
    x = uniform(generator, size)
    index = int(torch.randint(0, size, (1,), generator=generator))
    return [x, index, factor], index


@pytest.mark.parametrize("factor", [2.0, 1.1])
@pytest.mark.parametrize("size", [1000, 10000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_single_wrong_entry_is_caught_and_localized(size, factor, seed):
    args, index = one_wrong(size, factor, seed)
    outcome = gradcheck(target("SinOneWrong"), args, ["x", "index", "factor"], TOL,
                               BUDGET, mode="probe", seed=seed)
    assert outcome.status is Status.FAILED, outcome.message
    assert outcome.mode == "probe"
    (entry,) = outcome.inputs
    assert not entry.passed
    assert entry.wrong_elements == 1
    assert entry.worst is not None
    assert entry.worst.input_index == [index]
    assert entry.worst.output_index == [index]
    # The localized entry is the exact one: analytical = factor × cos, numerical = cos.
    derivative = torch.cos(args[0].detach()[index]).item()
    assert entry.worst.analytical == pytest.approx(factor * derivative, rel=1e-12)
    assert entry.worst.numerical == pytest.approx(derivative, rel=1e-6)
    assert entry.diagnosis is not None and entry.diagnosis.kind == "partial"
    assert f"x[{index}]" in entry.diagnosis.detail
    assert f"x[{index}]" in outcome.message


@pytest.mark.parametrize("name", ["Sin", "Tanh", "MatMul", "Softmax", "MulAddSin",
                                  "SinCosPair"])
@pytest.mark.parametrize("size", [960, 9600])
@pytest.mark.parametrize("seed", [0, 1])
def test_no_false_alarm_on_right_functions(name, size, seed):
    args = correct_args(name, size, torch.Generator().manual_seed(seed))
    names = [f"a{i}" for i in range(len(args))]
    outcome = gradcheck(target(name), args, names, TOL, BUDGET, mode="probe", seed=seed)
    assert outcome.status is Status.PASSED, outcome.message
    assert outcome.mode == "probe"
    for entry in outcome.inputs:
        assert entry.passed and entry.note is None
    # Every probe stayed far below its threshold: no near misses either.
    assert outcome.comparison is not None
    for stat in outcome.comparison.inputs:
        assert len(stat.directional) == ProbeSettings().probes
        for analytical, numerical, threshold in stat.directional:
            assert abs(analytical - numerical) < 0.2 * threshold


def test_second_order_single_wrong_entry_is_caught():
    args, index = one_wrong(5000, 1.1, seed=3)
    outcome = gradgradcheck(target("SinSecondOrderOneWrong"), args,
                                   ["x", "index", "factor"], TOL, BUDGET, 0, mode="probe")
    assert outcome.status is Status.FAILED, outcome.message
    assert outcome.mode == "probe"
    x_entry = outcome.inputs[0]
    assert not x_entry.passed and x_entry.worst is not None
    assert x_entry.worst.input_index == [index]
    assert x_entry.diagnosis is not None and x_entry.diagnosis.kind == "second-order"
    assert all(e.passed for e in outcome.inputs[1:])
    # Its first derivative is right, and probe mode agrees.
    first = gradcheck(target("SinSecondOrderOneWrong"), one_wrong(5000, 1.1, 3)[0],
                             ["x", "index", "factor"], TOL, BUDGET, mode="probe")
    assert first.status is Status.PASSED, first.message


def test_second_order_right_function_passes():
    args = correct_args("MulAddSin", 3000, torch.Generator().manual_seed(0))
    outcome = gradgradcheck(target("MulAddSin"), args, ["a", "b", "c"], TOL, BUDGET, 0,
                                   mode="probe")
    assert outcome.status is Status.PASSED, outcome.message


def test_probes_are_reproducible_and_seeded():
    def run(seed: int) -> list[tuple[float, float, float]]:
        args = correct_args("Tanh", 2000, torch.Generator().manual_seed(0))
        fn = target("Tanh").call
        comparison = probe_compare(fn, args, as_tuple(fn(*args)), eps=1e-6, atol=1e-5,
                                   rtol=1e-3, seed=seed)
        return comparison.inputs[0].directional

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_probe_leaves_inputs_untouched():
    args, _ = one_wrong(3000, 2.0, seed=0)
    before = args[0].detach().clone()
    gradcheck(target("SinOneWrong"), args, ["x", "index", "factor"], TOL, BUDGET,
                     mode="probe")
    assert torch.equal(args[0].detach(), before)
    assert args[0]._version == 0


def test_float32_and_non_contiguous_inputs():
    generator = torch.Generator().manual_seed(0)
    wide = uniform(generator, 40, 50)
    transposed = wide.detach().T.requires_grad_()  # a non-contiguous leaf
    assert not transposed.is_contiguous()
    outcome = gradcheck(target("Sin"), [transposed], ["x"], TOL, BUDGET, mode="probe")
    assert outcome.status is Status.PASSED, outcome.message
    narrow = uniform(generator, 4000).detach().float().requires_grad_()
    outcome = gradcheck(target("Sin"), [narrow], ["x"], TOL, BUDGET, mode="probe")
    assert outcome.status is Status.PASSED, outcome.message
    args = [narrow, 1234, 2.0]
    outcome = gradcheck(target("SinOneWrong"), args, ["x", "index", "factor"], TOL,
                               BUDGET, mode="probe")
    assert outcome.status is Status.FAILED
    assert outcome.inputs[0].worst is not None
    assert outcome.inputs[0].worst.input_index == [1234]


def corpus_outcomes(name: str, mode: str) -> dict[str, Outcome]:
    spec = load_spec(CORPUS / "corpus.yaml")
    function = next(f for f in spec.functions if f.name == name)
    found = target(name, CORPUS / "corpus.py")
    outcomes = {}
    for check in ("gradcheck", "gradgradcheck"):
        built = build_inputs(found, function.cases[0].inputs, 0, "cpu")
        torch.manual_seed(0)
        if check == "gradcheck":
            outcomes[check] = gradcheck(found, built.args, built.names, TOL, BUDGET,
                                               mode=mode)
        else:
            outcomes[check] = gradgradcheck(found, built.args, built.names, TOL,
                                                   BUDGET, 0, mode=mode)
    return outcomes


CORPUS_NAMES = [
    "Square", "Sine", "MulAdd", "MatMul", "ExpSavesOutput", "SinCos", "ScaleBy",
    "ComplexSquare", "Softplus", "Tanh", "Gather", "Weighted", "smooth", "Swapped",
    "MissingFactor", "WrongSign", "TransposedMatMul", "NoneGrad", "ZeroGrad",
    "MaskOffByThreshold", "IgnoresGradOutput", "InplaceSaved", "WrongCount", "WrongShape",
    "SinCosWrongSign", "ScaleIgnoresAlpha", "ComplexNoConj", "SinCosNoMaterialize",
    "RandomBackward",
]


# Where the two modes see different things, what each one finds, exactly:
# (Function, check) -> ([(passed, diagnosis kind)] in exact mode, the same in probe mode).
DISAGREEMENTS: dict[tuple[str, str], tuple[list[tuple[bool, str | None]], ...]] = {
    # backward adds random noise to its gradient. Its second-order Jacobian is then noise
    # at every entry: exact mode fails both inputs (and, the one-sided slopes differing,
    # calls it a kink); probe mode takes the noise along `x` for finite-difference noise
    # and pins wrong entries for `grad_output` only.
    ("RandomBackward", "gradgradcheck"): ([(False, "kink"), (False, "kink")],
                                          [(True, None), (False, "second-order")]),
    # A missing .conj(): exact mode sees analytical = conj(numerical) entry by entry;
    # probes see one direction at a time, where a conjugate fits no pattern.
    ("ComplexNoConj", "gradcheck"): ([(False, "conjugate")], [(False, "unknown")]),
}


def verdicts(outcome: Outcome) -> list[tuple[bool, str | None]]:
    return [(e.passed, e.diagnosis.kind if e.diagnosis else None) for e in outcome.inputs]


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_probe_mode_agrees_with_exact_mode_on_the_corpus(name):
    exact = corpus_outcomes(name, "exact")
    probe = corpus_outcomes(name, "probe")
    for check in ("gradcheck", "gradgradcheck"):
        assert probe[check].status == exact[check].status, (check, probe[check].message)
        assert probe[check].mode == "probe"
        # The diagnosis too (transposed matrices included, told by one more probe each).
        expected = DISAGREEMENTS.get((name, check))
        if expected is None:
            assert verdicts(probe[check]) == verdicts(exact[check]), check
        else:
            assert (verdicts(exact[check]), verdicts(probe[check])) == expected, check


@pytest.mark.parametrize("name", ["SinNearlyRight", "SinFloat32Backward"])
@pytest.mark.parametrize("size", [300, 30000])
def test_right_within_tolerance_passes(name, size):
    # Off by a relative 5e-4 (or float32 rounding) everywhere: within rtol, so exact mode
    # passes, while every probe sees the sum of the small errors. Localization finds them
    # small at the elements it examines, says so in a note, and advises exact mode.
    args = [uniform(torch.Generator().manual_seed(0), size)]
    if size <= 1000:  # exact mode's verdict, where it is affordable
        exact = gradcheck(target(name), args, ["x"], TOL, BUDGET, mode="exact")
        assert exact.status is Status.PASSED, exact.message
        assert exact.inputs[0].note is None and exact.advice == []
    probe = gradcheck(target(name), args, ["x"], TOL, BUDGET, mode="probe")
    assert probe.status is Status.PASSED, probe.message
    note = probe.inputs[0].note
    assert note is not None
    assert note.startswith("probe mode: a random-direction check differs by ")
    assert note.endswith(" but the 2 elements it points to are within atol/rtol")
    assert "--" not in note  # advice is data, not a flag in the text
    assert probe.advice == [Advice("exact_mode")]
