"""Reference mode: backward against autograd through forward, the graph confirmed by probes.

autograd through forward is a second, exact reference, not a replacement for finite
differences: it cannot see what forward hides from autograd. So the graph is checked
twice before its verdict is taken. First by walking it (`reference.inspect_graph`): it
must reach the outputs, and hold no hand-written backward (another Function, a custom
op). Then by GRAPH_PROBES finite-difference probes per input (`probe.probe_agreement`):
autograd's vᵀJu must match the central difference of forward's values along u within
that probe's noise. Where they disagree the finite differences win: `NoReference` says
that forward breaks the graph at that input, and the check falls back to exact or probe
mode (`mode.fall_back`).
"""

from __future__ import annotations

from typing import Any

import torch

from gradcheck_cli.engine.checks.subject import Request, Subject
from gradcheck_cli.engine.jacobian import as_tuple, diff_positions, fresh_copies, is_diff_tensor
from gradcheck_cli.engine.probe import probe_agreement
from gradcheck_cli.engine.reference import NoReference, inspect_graph
from gradcheck_cli.engine.reference_compare import PROBES, Sides, compare_reference, tolerance
from gradcheck_cli.engine.stats import Comparison

GRAPH_PROBES = 3  # finite-difference probes of autograd's graph, per input


def reference_comparisons(subject: Subject, request: Request, func_out: tuple[Any, ...],
                          diff_outputs: list[torch.Tensor]) -> tuple[list[Comparison], str]:
    """The comparison against autograd through forward, and its evidence in words; raises
    `NoReference` (why) where autograd is no reference for this check."""
    reference = subject.reference
    if reference is None or reference.run is None:
        raise NoReference(reference.why_not if reference is not None else
                          "no reference for this check")
    if subject.order == "second" and subject.first_order_ok is False:
        raise NoReference("the first-order gradient is wrong (gradcheck fails), so autograd "
                          "through forward is no reference for backward's own derivative",
                          expected=True)
    if any(t.is_complex() for t in (*diff_outputs, *_diff_inputs(subject))):
        raise NoReference("complex values are compared by finite differences", expected=True)
    leaves = fresh_copies(subject.args)
    ref_out = reference.run(leaves)
    ref_outputs = _aligned(subject, func_out, ref_out)
    positions = diff_positions(subject.args)
    ref_inputs = [leaves[p] for p in positions]
    graph = inspect_graph(ref_outputs, ref_inputs)
    if graph.foreign:
        raise NoReference(f"{subject.evaluated} calls {graph.foreign[0]}")
    _same_values(subject, func_out, ref_outputs, request)
    sides = Sides(diff_outputs, [subject.args[p] for p in positions], ref_outputs, ref_inputs,
                  positions)
    tol = request.tolerances
    comparison = compare_reference(sides, atol=tol.atol, rtol=tol.rtol, seed=request.seed,
                                   nondet_tol=tol.nondet_tol)
    _confirm(subject, request, leaves, ref_out, graph.reached)
    how = ("whole Jacobians" if comparison.layout == "reference"
           else f"{PROBES} random grad_outputs")
    evidence = (f"autograd through {subject.evaluated} ({how}), its graph confirmed by "
                f"{GRAPH_PROBES} finite-difference probes per input")
    return [comparison], evidence


def _diff_inputs(subject: Subject) -> list[torch.Tensor]:
    return [a for a in subject.args if is_diff_tensor(a)]


def _aligned(subject: Subject, func_out: tuple[Any, ...], ref_out: tuple[Any, ...]
             ) -> list[torch.Tensor]:
    """The reference's outputs where apply's are differentiable, each reached by autograd."""
    ref_out = as_tuple(ref_out)
    if len(ref_out) != len(func_out):
        raise NoReference(f"{subject.evaluated} returns {len(ref_out)} outputs when autograd "
                          f"records it, {len(func_out)} otherwise")
    found = []
    for p in diff_positions(func_out):
        ref = ref_out[p]
        if not isinstance(ref, torch.Tensor) or ref.shape != func_out[p].shape:
            raise NoReference(f"{subject.evaluated}'s {subject.output_name(p)} is another "
                              "when autograd records it")
        if not ref.requires_grad:
            raise NoReference(f"{subject.evaluated} breaks the graph: autograd through it "
                              f"does not reach {subject.output_name(p)} ({_breaks(subject)})")
        found.append(ref)
    return found


def _same_values(subject: Subject, func_out: tuple[Any, ...], ref_outputs: list[torch.Tensor],
                 request: Request) -> None:
    """apply's outputs and the reference's must be the same values (to rounding)."""
    tol = request.tolerances
    for p, ref in zip(diff_positions(func_out), ref_outputs):
        got = func_out[p].detach().to(torch.float64)
        want = ref.detach().to(torch.float64)
        if got.numel() == 0:
            continue
        scale = float(want.abs().mean() + got.abs().mean())
        eps = torch.finfo(func_out[p].dtype).eps
        off = (got - want).abs()
        if bool((off > tolerance(want, scale, eps, tol.atol, tol.rtol)).any()):
            largest = float(off.max())
            if subject.order == "second":
                raise NoReference(
                    f"backward's gradients differ from autograd's through forward (by up to "
                    f"{largest:.3g}): the first-order gradient is wrong, so autograd is no "
                    "reference for its derivative", expected=True)
            raise NoReference(f"forward gives other values when autograd records it (by up "
                              f"to {largest:.3g} in {subject.output_name(p)})")


def _confirm(subject: Subject, request: Request, leaves: list[Any], ref_out: tuple[Any, ...],
             reached: set[int]) -> None:
    """Finite-difference probes of autograd's graph against forward's values; where they
    disagree, the finite differences win (NoReference names the input)."""
    tol = request.tolerances
    stats = probe_agreement(subject.numeric_fn, leaves, tuple(ref_out), eps=tol.eps,
                            atol=tol.atol, rtol=tol.rtol, seed=request.seed * 2 + 1,
                            probes=GRAPH_PROBES)
    for k, (stat, disagrees) in enumerate(stats):
        name = subject.names[stat.position]
        if stat.first_nonfinite is not None:
            raise NoReference(f"{subject.evaluated} is not finite within eps of `{name}`, "
                              "so finite differences cannot confirm autograd's graph")
        if disagrees:
            if k not in reached:
                raise NoReference(f"{subject.evaluated} breaks the graph at `{name}`: "
                                  f"autograd through it does not reach it ({_breaks(subject)})")
            raise NoReference(f"{subject.evaluated} breaks the graph at `{name}`: autograd "
                              "through it disagrees with finite differences there "
                              f"({_breaks(subject)}), or a kink within the finite-difference "
                              "step")


def _breaks(subject: Subject) -> str:
    return (f"a .detach(), torch.no_grad(), .data, a NumPy round trip or an integer cast in "
            f"{subject.evaluated}?")
