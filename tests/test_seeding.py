"""`seeding.manual_seed`: torch.manual_seed's effect, torch's own call wherever it matters."""

from __future__ import annotations

import pytest
import torch

from gradcheck_cli.engine import seeding


@pytest.mark.parametrize("seed", [0, 1234, -5, 2**63 - 1])
def test_the_same_numbers_as_torch_manual_seed(seed: int) -> None:
    torch.manual_seed(seed)
    expected = (torch.rand(5, dtype=torch.float64), torch.randn(3), torch.randint(9, (4,)))
    torch.manual_seed(seed + 1)  # anything else in between
    torch.rand(7)
    seeding.manual_seed(seed)
    assert torch.initial_seed() == seed % 2**64
    got = (torch.rand(5, dtype=torch.float64), torch.randn(3), torch.randint(9, (4,)))
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


@pytest.mark.parametrize("flag", ["_has_cuda", "_has_xpu", "_has_mps"])
def test_a_build_with_an_accelerator_gets_torchs_own_call(flag: str,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    calls: list[int] = []
    monkeypatch.setattr(torch, "manual_seed", calls.append)
    monkeypatch.setattr(torch._C, flag, True, raising=False)
    seeding.manual_seed(7)
    assert calls == [7]


def test_a_cpu_build_seeds_only_the_cpu_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    for flag in ("_has_cuda", "_has_xpu", "_has_mps"):
        monkeypatch.setattr(torch._C, flag, False, raising=False)
    monkeypatch.setattr(torch._C, "_mtia_isBuilt", lambda: False, raising=False)
    calls: list[int] = []
    monkeypatch.setattr(torch, "manual_seed", calls.append)
    seeding.manual_seed(7)
    assert calls == [] and torch.initial_seed() == 7


def test_an_unknown_torch_gets_torchs_own_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """A torch without the flags read here (renamed, removed) is not guessed about."""
    monkeypatch.delattr(torch._C, "_has_xpu", raising=False)
    calls: list[int] = []
    monkeypatch.setattr(torch, "manual_seed", calls.append)
    seeding.manual_seed(3)
    assert calls == [3]
