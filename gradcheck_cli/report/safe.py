"""Text from the user's files made safe to show: control and invisible characters escaped.

Spec, Function, case and input names, paths and the messages of the user's exceptions reach
a terminal, a CI log, a pull request or an XML file. Escape sequences (ESC), carriage
returns, backspaces and bidi overrides (U+202E) in them could rewrite what the reader sees,
so every character Python does not call printable is shown as repr() shows it (`\\x1b`,
`\\r`, `\\u202e`); newlines are kept in messages only. The result is all printable, so
escaping twice changes nothing. Views also build rich `Text` from these strings, never
markup, so `[red]x[/]` shows as written.
"""

from __future__ import annotations

import dataclasses

from gradcheck_cli.results import CheckResult, Diagnosis, InputError


def _escape(char: str) -> str:
    return char if char.isprintable() else repr(char)[1:-1]


def printable(text: str) -> str:
    """`text` on one line, every non-printable character escaped (`a\\x1bb`)."""
    if text.isprintable():
        return text
    return "".join(_escape(c) for c in text)


def printable_lines(text: str) -> str:
    """`text` with its line breaks kept and every other non-printable character escaped."""
    return "\n".join(printable(line) for line in text.replace("\r\n", "\n").split("\n"))


def _maybe(text: str | None) -> str | None:
    return None if text is None else printable(text)


def _entry(entry: InputError) -> InputError:
    diagnosis = entry.diagnosis
    if diagnosis is not None:
        diagnosis = Diagnosis(printable(diagnosis.kind), printable_lines(diagnosis.detail))
    return dataclasses.replace(entry, name=printable(entry.name), note=_maybe(entry.note),
                               diagnosis=diagnosis)


def shown(result: CheckResult) -> CheckResult:
    """A copy of `result` whose every text a view shows is printable (see the docstring);
    the numbers, the recipe and the status as they were."""
    capabilities = result.capabilities
    if capabilities is not None:
        capabilities = {printable(name): {k: printable_lines(v) for k, v in cap.items()}
                        for name, cap in capabilities.items()}
    jacobians = result.jacobians
    if jacobians is not None:
        jacobians = {printable(name): pictures for name, pictures in jacobians.items()}
    return dataclasses.replace(
        result, module=_maybe(result.module), spec=_maybe(result.spec),
        function=_maybe(result.function), case=printable(result.case),
        device=printable(result.device), check=printable(result.check),
        message=printable_lines(result.message), location=_maybe(result.location),
        mode_reason=printable_lines(result.mode_reason), reproduce=_maybe(result.reproduce),
        inputs_inferred=_maybe(result.inputs_inferred), capabilities=capabilities,
        jacobians=jacobians, inputs=[_entry(e) for e in result.inputs])


def shown_all(results: list[CheckResult]) -> list[CheckResult]:
    return [shown(r) for r in results]
