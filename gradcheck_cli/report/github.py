"""GitHub Actions: one `::error` annotation per failed or errored result, and the job summary.

GitHub shows at most 10 annotations of each level per step: past that, the rest are said in
one annotation (the log and the job summary have them all).
"""

# No `from __future__ import annotations` here: it would bind the name `annotations`,
# which this module's public function takes. The annotations below all run on 3.10.

from gradcheck_cli.report import Advise, ReportOptions, advice_line, name_advice, result_id
from gradcheck_cli.report.location import Position, position
from gradcheck_cli.report.naming import distinct
from gradcheck_cli.report.safe import shown
from gradcheck_cli.results import CheckResult, Status, Summary

LIMIT = 10  # annotations of one level GitHub shows per step
LISTED = 30  # ids named in the annotation that stands for the rest


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


def level(result: CheckResult) -> str:
    """The annotation level: `error` for a failed or errored check (the only ones shown)."""
    return "error"


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
    return f"::{level(result)} {head}::{escape_data(message)}"


def _rest(kind: str, rest: list[CheckResult]) -> str:
    """The one annotation that stands for those GitHub would not show."""
    names = [result_id(shown(r)) for r in rest]
    listed = ", ".join(names[:LISTED]) + (f", and {len(names) - LISTED} more"
                                          if len(names) > LISTED else "")
    message = (f"{len(rest)} more failed or errored checks, not annotated (GitHub shows "
               f"{LIMIT} per step): {listed}\nthe log and the job summary have them all")
    head = f"title={escape_property(f'gradcheck-cli: {len(rest)} more')}"
    return f"::{kind} {head}::{escape_data(message)}"


def annotations(results: list[CheckResult], advise: Advise = name_advice) -> list[str]:
    """One workflow command per failed or errored result, in order; none for the rest;
    past LIMIT of one level, the first LIMIT - 1 and one that names the others. No two
    share a title: one shared by two specs' results says its spec."""
    problems = [r for r in results if r.status.is_problem]
    titles = distinct([title(shown(r)) for r in problems], problems,
                      lambda r: shown(r).spec or shown(r).module or "?")
    commands: list[str] = []
    for kind in dict.fromkeys(level(r) for r in problems):
        mine = [(r, t) for r, t in zip(problems, titles) if level(r) == kind]
        shown_here = mine if len(mine) <= LIMIT else mine[:LIMIT - 1]
        commands += [annotation(r, advise, t) for r, t in shown_here]
        if len(shown_here) < len(mine):
            commands.append(_rest(kind, [r for r, _ in mine[len(shown_here):]]))
    return commands


def job_summary(results: list[CheckResult], summary: Summary,
                advise: Advise = name_advice) -> str:
    """Markdown for `$GITHUB_STEP_SUMMARY`: the summary line, the table of the failed and
    errored results, and for each what went wrong and the command that reproduces it."""
    from gradcheck_cli.report import markdown

    return markdown.document([r for r in results if r.status.is_problem], summary, advise)


def render(results: list[CheckResult], options: ReportOptions) -> None:
    """The table, then the annotations (GitHub reads them anywhere in the log)."""
    from gradcheck_cli.report import table

    table.render(results, options)
    options.out.flush()
    for line in annotations(results, options.advise):
        options.out.write(line + "\n")
