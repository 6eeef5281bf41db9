"""The user's backward against autograd through forward: per-input errors and wrong elements.

Both sides are vector-Jacobian products at the same inputs, so nothing is approximated:
what differs beyond rounding is a wrong gradient. Small Jacobians (up to DENSE_ENTRIES
entries) are compared whole, a row per output element on each side, so the diagnosis
rules see the same blocks as in exact mode (the reference in the numerical one's place).
Larger ones are compared along PROBES seeded random grad_outputs v (signs random,
magnitudes in [0.5, 1.5], so no output row can hide behind a small weight): one backward
on each side gives vᵀJ for every input element at once, and a wrong Jacobian entry (i, j)
shows at input element j. The output row i of the worst element is then found by
bisecting the support of v (elementwise ops first try the row of the same index), and the
entry itself computed exactly on both sides (v = eᵢ).

Tolerance, per compared element r (autograd) and u (backward) of one input:

    |u - r| <= max(atol + rtol · |r|,  ROUNDING_ULPS · ε · (|r| + s)) + nondet_tol

The check's own atol/rtol, per element as exact mode applies them: the two modes' verdicts
agree, and a wider atol accepts in both what it accepts in one. They were chosen for the
noise of finite differences, which the reference does not have, so the errors reported
are exact; the rounding floor only matters when atol/rtol are set tighter than rounding
(atol: 0, rtol: 0). ε is the input dtype's machine epsilon and s the input's mean |r| +
mean |u| (an element whose true value cancels to nearly zero keeps a rounding error the
size of its neighbours'): 2¹⁰ ε (2.3e-13 in float64, 1.2e-4 in float32) is the rounding
of a backward that sums many terms in another order than autograd does. `nondet_tol`, the
run-to-run variation the check allows backward, is allowed between backward and autograd.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from gradcheck_cli.engine.jacobian import WrongGradientShape, analytical_row
from gradcheck_cli.engine.probe.vectors import signed
from gradcheck_cli.engine.reference import NoReference, not_differentiable
from gradcheck_cli.engine.stats import Comparison, InputStats, count_rows, spread
from gradcheck_cli.engine.vjp import vjp

ROUNDING_ULPS = 2.0 ** 10
DENSE_ENTRIES = 1 << 12  # Jacobian entries compared whole, a row per output element
PROBES = 2  # random grad_outputs when not compared whole
KEEP_ENTRIES = 1 << 23  # compared entries kept for the diagnosis, per side (64 MB)
SHOWN = 8  # wrong (row, column) pairs kept per input


@dataclass
class Sides:
    """The user's graph (Function.apply, their backward) and autograd's, at equal inputs."""

    user_outputs: list[torch.Tensor]
    user_inputs: list[torch.Tensor]
    ref_outputs: list[torch.Tensor]
    ref_inputs: list[torch.Tensor]
    positions: list[int]  # of the inputs, in the argument list

    @property
    def sizes(self) -> list[int]:
        return [o.numel() for o in self.user_outputs]

    def user(self, v: torch.Tensor) -> list[torch.Tensor]:
        """The user's backward for grad_output v (flat over the outputs): flat, per input."""
        return analytical_row(self.user_outputs, self.user_inputs, self.sizes, 0,
                              grad_output=v)

    def user_row(self, row: int) -> list[torch.Tensor]:
        return analytical_row(self.user_outputs, self.user_inputs, self.sizes, row)

    def ref(self, v: torch.Tensor) -> list[torch.Tensor]:
        """Autograd's vector-Jacobian product for the same v (outputs or inputs the graph
        does not connect give zeros)."""
        outs, parts, start = [], [], 0
        for output, size in zip(self.ref_outputs, self.sizes):
            part = v[start:start + size]
            start += size
            if output.requires_grad:
                outs.append(output)
                parts.append(part.to(output.dtype).reshape(output.shape).contiguous())
        grads: Sequence[torch.Tensor | None] = [None] * len(self.ref_inputs)
        if outs:
            try:
                grads = vjp(outs, self.ref_inputs, parts, retain_graph=True)
            except RuntimeError as exc:
                raise NoReference(not_differentiable(exc)) from None
        return [torch.zeros(x.numel(), dtype=x.dtype) if g is None
                else g.detach().reshape(-1).to(x.dtype) for g, x in zip(grads, self.ref_inputs)]

    def ref_row(self, row: int) -> list[torch.Tensor]:
        one_hot = torch.zeros(sum(self.sizes), dtype=torch.float64)
        one_hot[row] = 1.0
        return self.ref(one_hot)


