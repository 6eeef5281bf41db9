"""Probe mode: random-direction checks of vᵀJu against finite differences, then localization.

For each probe, one backward with a random grad_output v gives g = vᵀJ for every input;
for each input, its dot with a random direction u is compared with the central
difference of vᵀf along u. Unlike torch's fast mode, whose tolerance grows with the sums
of the probe vectors (atol·Σu·Σv) and so swamps a single wrong entry among many, a probe
here is accepted or rejected against an estimate of the finite-difference noise of that
very probe:

  noise = |δ(h) - δ(2h)|                 truncation (and rounding) seen as the step changes
        + ε_out·Σ|vᵣ||fᵣ| / h            rounding of the two evaluations of f
        + 2·ε_in·Σ|gⱼ||Δⱼ| / 2h           rounding of backward and of the analytical dot

where δ(s) = analytical - numerical at step s and Δ the realized perturbation. A probe
fails when |δ(h)| > CONFIDENCE·noise. Entries of u and v have random signs and
magnitudes in [0.5, 1.5], so a single wrong entry E moves δ by at least E/4 whatever the
input's size, while the noise grows with the size only through rounding.

A failed probe is localized by bisection on the input's elements (the analytical dot over
a block needs no new backward; the numerical one perturbs that block only), then, for a
suspect element, on the output rows (one backward with v restricted to the rows). The
leaves are single Jacobian entries computed exactly as in exact mode (torch's central
difference with the user's eps, one backward with v = eᵣ) and judged with the same
atol/rtol, so probe mode fails an input only for an entry exact mode would fail too.

Reported per input: `max_abs`/`max_rel` are the largest directional discrepancies found
(random directions, suspect columns, and single entries); `wrong` and `worst` count and
name the wrong entries localized, a lower bound of exact mode's count.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from gradcheck_cli.engine.jacobian import (
    Comparison,
    InputStats,
    _count_rows,
    _scalar,
    analytical_row,
    diff_positions,
    evaluate_flat,
    flat_outputs,
    numerical_columns,
    spread,
)

Fn = Callable[..., Any]

# A discrepancy is significant beyond this many times its noise estimate. The noise terms
# are bounds or estimates of the same order as the error; 10 leaves room for the
# estimate of a single probe being low, and costs little power: a wrong entry still has to
# be only ~40 noise units large to be seen (|vᵣuⱼ| >= 1/4).
CONFIDENCE = 10.0
# Step of the directional difference, relative to cbrt(ε) (the step that balances
# truncation ~h² and rounding ~ε/h for a central difference), per unit of max(1, |x|).
STEP_FACTOR = 2.0
# Rows of a suspect column checked one by one when the numerical column has this few
# nonzeros (an elementwise op has one); more are searched by bisection.
SUPPORT_ROWS = 16


@dataclass(frozen=True)
class ProbeSettings:
    """How hard probe mode looks."""

    probes: int = 3  # random directions per input
    findings: int = 4  # wrong entries to pin down per input at most
    evaluations: int = 400  # forward and backward calls localization may spend per input
    confidence: float = CONFIDENCE
    # Elements examined and found within atol/rtol before localization concludes that the
    # discrepancy is spread thinly over many right-enough entries (a backward computed in
    # lower precision, say): best-first search reaches a wrong entry before those.
    clean_elements: int = 2


@dataclass
class _Probe:
    """One random grad_output v, its vᵀJ for every input, and the directions u."""

    v: torch.Tensor  # float64, flat over the outputs, exactly as backward received it
    grads: list[torch.Tensor]  # vᵀJ per input, flat, widened, non-finite entries zeroed
    directions: list[torch.Tensor]  # per input, flat, widened, scaled by max(1, |x|)
    rounding: float  # ε_out·Σ|vᵣ||fᵣ|: the rounding of vᵀf, before dividing by the step
    # Per input, Σ|gⱼ||uⱼ|, and once localization starts its running sum (with a leading 0)
    # so that the analytical rounding of any block [lo, hi) costs O(1).
    weights: list[float] = field(default_factory=list)
    running: dict[int, torch.Tensor] = field(default_factory=dict)

    def borrow(self, v: torch.Tensor | None = None, rounding: float | None = None) -> _Probe:
        """A copy whose per-input lists can be changed (a test along other directions),
        with its own running sums."""
        return _Probe(self.v if v is None else v, [*self.grads], [*self.directions],
                      self.rounding if rounding is None else rounding, [*self.weights])

    def weight(self, k: int, lo: int, hi: int) -> float:
        """Σ|gⱼ||uⱼ| over [lo, hi) of input k."""
        if lo == 0 and hi == self.grads[k].numel():
            return self.weights[k]
        if k not in self.running:
            running = torch.zeros(self.grads[k].numel() + 1, dtype=torch.float64)
            torch.cumsum(self.grads[k].abs() * self.directions[k].abs(), 0, out=running[1:])
            self.running[k] = running
        return (self.running[k][hi] - self.running[k][lo]).item()


@dataclass
class _Test:
    """A directional comparison on elements [lo, hi) of one input, at step h."""

    lo: int
    hi: int
    discrepancy: float  # analytical - numerical
    analytical: float
    numerical: float
    noise: float

    def significant(self, confidence: float) -> bool:
        return abs(self.discrepancy) > confidence * self.noise


@dataclass
class _Search:
    """Localization state for one input."""

    evaluations: int = 0
    findings: list[tuple[int, int, complex | float, complex | float]] = field(
        default_factory=list)
    checked_columns: set[int] = field(default_factory=set)
    clean: int = 0  # elements examined without a wrong entry
    exhausted: bool = False


class _Input:
    """One differentiable input, perturbed in place along a block of a direction."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.data = tensor.data
        self.original = self.data.clone(memory_format=torch.contiguous_format).view(-1)
        self.numel = self.original.numel()
        self.is_complex = tensor.is_complex()
        self.wide = torch.complex128 if self.is_complex else torch.float64
        real = self.original.real if self.is_complex else self.original
        self.eps = torch.finfo(real.dtype).eps
        self.step = STEP_FACTOR * self.eps ** (1 / 3)
        # Directions are scaled by max(1, |x|) so that x ± h·u moves every element by a
        # representable amount, whatever its magnitude.
        self.scale = torch.clamp(self.original.abs().to(torch.float64), min=1.0)

    def set(self, lo: int, hi: int, values: torch.Tensor) -> None:
        if self.data.is_contiguous():
            self.data.view(-1)[lo:hi] = values
        else:
            full = self.original.clone()
            full[lo:hi] = values
            self.data.copy_(full.view(self.data.shape))

    def restore(self, lo: int, hi: int) -> None:
        self.set(lo, hi, self.original[lo:hi])


