"""Localization: bisect a failed probe to single wrong Jacobian entries, judged as exact mode."""

from __future__ import annotations

import heapq

import torch

from gradcheck_cli.engine.jacobian import analytical_row, numerical_columns
from gradcheck_cli.engine.probe.measure import Measurer
from gradcheck_cli.engine.probe.settings import SUPPORT_ROWS
from gradcheck_cli.engine.probe.vectors import Failed, Probe, Search, Trial, most_significant
from gradcheck_cli.engine.stats import count_rows, scalar


class Localizer:
    """The wrong entries behind one input's failed probes, found with few evaluations."""

    def __init__(self, measurer: Measurer, k: int) -> None:
        self.m = measurer
        self.k = k
        self.search = Search()

    def run(self, failed: Failed) -> None:
        """Bisect the input for the elements behind the most significant failed probe.

        Depth first, into the half with the larger discrepancy (the other one, when
        significant too, waits on the stack): a single element is reached after log2(n)
        tests whether the error sits in one entry or is spread over all of them."""
        m, k, search = self.m, self.k, self.search
        m.search = search
        probe, root = most_significant(failed)
        truncation = max(0.0, root.noise - probe.rounding / m.inputs[k].step)
        confidence = m.settings.confidence
        stack = [root]
        while stack:
            if (len(search.findings) >= m.settings.findings
                    or search.clean >= m.settings.clean_elements):
                break
            if search.evaluations >= m.settings.evaluations:
                search.exhausted = True
                break
            node = stack.pop()
            if node.hi - node.lo == 1:
                self._check_column(probe, node.lo)
                continue
            children = self._split(probe, node, truncation)
            if children is None:  # forward not finite there: reported as a domain error
                break
            significant = sorted((c for c in children if c.significant(confidence)),
                                 key=lambda c: abs(c.discrepancy))
            stack.extend(significant)  # the larger discrepancy on top
            if not significant:
                # The discrepancy is spread thinly: look at the elements that weigh most.
                weights = (probe.grads[k][node.lo:node.hi].abs()
                           * probe.directions[k][node.lo:node.hi].abs())
                for offset in torch.topk(weights, min(2, weights.numel())).indices.tolist():
                    self._check_column(probe, node.lo + offset)
        self._conclude(probe, root)
        m.search = None

    def _split(self, probe: Probe, node: Trial, truncation: float
               ) -> tuple[Trial, Trial] | None:
        """The two halves of `node`: the left one measured, the right one by subtraction
        (measured afresh when that piles up noise); None when forward is not finite."""
        m, k = self.m, self.k
        middle = (node.lo + node.hi) // 2
        left = m.measure(k, probe, node.lo, middle, both_steps=False, truncation=truncation)
        if left is None:
            return None
        right = Trial(middle, node.hi, node.discrepancy - left.discrepancy,
                      node.analytical - left.analytical, node.numerical - left.numerical,
                      node.noise + left.noise)
        if right.noise > 4 * left.noise:  # subtraction noise piles up: measure afresh
            measured = m.measure(k, probe, middle, node.hi, both_steps=False,
                                 truncation=truncation)
            if measured is None:
                return None
            right = measured
        return left, right

    def _check_column(self, probe: Probe, column: int) -> None:
        """Element `column` of input k: its numerical Jacobian column (torch's recipe) against
        vᵀJ there; when they differ beyond tolerance, find the wrong rows."""
        search = self.search
        if column in search.checked_columns:
            return
        search.checked_columns.add(column)
        found = len(search.findings)
        self._examine_column(probe, column)
        if len(search.findings) == found:
            search.clean += 1

    def _examine_column(self, probe: Probe, column: int) -> None:
        m, k, search = self.m, self.k, self.search
        position = m.positions[k]
        _, numerical = next(numerical_columns(m.fn, m.args, position, m.func_out,
                                              m.out_positions, m.eps, [column]))
        search.evaluations += 4 if m.inputs[k].is_complex else 2
        numerical = numerical.to(torch.complex128 if numerical.is_complex()
                                 else torch.float64)
        v = probe.v
        analytical: complex | float = probe.grads[k][column].item()
        support = torch.nonzero(numerical).flatten()
        values = numerical[support]
        projected: complex | float = torch.dot(v[support].to(values.dtype), values).item()
        m.fold(m.stats[k], analytical, projected)
        column_tolerance = ColumnTolerance(m, k, v, support, values, abs(analytical))
        if abs(analytical - projected) <= column_tolerance(0, v.numel(), None):
            return
        # The rows where the numerical column is nonzero first, one by one (an elementwise
        # op has one); what they leave unexplained is in the other rows.
        rest: complex | float = analytical - projected
        excluded: torch.Tensor | None = None
        if support.numel() <= SUPPORT_ROWS:
            for row in support.tolist():
                a_value, n_value = self._check_entry(row, column, numerical)
                rest -= v[row].item() * (a_value - n_value)
            excluded = support
        # Then bisection on the rows, one backward with v restricted to a block per test.
        heap: list[tuple[float, int, int, int, complex | float]] = [
            (-abs(rest), 0, 0, v.numel(), rest)]
        counter = 0
        while heap and search.evaluations < m.settings.evaluations:
            _, _, lo, hi, discrepancy = heapq.heappop(heap)
            if abs(discrepancy) <= column_tolerance(lo, hi, excluded):
                continue
            if hi - lo == 1:
                self._check_entry(lo, column, numerical)
                continue
            middle = (lo + hi) // 2
            left = self._row_block(probe, column, numerical, lo, middle, excluded)
            search.evaluations += 1
            for block, value in (((lo, middle), left), ((middle, hi), discrepancy - left)):
                counter += 1
                heapq.heappush(heap, (-abs(value), counter, block[0], block[1], value))

    def _row_block(self, probe: Probe, column: int, numerical: torch.Tensor,
                   lo: int, hi: int, excluded: torch.Tensor | None) -> complex | float:
        """Σᵣ vᵣ(Aᵣⱼ - Nᵣⱼ) over rows [lo, hi) but `excluded`, j = `column`."""
        m = self.m
        weights = torch.zeros_like(probe.v)
        weights[lo:hi] = probe.v[lo:hi]
        if excluded is not None:
            weights[excluded] = 0.0
        grads = analytical_row(m.outputs, m.diff_inputs, m.sizes, 0, grad_output=weights)
        analytical: complex | float = grads[self.k][column].item()
        return analytical - (weights.to(numerical.dtype) * numerical).sum().item()

    def _check_entry(self, row: int, column: int, numerical: torch.Tensor
                     ) -> tuple[complex | float, complex | float]:
        """Jacobian entry (row, column) exactly as exact mode computes and judges it."""
        m = self.m
        grads = analytical_row(m.outputs, m.diff_inputs, m.sizes, row)
        self.search.evaluations += 1
        a = grads[self.k][column]
        n = numerical[row]
        dtype = torch.promote_types(a.dtype, n.dtype)
        a, n = a.to(dtype), n.to(dtype)
        a_value, n_value = scalar(a), scalar(n)
        m.fold(m.stats[self.k], a_value, n_value)
        if not bool(torch.isclose(a, n, rtol=m.rtol, atol=m.atol)):
            self.search.findings.append((row, column, a_value, n_value))
        return a_value, n_value

    def _conclude(self, probe: Probe, root: Trial) -> None:
        m, search = self.m, self.search
        stat = m.stats[self.k]
        findings = sorted(search.findings, key=lambda f: -abs(f[2] - f[3]))
        stat.wrong = len(findings)
        if findings:
            row, column, a, n = findings[0]
            stat.worst = (row, column, a, n)
            stat.worst_wrong = [(r, c) for r, c, _, _ in findings[:8]]
            count_rows(stat, torch.tensor(sorted({r for r, _, _, _ in findings})), m.sizes)
            # Do the wrong entries found account for the whole failed probe? Their share of
            # δ = Σᵣⱼ vᵣ (Aᵣⱼ - Nᵣⱼ) uⱼ, with u the probe's direction (Re(conj(·)·u) for a
            # complex input, as the directional derivative is taken).
            share = 0.0
            for r, c, a_value, n_value in findings:
                error = complex(a_value) - complex(n_value)
                weight = complex(probe.directions[self.k][c].item())
                share += probe.v[r].item() * (error.conjugate() * weight).real
            stat.explained = abs(root.discrepancy - share) <= (
                m.settings.confidence * root.noise + m.rtol * abs(share))
            return
        if stat.first_nonfinite is not None:
            return
        worst = max((abs(a - n), t) for a, n, t in stat.directional)
        examined = len(search.checked_columns)
        verdict = ("could not be pinned to a wrong Jacobian entry within "
                   f"{m.settings.evaluations} evaluations" if search.exhausted else
                   f"but the {examined} element{'s' if examined != 1 else ''} it points to "
                   "are within atol/rtol")
        # Exact mode would settle it: the verdict adds that advice (Advice "exact_mode").
        stat.unresolved = (f"probe mode: a random-direction check differs by {worst[0]:.3g} "
                           f"(noise threshold {worst[1]:.3g}) {verdict}")


