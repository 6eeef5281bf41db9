"""The JUnit XML report, as GitLab, Jenkins and GitHub test-report actions read it."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import PurePosixPath

from gradcheck_cli.report import (
    Advise,
    ReportOptions,
    advice_line,
    entry_error,
    format_error,
    name_advice,
)
from gradcheck_cli.report.location import position
from gradcheck_cli.report.naming import cut, distinct, identity
from gradcheck_cli.report.safe import shown
from gradcheck_cli.results import CheckResult, InputError, Status, Summary, format_index

SUITE_NAME = "gradcheck-cli"

# Everything XML 1.0 forbids: C0 controls but tab, LF and CR; lone surrogates; U+FFFE/U+FFFF.
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

_ELEMENT = {Status.FAILED: "failure", Status.ERROR: "error", Status.SKIPPED: "skipped"}


def xml_safe(text: str) -> str:
    """`text` without the characters XML 1.0 cannot hold, even escaped (the reports escape
    them visibly before: see `safe`; this is the last guard)."""
    return _ILLEGAL_XML.sub("", text)


def dotted(path: str) -> str:
    """`ops/broken.py` -> `ops.broken`: a path as a dotted name, its suffix dropped."""
    parts = [p for p in PurePosixPath(path.replace("\\", "/")).parts
             if p not in ("/", ".", "..") and not p.endswith(":")]
    if parts:
        parts[-1] = PurePosixPath(parts[-1]).stem or parts[-1]
    return ".".join(parts) or path


def classname(result: CheckResult) -> str:
    """`ops.broken.MulAddSwapped`; the dotted spec or module path when there is no Function."""
    if result.function is None:
        return dotted(result.spec or result.module or "?")
    return f"{dotted(result.module or result.spec or '?')}.{result.function}"


def testcase_name(result: CheckResult) -> str:
    """`gradcheck[cpu]`, `gradcheck[cpu-wide]`; `collect` for problems found before checking.
    Alone it may be shared by two results: `testcase_names` makes them unique."""
    params = [result.device] if not result.before_checks else []
    if result.case != "default":
        params.append(result.case)
    base = result.check if not result.before_checks else "collect"
    return base + (f"[{'-'.join(params)}]" if params else "")


def testcase_names(results: list[CheckResult]) -> list[tuple[str, str]]:
    """Each result's (classname, name), no two alike: CI dashboards merge test cases that
    share both. A name shared by results of two specs says its spec
    (`gradcheck[cpu] (specs/a.yaml)`); long names are cut, with a hash that keeps them apart."""
    safe = [shown(r) for r in results]
    classes = [cut(classname(r), identity(raw)) for r, raw in zip(safe, results)]
    names = distinct([testcase_name(r) for r in safe], results,
                     lambda r: shown(r).spec or shown(r).module or "?", groups=classes)
    return list(zip(classes, names))


def _value(value: float | list[float]) -> str:
    # Complex values arrive as [real, imag].
    if isinstance(value, list):
        return f"{complex(*value[:2]):.4g}"
    return f"{value:.4g}"


def _worst(entry: InputError) -> str:
    w = entry.worst
    if w is None or entry.passed:
        return ""
    return (f"{entry.name}{format_index(w.input_index)} -> output {w.output}"
            f"{format_index(w.output_index)} "
            f"(analytical {_value(w.analytical)}, numerical {_value(w.numerical)})")


def input_table(inputs: list[InputError]) -> list[str]:
    """One aligned plain-text line per input: its errors, verdict and worst entry."""
    rows = [["input", "max abs error", "max rel error", "wrong entries", "verdict", "worst at"]]
    for entry in inputs:
        verdict = "ok" if entry.passed else "WRONG"
        if entry.note:
            verdict += f" ({entry.note})"
        rows.append([entry.name, entry_error(entry), format_error(entry.max_rel_error),
                     str(entry.wrong_elements) if entry.numel else "-", verdict, _worst(entry)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def details(result: CheckResult, advise: Advise = name_advice) -> str:
    """The text of a failure, error or skip: message, per-input errors, diagnoses, advice
    (failures and errors, worded by `advise`), reproduce. Names and messages are escaped
    (see `safe`): this text also goes to a terminal (the pytest plugin)."""
    result = shown(result)
    lines = [result.message or result.status.value]
    if result.location:
        lines.append(f"at {result.location}")
    if result.seed is not None:
        lines.append(f"seed {result.seed}")
    if result.inputs:
        lines += ["", *input_table(result.inputs)]
    diagnoses = [f"{e.name}: {e.diagnosis.kind}: {e.diagnosis.detail}"
                 for e in result.inputs if e.diagnosis is not None]
    if diagnoses:
        lines += ["", *diagnoses]
    advice = advice_line(result, advise)
    if advice:
        lines += ["", advice]
    if result.reproduce:
        lines += ["", f"reproduce: {result.reproduce}"]
    return "\n".join(lines)


def _testcase(suite: ET.Element, result: CheckResult, names: tuple[str, str],
              advise: Advise) -> None:
    attrs = {"classname": names[0], "name": names[1],
             "time": f"{max(result.duration, 0.0):.3f}"}
    where = position(shown(result))
    if where is not None:
        attrs["file"] = where.path
        if where.line is not None:
            attrs["line"] = str(where.line)
    case = ET.SubElement(suite, "testcase", {k: xml_safe(v) for k, v in attrs.items()})
    tag = _ELEMENT.get(result.status)
    if tag is None:
        return
    first = (shown(result).message.strip().splitlines() or [result.status.value])[0]
    outcome = ET.SubElement(case, tag, {"message": xml_safe(first)})
    outcome.text = xml_safe(details(result, advise))


def document(results: list[CheckResult], summary: Summary,
             advise: Advise = name_advice) -> str:
    """The whole report: one <testsuites> holding one <testsuite> with a <testcase> per result."""
    counts = {"tests": str(summary.total), "failures": str(summary.failed),
              "errors": str(summary.error), "skipped": str(summary.skipped),
              "time": f"{max(summary.duration, 0.0):.3f}"}
    root = ET.Element("testsuites", {"name": SUITE_NAME, **counts})
    suite = ET.SubElement(root, "testsuite", {"name": SUITE_NAME, **counts})
    for result, names in zip(results, testcase_names(results)):
        _testcase(suite, result, names, advise)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render(results: list[CheckResult], options: ReportOptions) -> None:
    options.out.write(document(results, options.summary, options.advise) + "\n")
