"""How hard probe mode looks: its confidence, step and search limits."""

from __future__ import annotations

from dataclasses import dataclass

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