def probe_compare(fn: Fn, args: list[Any], func_out: tuple[Any, ...], *, eps: float,
                  atol: float, rtol: float, seed: int,
                  settings: ProbeSettings | None = None) -> Comparison:
    """Probe-mode counterpart of `jacobian.compare`, with the same per-input statistics."""
    return _Prober(fn, args, func_out, eps=eps, atol=atol, rtol=rtol, seed=seed,
                   settings=settings or ProbeSettings()).run()


class _Prober:
    def __init__(self, fn: Fn, args: list[Any], func_out: tuple[Any, ...], *, eps: float,
                 atol: float, rtol: float, seed: int, settings: ProbeSettings) -> None:
        self.fn = fn
        self.args = args
        self.func_out = func_out
        self.eps = eps
        self.atol = atol
        self.rtol = rtol
        self.settings = settings
        self.generator = torch.Generator().manual_seed(seed)
        self.positions = diff_positions(args)
        self.diff_inputs = [args[i] for i in self.positions]
        self.out_positions = diff_positions(func_out)
        self.outputs = [func_out[i] for i in self.out_positions]
        self.sizes = [o.numel() for o in self.outputs]
        reference = flat_outputs(func_out, self.out_positions)
        self.eps_out = torch.finfo(reference.dtype).eps
        self.reference = reference.to(torch.float64).abs()  # |f(x)|, for rounding bounds
        self.inputs = [_Input(x) for x in self.diff_inputs]
        self.stats = [InputStats(position=p, numel=args[p].numel()) for p in self.positions]
        self.search: _Search | None = None  # the localization under way, if any

    def run(self) -> Comparison:
        comparison = Comparison(inputs=self.stats, output_sizes=self.sizes,
                                output_shapes=[tuple(o.shape) for o in self.outputs],
                                layout="probe")
        failed: list[list[tuple[_Probe, _Test]]] = [[] for _ in self.inputs]
        for index in range(self.settings.probes):
            probe = self._probe(check_nondeterminism=index == 0)
            for k, stat in enumerate(self.stats):
                if self.inputs[k].numel == 0 or stat.first_nonfinite is not None:
                    continue
                test = self._measure(k, probe, 0, self.inputs[k].numel, both_steps=True)
                if test is None:
                    continue
                threshold = self.settings.confidence * test.noise
                stat.directional.append((test.analytical, test.numerical, threshold))
                self._fold(stat, test.analytical, test.numerical)
                if test.significant(self.settings.confidence):
                    failed[k].append((probe, test))
        for k, stat in enumerate(self.stats):
            if failed[k] and stat.first_nonfinite is None:
                self._localize(k, failed[k])
        for k, stat in enumerate(self.stats):
            if stat.wrong:
                self._resemblance(k, failed[k])
            if stat.wrong and stat.resembles is None:
                self._transposition(k, failed[k])
        return comparison

    def _transposition(self, k: int, failed: list[tuple[_Probe, _Test]]) -> None:
        """Is input k's analytical derivative the numerical one transposed? One central
        difference per pattern, judged as `_resemblance` judges.

        As a square matrix gradient (G_a = G_trueᵀ): ⟨G_a, U⟩ = ⟨G_true, Uᵀ⟩, so moving the
        input along Uᵀ must give the analytical value along U. As a Jacobian block (as many
        input as output elements, J_a = J_trueᵀ): vᵀJ_a u = uᵀJ_true v, so moving the input
        along v and weighing the outputs by u must give it."""
        inp = self.inputs[k]
        if inp.is_complex or any(o.is_complex() for o in self.outputs):
            return
        probe, test = _most_significant(failed)
        limit = self.settings.confidence
        shape = self.diff_inputs[k].shape
        if len(shape) == 2 and shape[0] == shape[1] > 1:
            m = shape[0]

            def flip(flat: torch.Tensor) -> torch.Tensor:
                return flat.view(m, m).t().reshape(-1)

            borrowed = probe.borrow()
            borrowed.grads[k], borrowed.directions[k] = (flip(probe.grads[k]),
                                                         flip(probe.directions[k]))
            result = self._difference(k, borrowed, 0, inp.numel, inp.step)
            if result is not None:
                analytical, numerical, rounding = result
                if abs(analytical - numerical) <= limit * (test.noise + rounding):
                    self.stats[k].transposed = "gradient"
                    return
        if sum(self.sizes) == inp.numel and inp.numel > 1:
            u = probe.directions[k]
            rounding = self.eps_out * float(torch.dot(u.abs(), self.reference))
            borrowed = probe.borrow(v=u, rounding=rounding)
            borrowed.directions[k] = probe.v
            result = self._difference(k, borrowed, 0, inp.numel, inp.step)
            if result is not None:
                numerical = result[1]
                noise = test.noise + rounding / inp.step
                if abs(test.analytical - numerical) <= limit * noise:
                    self.stats[k].transposed = "jacobian"

    def _resemblance(self, k: int, failed: list[tuple[_Probe, _Test]]) -> None:
        """Is input k's analytical derivative another input's numerical one? (A gradient
        returned in the wrong place.) One central difference per same-shaped input."""
        probe, test = _most_significant(failed)
        for j, other in enumerate(self.inputs):
            if j == k or self.diff_inputs[j].shape != self.diff_inputs[k].shape or (
                    other.is_complex != self.inputs[k].is_complex):
                continue
            # Input j moved along input k's direction, judged against k's analytical value.
            borrowed = probe.borrow()
            borrowed.grads[j], borrowed.directions[j] = probe.grads[k], probe.directions[k]
            borrowed.weights[j] = probe.weights[k]
            result = self._difference(j, borrowed, 0, other.numel, other.step)
            if result is None:
                continue
            analytical, numerical, rounding = result
            if abs(analytical - numerical) <= self.settings.confidence * (test.noise + rounding):
                self.stats[k].resembles = self.positions[j]
                return

    # --- random vectors -------------------------------------------------------------

    def _signed(self, count: int) -> torch.Tensor:
        """Random signs times magnitudes uniform in [0.5, 1.5]: no entry is near zero, so a
        single wrong Jacobian entry can never hide behind a tiny weight."""
        centered = torch.empty(count, dtype=torch.float64).uniform_(-1, 1,
                                                                    generator=self.generator)
        return centered.add_(torch.sign(centered), alpha=0.5)  # |centered| ~ U[0, 1]

    def _probe(self, check_nondeterminism: bool) -> _Probe:
        parts = []
        for output in self.outputs:
            # Round v to each output's dtype first, so the numerical side uses exactly the
            # grad_output backward receives.
            parts.append(self._signed(output.numel()).to(output.dtype).to(torch.float64))
        v = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
        raw = analytical_row(self.outputs, self.diff_inputs, self.sizes, 0, grad_output=v)
        if check_nondeterminism:
            again = analytical_row(self.outputs, self.diff_inputs, self.sizes, 0,
                                   grad_output=v)
            for stat, g1, g2 in zip(self.stats, raw, again):
                stat.nondeterminism = max(stat.nondeterminism, spread(g1, g2))
        grads = []
        for stat, grad in zip(self.stats, raw):
            # A sum is finite when every term is (barring overflow, which only costs the
            # full scan below).
            if not math.isfinite(abs(grad.sum().item())) and not bool(torch.isfinite(grad).all()):
                finite = torch.isfinite(grad)
                bad = ~finite
                stat.nonfinite_analytical += int(bad.sum())
                if stat.first_nonfinite is None:
                    column = int(torch.nonzero(bad)[0])
                    stat.first_nonfinite = ("analytical", 0, column,
                                            complex(grad[column]).real)
                grad = torch.where(finite, grad, 0)
            grads.append(grad.to(torch.complex128 if grad.is_complex() else torch.float64))
        directions, weights = [], []
        for inp, grad in zip(self.inputs, grads):
            direction = self._signed(inp.numel).mul_(inp.scale)
            if inp.is_complex:
                direction = torch.complex(direction, self._signed(inp.numel).mul_(inp.scale))
            directions.append(direction)
            weights.append(torch.dot(grad.abs().to(torch.float64),
                                     direction.abs().to(torch.float64)).item())
        rounding = self.eps_out * float(torch.dot(v.abs(), self.reference))
        return _Probe(v, grads, directions, rounding, weights)

    # --- one directional comparison -------------------------------------------------

    def _difference(self, k: int, probe: _Probe, lo: int, hi: int, step: float
                    ) -> tuple[float, float, float] | None:
        """(analytical, numerical, analytical rounding) of the derivative of vᵀf along the
        direction restricted to [lo, hi), by a central difference of step `step`; None
        when forward is not finite there."""
        inp = self.inputs[k]
        original = inp.original[lo:hi]
        offset = step * probe.directions[k][lo:hi]
        plus = (original.to(inp.wide) + offset).to(original.dtype)
        minus = (original.to(inp.wide) - offset).to(original.dtype)
        try:
            inp.set(lo, hi, plus)
            after = evaluate_flat(self.fn, self.args, self.func_out, self.out_positions,
                                  step)
            inp.set(lo, hi, minus)
            before = evaluate_flat(self.fn, self.args, self.func_out, self.out_positions,
                                   step)
        finally:
            inp.restore(lo, hi)
        change = after.to(torch.float64) - before.to(torch.float64)
        numerical = torch.dot(probe.v, change).item()
        # v has no zero entry, so a non-finite change makes the dot non-finite.
        if not math.isfinite(numerical) and not bool(torch.isfinite(change).all()):
            self._numerical_nonfinite(k, change)
            return None
        # The analytical side along the perturbation actually stored (x + h·u rounds):
        # the rounding of the input then cancels out of the comparison.
        realized = plus.to(inp.wide) - minus.to(inp.wide)
        grad = probe.grads[k][lo:hi]
        # Re(conj(g)·Δ) for a complex input: torch's gradient convention for a real loss.
        analytical = (torch.vdot(grad, realized).real.item() if inp.is_complex
                      else torch.dot(grad, realized).item())
        # Σ|gⱼ||Δⱼ| / 2h = Σ|gⱼ||uⱼ| over the block, up to rounding.
        weight = probe.weight(k, lo, hi)
        return analytical / (2 * step), numerical / (2 * step), 2 * inp.eps * weight

    def _measure(self, k: int, probe: _Probe, lo: int, hi: int, both_steps: bool,
                 truncation: float = 0.0) -> _Test | None:
        """A test of block [lo, hi). With `both_steps`, the truncation is estimated by
        repeating at 2h (a smooth function's error grows 4x, a wrong gradient's stays);
        else `truncation` is taken from the probe's full-input test."""
        step = self.inputs[k].step
        first = self._difference(k, probe, lo, hi, step)
        self._spent(2)
        if first is None:
            return None
        analytical, numerical, analytical_rounding = first
        discrepancy = analytical - numerical
        if both_steps:
            second = self._difference(k, probe, lo, hi, 2 * step)
            self._spent(2)
            if second is None:
                return None
            truncation = abs(discrepancy - (second[0] - second[1]))
        noise = truncation + probe.rounding / step + analytical_rounding
        return _Test(lo, hi, discrepancy, analytical, numerical, noise)

    def _spent(self, count: int) -> None:
        if self.search is not None:
            self.search.evaluations += count

    def _numerical_nonfinite(self, k: int, change: torch.Tensor) -> None:
        stat = self.stats[k]
        bad = ~torch.isfinite(change)
        stat.nonfinite_numerical += int(bad.sum())
        if stat.first_nonfinite is None:
            row = int(torch.nonzero(bad)[0])
            stat.first_nonfinite = ("numerical", row, 0, float(change[row]))

    def _fold(self, stat: InputStats, analytical: complex | float,
              numerical: complex | float) -> None:
        difference = abs(analytical - numerical)
        stat.max_abs = max(stat.max_abs, difference)
        scale = max(abs(analytical), abs(numerical))
        if scale > 0:
            stat.max_rel = max(stat.max_rel, difference / scale)

    # --- localization ----------------------------------------------------------------

    def _localize(self, k: int, failed: list[tuple[_Probe, _Test]]) -> None:
        """Bisect the input for the elements behind the most significant failed probe.

        Depth first, into the half with the larger discrepancy (the other one, when
        significant too, waits on the stack): a single element is reached after log2(n)
        tests whether the error sits in one entry or is spread over all of them."""
        search = _Search()
        self.search = search
        probe, root = _most_significant(failed)
        truncation = max(0.0, root.noise - probe.rounding / self.inputs[k].step)
        confidence = self.settings.confidence
        stack = [root]
        while stack:
            if (len(search.findings) >= self.settings.findings
                    or search.clean >= self.settings.clean_elements):
                break
            if search.evaluations >= self.settings.evaluations:
                search.exhausted = True
                break
            node = stack.pop()
            if node.hi - node.lo == 1:
                self._check_column(k, probe, node.lo, search)
                continue
            middle = (node.lo + node.hi) // 2
            left = self._measure(k, probe, node.lo, middle, both_steps=False,
                                 truncation=truncation)
            if left is None:  # forward not finite there: reported as a domain error
                break
            right = _Test(middle, node.hi, node.discrepancy - left.discrepancy,
                          node.analytical - left.analytical, node.numerical - left.numerical,
                          node.noise + left.noise)
            if right.noise > 4 * left.noise:  # subtraction noise piles up: measure afresh
                measured = self._measure(k, probe, middle, node.hi, both_steps=False,
                                         truncation=truncation)
                if measured is None:
                    break
                right = measured
            children = sorted((c for c in (left, right) if c.significant(confidence)),
                              key=lambda c: abs(c.discrepancy))
            stack.extend(children)  # the larger discrepancy on top
            if not children:
                # The discrepancy is spread thinly: look at the elements that weigh most.
                weights = (probe.grads[k][node.lo:node.hi].abs()
                           * probe.directions[k][node.lo:node.hi].abs())
                for offset in torch.topk(weights, min(2, weights.numel())).indices.tolist():
                    self._check_column(k, probe, node.lo + offset, search)
        self._conclude(k, probe, root, search)
        self.search = None

    def _check_column(self, k: int, probe: _Probe, column: int, search: _Search) -> None:
        """Element `column` of input k: its numerical Jacobian column (torch's recipe) against
        vᵀJ there; when they differ beyond tolerance, find the wrong rows."""
        if column in search.checked_columns:
            return
        search.checked_columns.add(column)
        found = len(search.findings)
        self._examine_column(k, probe, column, search)
        if len(search.findings) == found:
            search.clean += 1

    def _examine_column(self, k: int, probe: _Probe, column: int, search: _Search) -> None:
        position = self.positions[k]
        _, numerical = next(numerical_columns(self.fn, self.args, position, self.func_out,
                                              self.out_positions, self.eps, [column]))
        search.evaluations += 4 if self.inputs[k].is_complex else 2
        numerical = numerical.to(torch.complex128 if numerical.is_complex()
                                 else torch.float64)
        v = probe.v
        analytical: complex | float = probe.grads[k][column].item()
        support = torch.nonzero(numerical).flatten()
        values = numerical[support]
        projected: complex | float = torch.dot(v[support].to(values.dtype), values).item()
        self._fold(self.stats[k], analytical, projected)
        column_tolerance = _ColumnTolerance(self, k, v, support, values, abs(analytical))
        if abs(analytical - projected) <= column_tolerance(0, v.numel(), None):
            return
        # The rows where the numerical column is nonzero first, one by one (an elementwise
        # op has one); what they leave unexplained is in the other rows.
        rest: complex | float = analytical - projected
        excluded: torch.Tensor | None = None
        if support.numel() <= SUPPORT_ROWS:
            for row in support.tolist():
                a_value, n_value = self._check_entry(k, row, column, numerical, search)
                rest -= v[row].item() * (a_value - n_value)
            excluded = support
        # Then bisection on the rows, one backward with v restricted to a block per test.
        heap: list[tuple[float, int, int, int, complex | float]] = [
            (-abs(rest), 0, 0, v.numel(), rest)]
        counter = 0
        while heap and search.evaluations < self.settings.evaluations:
            _, _, lo, hi, discrepancy = heapq.heappop(heap)
            if abs(discrepancy) <= column_tolerance(lo, hi, excluded):
                continue
            if hi - lo == 1:
                self._check_entry(k, lo, column, numerical, search)
                continue
            middle = (lo + hi) // 2
            left = self._row_block(k, probe, column, numerical, lo, middle, excluded)
            search.evaluations += 1
            for block, value in (((lo, middle), left), ((middle, hi), discrepancy - left)):
                counter += 1
                heapq.heappush(heap, (-abs(value), counter, block[0], block[1], value))

    def _row_block(self, k: int, probe: _Probe, column: int, numerical: torch.Tensor,
                   lo: int, hi: int, excluded: torch.Tensor | None) -> complex | float:
        """Σᵣ vᵣ(Aᵣⱼ - Nᵣⱼ) over rows [lo, hi) but `excluded`, j = `column`."""
        weights = torch.zeros_like(probe.v)
        weights[lo:hi] = probe.v[lo:hi]
        if excluded is not None:
            weights[excluded] = 0.0
        grads = analytical_row(self.outputs, self.diff_inputs, self.sizes, 0,
                               grad_output=weights)
        analytical: complex | float = grads[k][column].item()
        return analytical - (weights.to(numerical.dtype) * numerical).sum().item()

    def _check_entry(self, k: int, row: int, column: int, numerical: torch.Tensor,
                     search: _Search) -> tuple[complex | float, complex | float]:
        """Jacobian entry (row, column) exactly as exact mode computes and judges it."""
        grads = analytical_row(self.outputs, self.diff_inputs, self.sizes, row)
        search.evaluations += 1
        a = grads[k][column]
        n = numerical[row]
        dtype = torch.promote_types(a.dtype, n.dtype)
        a, n = a.to(dtype), n.to(dtype)
        a_value, n_value = _scalar(a), _scalar(n)
        self._fold(self.stats[k], a_value, n_value)
        if not bool(torch.isclose(a, n, rtol=self.rtol, atol=self.atol)):
            search.findings.append((row, column, a_value, n_value))
        return a_value, n_value

    def _conclude(self, k: int, probe: _Probe, root: _Test, search: _Search) -> None:
        stat = self.stats[k]
        findings = sorted(search.findings, key=lambda f: -abs(f[2] - f[3]))
        stat.wrong = len(findings)
        if findings:
            row, column, a, n = findings[0]
            stat.worst = (row, column, a, n)
            stat.worst_wrong = [(r, c) for r, c, _, _ in findings[:8]]
            _count_rows(stat, torch.tensor(sorted({r for r, _, _, _ in findings})),
                        self.sizes)
            # Do the wrong entries found account for the whole failed probe? Their share of
            # δ = Σᵣⱼ vᵣ (Aᵣⱼ - Nᵣⱼ) uⱼ, with u the probe's direction (Re(conj(·)·u) for a
            # complex input, as the directional derivative is taken).
            share = 0.0
            for r, c, a_value, n_value in findings:
                error = complex(a_value) - complex(n_value)
                weight = complex(probe.directions[k][c].item())
                share += probe.v[r].item() * (error.conjugate() * weight).real
            stat.explained = abs(root.discrepancy - share) <= (
                self.settings.confidence * root.noise + self.rtol * abs(share))
            return
        if stat.first_nonfinite is not None:
            return
        worst = max((abs(a - n), t) for a, n, t in stat.directional)
        examined = len(search.checked_columns)
        verdict = ("could not be pinned to a wrong Jacobian entry within "
                   f"{self.settings.evaluations} evaluations" if search.exhausted else
                   f"but the {examined} element{'s' if examined != 1 else ''} it points to "
                   "are within atol/rtol")
        stat.unresolved = (f"probe mode: a random-direction check differs by {worst[0]:.3g} "
                           f"(noise threshold {worst[1]:.3g}) {verdict}; rerun with "
                           "--mode exact to be sure")