class ColumnTolerance:
    """How far Σᵣ vᵣAᵣⱼ may be from Σᵣ vᵣNᵣⱼ over a block of rows when every entry there is
    within atol + rtol·|N|: each entry's tolerance, on the numerical column's support
    (elsewhere N is 0 and A must be too), weighted by |vᵣ|, plus the rounding of both
    sides. Sums run over the support only, so a test costs O(nonzeros), not O(rows)."""

    def __init__(self, m: Measurer, k: int, v: torch.Tensor, support: torch.Tensor,
                 values: torch.Tensor, analytical_scale: float) -> None:
        self.support = support
        weight = v[support].abs()
        # A numerical entry's rounding: ε·|f| at each of its two evaluations, over the
        # 2·eps of torch's central difference.
        rounding = m.eps_out * m.reference[support] / m.eps
        self.terms = weight * (m.atol + m.rtol * values.abs() + rounding)
        # Backward's own rounding of the projected entry.
        self.floor = 8 * m.inputs[k].eps * analytical_scale

    def __call__(self, lo: int, hi: int, excluded: torch.Tensor | None) -> float:
        inside = (self.support >= lo) & (self.support < hi)
        if excluded is not None and excluded.numel():
            inside &= ~torch.isin(self.support, excluded)
        return float(self.terms[inside].sum()) + self.floor
