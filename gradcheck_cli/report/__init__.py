"""Reporters: views of a list of results. They format; they decide nothing."""

from __future__ import annotations

from gradcheck_cli.results import CheckResult


def result_id(result: CheckResult) -> str:
    """`specs/op.yaml::MultiplyAdd[cpu-gradcheck]`, as pytest names items."""
    where = result.spec or result.module or "?"
    if result.function is None:
        return where
    params = [result.device, result.check] if result.check != "-" else []
    if result.case != "default":
        params.insert(0, result.case)
    suffix = f"[{'-'.join(params)}]" if params else ""
    return f"{where}::{result.function}{suffix}"


def format_error(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == 0:
        return "0"
    return f"{value:.2g}"
