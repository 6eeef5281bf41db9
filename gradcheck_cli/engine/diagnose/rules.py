"""A Jacobian mismatch -> the most likely bug (swapped, sign, scale, ...), with evidence.

Works on the analytical and numerical Jacobian blocks of each input (rows: output
elements, columns: input elements), or, in probe mode, on what the probes measured (each
random direction's analytical and numerical derivative, the entries localized). Pure
computation: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from gradcheck_cli.engine.jacobian import InputStats, unravel
from gradcheck_cli.results import Diagnosis, format_index

# probe(position, flat_index, step) -> the flat outputs with that input element moved by step
Probe = Callable[[int, int, float], torch.Tensor]


@dataclass(frozen=True)
class Block:
    """One input's Jacobian pair and what is needed to describe it."""

    stats: InputStats
    name: str
    shape: tuple[int, ...]


def _index(shape: Sequence[int], flat: int) -> str:
    return format_index(unravel(flat, shape))


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> bool:
    return a.shape == b.shape and bool(torch.isclose(a, b, rtol=rtol, atol=atol).all())


def _factor_hint(k: float) -> str:
    for target, hint in ((0.5, "a missing factor 2?"), (2.0, "an extra factor 2?"),
                         (1 / 3, "a missing factor 3?"), (3.0, "an extra factor 3?")):
        if abs(k - target) <= 1e-3 * abs(target):
            return hint
    return "a missing or extra constant factor?"


def diagnose_first_order(blocks: list[Block], rtol: float, atol: float, nondet_tol: float,
                         probe: Probe | None = None, eps: float = 1e-6
                         ) -> dict[int, Diagnosis]:
    """A diagnosis for each failing input, keyed by its position in the argument list."""
    found: dict[int, Diagnosis] = {}
    for block in blocks:
        stats = block.stats
        if stats.nondeterminism > nondet_tol:
            found[stats.position] = Diagnosis(
                "nondeterministic",
                f"two backward runs on the same input and grad_output differ by up to "
                f"{stats.nondeterminism:.3g} for `{block.name}`; if that is expected "
                f"(atomics, randomness), set `nondet_tol` to at least {stats.nondeterminism:.2g}",
            )
            continue
        if stats.wrong == 0 or stats.first_nonfinite is not None:
            continue
        diagnosis = _pattern(block, blocks, rtol, atol, probe, eps)
        found[stats.position] = diagnosis
    return found


def _pattern(block: Block, blocks: list[Block], rtol: float, atol: float,
             probe: Probe | None, eps: float) -> Diagnosis:
    stats = block.stats
    a, n = stats.analytical, stats.numerical
    name = block.name
    if stats.directional:
        return _probe_pattern(block, blocks)
    if a is None or n is None:
        return _unknown(block, "the Jacobian was too large to keep for a closer look")
    a = a.to(torch.promote_types(a.dtype, n.dtype))
    n = n.to(a.dtype)
    # A kink first: at a non-differentiable point any pattern (zero, partial, ...) may show,
    # and none of them is a bug of backward.
    wrong_columns = (~torch.isclose(a, n, rtol=rtol, atol=atol)).any(dim=0)
    columns = torch.nonzero(wrong_columns).flatten().tolist()
    kink = _kink(block, columns, a, probe, eps, atol) if probe and columns else None
    if kink is not None:
        return kink
    if bool((a == 0).all()):
        return Diagnosis(
            "zero",
            f"backward returns no gradient for `{name}` (None or all zeros), but the outputs "
            f"depend on it (numerical derivatives up to {float(n.abs().max()):.3g}); return "
            "its gradient, and check that forward does not detach it",
        )
    for other in blocks:
        if other is block or other.stats.numerical is None:
            continue
        other_n = other.stats.numerical.to(a.dtype)
        if _close(a, other_n, rtol, atol):
            back = other.stats.analytical
            mutual = back is not None and _close(back.to(a.dtype), n, rtol, atol)
            return _swapped(name, other.name, mutual)
    if not a.is_complex():
        denominator = float((n * n).sum())
        if denominator > 0:
            k = float((a * n).sum()) / denominator
            if _close(a, k * n, rtol, atol):
                return _sign_or_scale(name, k, "everywhere")
    if a.shape[0] == a.shape[1] and _close(a, n.T, rtol, atol):
        return Diagnosis("transposed", _transposed_block(name))
    if len(block.shape) == 2 and block.shape[0] == block.shape[1] > 1:
        m = block.shape[0]
        rows = a.shape[0]
        if _close(a.reshape(rows, m, m).transpose(1, 2).reshape(rows, -1), n, rtol, atol):
            return Diagnosis("transposed", _transposed_gradient(name))
    count = int(wrong_columns.sum())
    total = wrong_columns.numel()
    if 0 < count < total:
        shown = ", ".join(f"{name}{_index(block.shape, c)}" for c in columns[:5])
        more = f" and {count - 5} more" if count > 5 else ""
        return Diagnosis(
            "partial",
            f"the gradient of `{name}` is wrong at {count} of {total} elements ({shown}{more}) "
            "and right elsewhere: a mask, threshold or index in backward is off there",
        )
    return _unknown(block)


