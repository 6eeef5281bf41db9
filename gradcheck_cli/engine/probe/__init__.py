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

Modules: settings (how hard it looks), vectors (probes, perturbed inputs, tests), measure
(one probe, one directional difference), localize (bisection to single entries), view
(what a diagnosis rule may measure after a failed probe), prober (`probe_compare`).
"""

from __future__ import annotations

from gradcheck_cli.engine.probe.prober import probe_agreement, probe_compare
from gradcheck_cli.engine.probe.settings import ProbeSettings
from gradcheck_cli.engine.probe.view import EvidenceRule, ProbeView

__all__ = ["EvidenceRule", "ProbeSettings", "ProbeView", "probe_agreement", "probe_compare"]