def _most_significant(failed: list[tuple[_Probe, _Test]]) -> tuple[_Probe, _Test]:
    """The failed probe whose discrepancy stands out most above its noise."""
    return max(failed, key=lambda pair: abs(pair[1].discrepancy) / pair[1].noise)


class _ColumnTolerance:
    """How far Σᵣ vᵣAᵣⱼ may be from Σᵣ vᵣNᵣⱼ over a block of rows when every entry there is
    within atol + rtol·|N|: each entry's tolerance, on the numerical column's support
    (elsewhere N is 0 and A must be too), weighted by |vᵣ|, plus the rounding of both
    sides. Sums run over the support only, so a test costs O(nonzeros), not O(rows)."""

    def __init__(self, prober: _Prober, k: int, v: torch.Tensor, support: torch.Tensor,
                 values: torch.Tensor, analytical_scale: float) -> None:
        self.support = support
        weight = v[support].abs()
        # A numerical entry's rounding: ε·|f| at each of its two evaluations, over the
        # 2·eps of torch's central difference.
        rounding = prober.eps_out * prober.reference[support] / prober.eps
        self.terms = weight * (prober.atol + prober.rtol * values.abs() + rounding)
        # Backward's own rounding of the projected entry.
        self.floor = 8 * prober.inputs[k].eps * analytical_scale

    def __call__(self, lo: int, hi: int, excluded: torch.Tensor | None) -> float:
        inside = (self.support >= lo) & (self.support < hi)
        if excluded is not None and excluded.numel():
            inside &= ~torch.isin(self.support, excluded)
        return float(self.terms[inside].sum()) + self.floor