def _probe_pattern(block: Block, blocks: list[Block]) -> Diagnosis:
    """The same patterns from probe mode's evidence: each random direction's analytical and
    numerical derivative (with its noise threshold), the entries localized, and whether
    another input's numerical derivative matches this one's analytical one."""
    stats = block.stats
    name = block.name
    probes = stats.directional
    if stats.resembles is not None:
        other = next((b for b in blocks if b.stats.position == stats.resembles), None)
        if other is not None:
            mutual = other.stats.resembles == stats.position
            return _swapped(name, other.name, mutual, SEEN_BY_PROBES)
    if stats.transposed == "jacobian":
        return Diagnosis("transposed", _transposed_block(name) + SEEN_BY_PROBES)
    if stats.transposed == "gradient":
        return Diagnosis("transposed", _transposed_gradient(name) + SEEN_BY_PROBES)
    # Patterns that hold everywhere show in every direction, beyond each probe's noise.
    if len(probes) >= 2 and all(abs(a - n) > t for a, n, t in probes):
        if all(abs(a) <= t for a, _, t in probes):
            largest = max(abs(n) for _, n, _ in probes)
            return Diagnosis(
                "zero",
                f"backward returns no gradient for `{name}` (zero along every probe "
                f"direction), but the outputs depend on it (numerical directional derivatives "
                f"up to {largest:.3g}); return its gradient, and check that forward does not "
                "detach it",
            )
        denominator = sum(n * n for _, n, _ in probes)
        if denominator > 0:
            k = sum(a * n for a, n, _ in probes) / denominator
            if all(abs(a - k * n) <= t for a, n, t in probes):
                return _sign_or_scale(name, k, "along every probe direction")
    columns = sorted({column for _, column in stats.worst_wrong})
    if stats.explained and 0 < len(columns) < stats.numel:
        shown = ", ".join(f"{name}{_index(block.shape, c)}" for c in columns[:5])
        return Diagnosis(
            "partial",
            f"the gradient of `{name}` is wrong at {shown} and right elsewhere as far as "
            "random-direction probes can tell (the wrong entries found account for the "
            "whole discrepancy): a mask, threshold or index in backward is off there",
        )
    return _unknown(block)


SEEN_BY_PROBES = " (seen along random directions)"


def _swapped(name: str, other: str, mutual: bool, suffix: str = "") -> Diagnosis:
    detail = f"the gradient returned for `{name}` is the gradient of `{other}`"
    detail += (f", and the one returned for `{other}` is that of `{name}`: "
               "backward returns them in the wrong order" if mutual else
               f": backward returns `{other}`'s gradient in `{name}`'s place")
    return Diagnosis("swapped", detail + suffix)


def _sign_or_scale(name: str, k: float, where: str) -> Diagnosis:
    """analytical = k × numerical `where` (everywhere, or along every probe direction)."""
    if abs(k + 1) <= 1e-3:
        return Diagnosis("sign", f"the gradient of `{name}` has the wrong sign: "
                                 f"analytical = -numerical {where}")
    return Diagnosis(
        "scale",
        f"the gradient of `{name}` is off by a factor {k:.4g} {where} "
        f"(analytical = {k:.4g} × numerical) — {_factor_hint(k)}",
    )


def _transposed_block(name: str) -> str:
    return (f"the Jacobian block of `{name}` is the transpose of the right one: a matrix in "
            "backward is used transposed (e.g. `g @ W` where `g @ W.T` was meant)")


def _transposed_gradient(name: str) -> str:
    return (f"the gradient of `{name}` is the transpose of the right one: return `grad.T` "
            "(e.g. `x.T @ g` where `g.T @ x` was meant)")


