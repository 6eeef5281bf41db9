"""The JSON report: one object with every result and the summary (its fields: README, Output).

`SCHEMA` is the document's layout: it changes when a field is removed or changes meaning
(new fields may come without it), and `gradcheck-cli merge` reads only the layout it knows.
"""

from __future__ import annotations

import json
import math
from typing import Any

from gradcheck_cli import __version__
from gradcheck_cli.report import ReportOptions
from gradcheck_cli.results import CheckResult, Summary

SCHEMA = 1


def _finite(value: Any) -> Any:
    # Strict JSON has no NaN or Infinity: such a value is null, and the input's `note`
    # says what was not finite.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def document(results: list[CheckResult], summary: Summary) -> str:
    capabilities = {
        f"{r.spec or r.module}::{r.function}[{r.case}]": r.capabilities
        for r in results if r.capabilities is not None
    }
    doc = {
        "schema": SCHEMA,
        "version": __version__,
        "shard": summary.shard.to_dict() if summary.shard is not None else None,
        "results": [_finite(r.to_dict()) for r in results],
        **({"capabilities": capabilities} if capabilities else {}),
        "summary": {**summary.counts(), "duration": round(summary.duration, 3),
                    "exit_code": summary.exit_code, "interrupted": summary.interrupted,
                    "signal": summary.signal, "selection_error": summary.selection_error,
                    "merged": summary.merged},
    }
    return json.dumps(doc, indent=2)


def render(results: list[CheckResult], options: ReportOptions) -> None:
    options.out.write(document(results, options.summary) + "\n")
