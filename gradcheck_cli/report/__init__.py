"""Reporters: views of a list of results. They format; they decide nothing."""

from __future__ import annotations

import re

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


def file_stem(result: CheckResult, *extra: str) -> str:
    """`Fn_case_device_check[_extra]`, safe as a file name (pictures, repro scripts)."""
    raw = "_".join([str(result.function), result.case, result.device, result.check, *extra])
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw)


def format_error(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == 0:
        return "0"
    return f"{value:.2g}"