def compare_reference(sides: Sides, *, atol: float, rtol: float, seed: int,
                      nondet_tol: float = 0.0) -> Comparison:
    """Every input's errors against the reference (see the module's docstring); backward
    may also vary by `nondet_tol` between runs, as the check allows."""
    sizes = sides.sizes
    stats = [InputStats(position=p, numel=x.numel())
             for p, x in zip(sides.positions, sides.user_inputs)]
    rows = sum(sizes)
    columns = sum(x.numel() for x in sides.user_inputs)
    dense = rows * columns <= DENSE_ENTRIES
    comparison = Comparison(inputs=stats, output_sizes=sizes,
                            output_shapes=[tuple(o.shape) for o in sides.user_outputs],
                            layout="reference" if dense else "projected")
    generator = torch.Generator().manual_seed(seed)
    probes = PROBES + int(any(x.numel() == PROBES for x in sides.user_inputs))
    vs = [_random_v(sides, generator) for _ in range(probes)]
    # torch's nondeterminism check: backward twice on the same grad_output.
    first, again = sides.user(vs[0]), sides.user(vs[0])
    for stat, g1, g2 in zip(stats, first, again):
        stat.nondeterminism = spread(g1, g2)
    if dense:
        user = _stack([sides.user_row(r) for r in range(rows)], sides.user_inputs, rows)
        ref = _stack([sides.ref_row(r) for r in range(rows)], sides.user_inputs, rows)
    else:
        user = _stack([first, *(sides.user(v) for v in vs[1:])], sides.user_inputs, len(vs))
        ref = _stack([sides.ref(v) for v in vs], sides.user_inputs, len(vs))
    keep = sum(u.numel() for u in user) <= KEEP_ENTRIES
    for k, (stat, u, r) in enumerate(zip(stats, user, ref)):
        wrong = _score(stat, u, r, atol, rtol, sizes, dense, nondet_tol)
        if not dense and wrong is not None and stat.first_nonfinite is None:
            _localize(sides, stat, k, vs, u.to(torch.float64) - r.to(torch.float64), wrong,
                      atol, rtol)
        if keep:
            stat.analytical, stat.numerical = u, r
    return comparison


def _random_v(sides: Sides, generator: torch.Generator) -> torch.Tensor:
    # Rounded to each output's dtype first, so both sides receive exactly this v.
    parts = [signed(o.numel(), generator).to(o.dtype).to(torch.float64)
             for o in sides.user_outputs]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def _stack(found: list[list[torch.Tensor]], inputs: list[torch.Tensor], rows: int
           ) -> list[torch.Tensor]:
    """Per input, the rows found (rows x numel, in the input's dtype)."""
    blocks = [torch.zeros((rows, x.numel()), dtype=x.dtype) for x in inputs]
    for row, grads in enumerate(found):
        for block, grad in zip(blocks, grads):
            if grad.shape != block.shape[1:]:  # pragma: no cover - analytical_row checks
                raise WrongGradientShape(0, tuple(grad.shape), tuple(block.shape[1:]))
            block[row] = grad
    return blocks


def tolerance(ref: torch.Tensor, scale: float, eps: float, atol: float, rtol: float
              ) -> torch.Tensor:
    """Per element, how far backward may be from the reference (module docstring)."""
    magnitude = ref.abs()
    return torch.maximum(atol + rtol * magnitude, ROUNDING_ULPS * eps * (magnitude + scale))


