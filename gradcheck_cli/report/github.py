"""GitHub Actions annotations: one `::error` workflow command per failed or errored result."""

# No `from __future__ import annotations` here: it would bind the name `annotations`,
# which this module's public function takes. The annotations below all run on 3.10.

from gradcheck_cli.report import Advise, ReportOptions, advice_line, name_advice
from gradcheck_cli.report.location import Position, position
from gradcheck_cli.report.naming import distinct
from gradcheck_cli.report.safe import shown
from gradcheck_cli.results import CheckResult, Status


def escape_data(text: str) -> str:
    """Escape a workflow command's message, as actions/toolkit does: %, CR and LF."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a property value (file, title, ...): the data escapes plus `:` and `,`."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def title(result: CheckResult) -> str:
    """`gradcheck failed: MulAddSwapped [cpu]`, `gradcheck-cli error: specs/op.yaml`."""
    check = result.check if not result.before_checks else "gradcheck-cli"
    subject = result.function or result.spec or result.module or "?"
    params = [result.device] if not result.before_checks else []
    if result.case != "default":
        params.append(result.case)
    suffix = f" [{'-'.join(params)}]" if params and result.function else ""
    return f"{check} {result.status.value}: {subject}{suffix}"


def annotation(result: CheckResult, advise: Advise = name_advice,
               heading: str | None = None) -> str:
    """The `::error file=...,line=...,title=...::message` command for one result (titled
    `heading` when given); names and messages escaped (see `safe`): a log shows them."""
    result = shown(result)
    props: list[tuple[str, str]] = []
    where = position(result)
    if result.status is Status.FAILED and result.function is not None and result.module \
            and result.line:
        # A wrong gradient is annotated on the Function's `class` (or `def`) line, where a
        # reviewer sees it in the diff; the message still names the backward's line. An
        # error keeps its own location: the line that raised, or the spec's bad line.
        where = Position(result.module, result.line)
    if where is not None:
        props.append(("file", where.path))
        if where.line is not None:
            props.append(("line", str(where.line)))
        if where.column is not None:
            props.append(("col", str(where.column)))
    props.append(("title", heading if heading is not None else title(result)))
    message = result.message.strip() or f"{result.check} {result.status.value}"
    advice = advice_line(result, advise)
    if advice:
        message += f"\n{advice}"
    if result.reproduce:
        message += f"\nreproduce: {result.reproduce}"
    head = ",".join(f"{key}={escape_property(value)}" for key, value in props)
    return f"::error {head}::{escape_data(message)}"


def annotations(results: list[CheckResult], advise: Advise = name_advice) -> list[str]:
    """One workflow command per failed or errored result, in order; none for the rest. No
    two share a title: one shared by two specs' results says its spec."""
    problems = [r for r in results if r.status.is_problem]
    titles = distinct([title(shown(r)) for r in problems], problems,
                      lambda r: shown(r).spec or shown(r).module or "?")
    return [annotation(r, advise, t) for r, t in zip(problems, titles)]


def render(results: list[CheckResult], options: ReportOptions) -> None:
    """The table, then the annotations (GitHub reads them anywhere in the log)."""
    from gradcheck_cli.report import table

    table.render(results, options)
    options.out.flush()
    for line in annotations(results, options.advise):
        options.out.write(line + "\n")
