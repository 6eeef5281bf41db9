"""The engine's advice in the command line's words: each Advice kind as the flag to use."""

from __future__ import annotations

from gradcheck_cli.engine.cost import human_bytes
from gradcheck_cli.results import Advice

WORDS = {
    "dodge_kinks": "rerun with --dodge-kinks",
    "probe_mode": "use --mode probe (random-direction checks in little memory)",
    "exact_mode": "rerun with --mode exact to be sure",
    "one_job": "run one check at a time (-j 1)",
    "longer_timeout": "raise --timeout",
}


def advise(advice: Advice) -> str:
    """`rerun with --dodge-kinks`: what to type for one piece of advice."""
    if advice.kind == "more_memory":
        if advice.needed:
            return f"raise --max-memory (to about {human_bytes(advice.needed)})"
        return "raise --max-memory"
    return WORDS.get(advice.kind, advice.kind.replace("_", " "))