def _score(stat: InputStats, user: torch.Tensor, ref: torch.Tensor, atol: float,
           rtol: float, sizes: list[int], dense: bool, nondet_tol: float
           ) -> torch.Tensor | None:
    """Fold one input's compared rows into `stat`; the wrong mask (rows x numel) or None."""
    if user.numel() == 0:
        return None
    u, r = user.to(torch.float64), ref.to(torch.float64)
    if not bool(torch.isfinite(r).all()):
        raise NoReference("autograd's gradient through forward is not finite where forward "
                          "is")
    bad = ~torch.isfinite(u)
    if bool(bad.any()):
        stat.nonfinite_analytical = int(bad.sum())
        row, column = (int(i) for i in torch.nonzero(bad)[0])
        stat.first_nonfinite = ("analytical", row, column, float(u[row, column]))
        u = torch.where(bad, r, u)
    eps = torch.finfo(user.dtype).eps
    scale = float(r.abs().mean() + u.abs().mean())
    difference = (u - r).abs()
    wrong = difference > tolerance(r, scale, eps, atol, rtol) + nondet_tol
    larger = torch.maximum(u.abs(), r.abs())
    relative = torch.where(larger > 0, difference / torch.where(larger > 0, larger, 1), 0)
    stat.max_abs = float(difference.max())
    stat.max_rel = float(relative.max())
    if not bool(wrong.any()):
        return None
    columns = user.shape[1]
    if dense:
        stat.wrong = int(wrong.sum())
        worst = int(difference.argmax())
        row, column = divmod(worst, columns)
        stat.worst = (row, column, float(user[row, column]), float(ref[row, column]))
        stat.worst_wrong = [divmod(int(i), columns)
                            for i in torch.nonzero(wrong.view(-1))[:SHOWN].flatten()]
        count_rows(stat, torch.nonzero(wrong.any(dim=1)).flatten(), sizes)
    else:
        stat.wrong = int(wrong.any(dim=0).sum())
    return wrong


def _localize(sides: Sides, stat: InputStats, k: int, vs: list[torch.Tensor],
              difference: torch.Tensor, wrong: torch.Tensor, atol: float, rtol: float
              ) -> None:
    """The output row of the worst wrong element (`difference`: backward - autograd, per
    probe and element), that Jacobian entry on both sides, and which outputs have wrong
    rows (the second-order diagnosis reads them)."""
    worst = int(torch.where(wrong, difference.abs(), -1.0).argmax())
    probe, column = divmod(worst, difference.shape[1])
    v = vs[probe]
    row, a, n = _locate_entry(sides, k, column, v, float(difference[probe, column]))
    stat.worst = (row, column, a, n)
    stat.max_abs = max(stat.max_abs, abs(a - n))
    scale = max(abs(a), abs(n))
    if scale > 0:
        stat.max_rel = max(stat.max_rel, abs(a - n) / scale)
    stat.worst_wrong = [(row, column)]  # only the worst element's row is looked for
    sizes = sides.sizes
    if len(sizes) == 1:
        stat.rows_wrong_by_output = {0: stat.wrong}
        return
    start = 0
    for output, size in enumerate(sizes):
        masked = torch.zeros_like(v)
        masked[start:start + size] = v[start:start + size]
        start += size
        u, r = sides.user(masked)[k].to(torch.float64), sides.ref(masked)[k].to(torch.float64)
        eps = torch.finfo(sides.user_inputs[k].dtype).eps
        scale_k = float(r.abs().mean() + u.abs().mean())
        count = int(((u - r).abs() > tolerance(r, scale_k, eps, atol, rtol)).sum())
        if count:
            stat.rows_wrong_by_output[output] = count
    if not stat.rows_wrong_by_output:
        count_rows(stat, torch.tensor([row]), sizes)


def _entry(sides: Sides, k: int, row: int, column: int) -> tuple[float, float]:
    """Jacobian entry (row, column) of input k: backward's and autograd's."""
    return (float(sides.user_row(row)[k][column]), float(sides.ref_row(row)[k][column]))


def _locate_entry(sides: Sides, k: int, column: int, v: torch.Tensor, discrepancy: float
                  ) -> tuple[int, float, float]:
    """The output row carrying most of the discrepancy at `column`, with its entry: the
    row of the same index in an output as large as the input first (an elementwise op's
    only one: two backward passes), else by bisection on the support of v, one backward
    per side and step."""
    numel = sides.user_inputs[k].numel()
    start = 0
    for size in sides.sizes:
        if size == numel:
            row = start + column
            a, n = _entry(sides, k, row, column)
            if abs(float(v[row]) * (a - n) - discrepancy) <= 1e-6 * abs(discrepancy):
                return row, a, n
        start += size
    lo, hi, current = 0, v.numel(), discrepancy
    while hi - lo > 1:
        middle = (lo + hi) // 2
        masked = torch.zeros_like(v)
        masked[lo:middle] = v[lo:middle]
        left = float(sides.user(masked)[k][column].double()
                     - sides.ref(masked)[k][column].double())
        right = current - left
        if abs(left) >= abs(right):
            hi, current = middle, left
        else:
            lo, current = middle, right
    return (lo, *_entry(sides, k, lo, column))