def _kink(block: Block, columns: list[int], a: torch.Tensor, probe: Probe, eps: float,
          atol: float) -> Diagnosis | None:
    """A mismatch confined to elements where the left and right slopes differ: a kink."""
    position = block.stats.position
    kinks = []
    for column in columns[:5]:
        base = probe(position, column, 0.0)
        analytic = a[:, column]
        right, left = _slopes(probe, position, column, base, eps)
        wide_right, wide_left = _slopes(probe, position, column, base, 10 * eps)
        # Smooth: the one-sided slopes differ by about h·f'', so 10x the step gives a 10x
        # larger jump. At a kink the jump is the change of slope, whatever the step.
        jump = float((right - left).abs().max())
        wide_jump = float((wide_right - wide_left).abs().max())
        at_kink = jump > 10 * atol and wide_jump <= 3 * jump
        # A kink within eps of the element but not at it: a 100x smaller central step no
        # longer straddles it and agrees with backward.
        tiny = eps / 100
        central = (probe(position, column, tiny) - probe(position, column, -tiny)) / (2 * tiny)
        near_kink = wide_jump > 10 * atol and bool(
            torch.isclose(central, analytic, rtol=1e-3, atol=1e-4).all())
        if not (at_kink or near_kink):
            return None
        side = ("the right-hand slope" if bool(torch.isclose(analytic, right, atol=1e-4).all())
                else "the left-hand slope" if bool(torch.isclose(analytic, left, atol=1e-4).all())
                else "neither one-sided slope")
        kinks.append((column, jump, side))
    if not kinks:
        return None
    shown = ", ".join(f"{block.name}{_index(block.shape, c)}" for c, _, _ in kinks)
    if len(columns) > len(kinks):
        shown += f" ({len(kinks)} of the {len(columns)} wrong elements checked)"
    side = kinks[0][2]
    return Diagnosis(
        "kink",
        f"the mismatch is at elements that sit at a non-differentiable point: {shown} "
        f"(the one-sided slopes differ by up to {max(j for _, j, _ in kinks):.3g}; backward "
        f"gives {side}). Finite differences straddle the kink there, so this is probably not "
        "a bug in backward: rerun with --dodge-kinks, or add `avoid: [0.0]` to the input",
    )


def _slopes(probe: Probe, position: int, column: int, base: torch.Tensor, h: float
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """The right and left one-sided difference quotients with step h."""
    return (probe(position, column, h) - base) / h, (base - probe(position, column, -h)) / h


def _unknown(block: Block, why: str = "") -> Diagnosis:
    worst = block.stats.worst
    detail = "no simple pattern fits"
    if worst is not None:
        _, column, a, n = worst
        detail += (f"; the worst element is {block.name}{_index(block.shape, column)}: "
                   f"analytical {complex(a).real:.6g}, numerical {complex(n).real:.6g}")
    if why:
        detail += f" ({why})"
    return Diagnosis("unknown", detail)


def diagnose_second_order(blocks: list[Block], output_names: Callable[[int], str],
                          first_order_ok: bool | None) -> dict[int, Diagnosis]:
    """gradgradcheck failures, in terms of the user's inputs: d(grad of x)/d(y) is wrong."""
    found: dict[int, Diagnosis] = {}
    for block in blocks:
        stats = block.stats
        if stats.wrong == 0 or stats.first_nonfinite is not None:
            continue
        wrong_rows = sorted(stats.rows_wrong_by_output)
        derivs = ", ".join(f"∂({output_names(o)})/∂`{block.name}`" for o in wrong_rows)
        a = stats.analytical
        detail = f"the second derivative is wrong: {derivs}"
        if a is not None and bool((a == 0).all()):
            detail += (f" is zero through autograd although it is not: backward uses a tensor "
                       f"that forward computed from `{block.name}` without autograd (a saved "
                       "intermediate); save the inputs (or the output) instead and recompute "
                       "in backward with differentiable torch ops, or mark backward "
                       "@once_differentiable")
        else:
            detail += (": backward's formula is right at first order but not differentiable "
                       "as written (a saved intermediate, an in-place op, or a detach)")
        if first_order_ok is False:
            detail = "the first-order gradient is wrong too: fix it first. " + detail
        found[stats.position] = Diagnosis("second-order", detail)
    return found
