"""The `merge` verb: the JSON reports of a run's shards -> one report and one exit code.

`gradcheck-cli merge shard-*.json` reads each report (`--format json`), refuses what would
make the combined report wrong (another tool version or schema, shards of different
runs or splits, a shard given twice or missing, a check in two reports), and renders the
results, in the order of the whole run, through the usual reporters. It also records the
shards' durations in the cache folder, for the next split to balance on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from gradcheck_cli.errors import UsageError
from gradcheck_cli.report import REPORTERS
from gradcheck_cli.report.json import SCHEMA
from gradcheck_cli.results import CheckResult, ShardInfo, Summary


@dataclass
class ShardReport:
    """One JSON report as read: its file, tool version, shard (None: a whole run), results."""

    path: Path
    version: str
    shard: ShardInfo | None
    results: list[CheckResult]
    summary: dict[str, Any]


def _problem(path: Path, what: str, hint: str | None = None) -> UsageError:
    return UsageError(f"{path}: {what}", hint=hint)


def read_report(path: Path) -> ShardReport:
    """A JSON report of gradcheck-cli, or a usage error saying why it is not one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _problem(path, f"cannot read it ({exc.strerror})") from None
    except ValueError as exc:
        raise _problem(path, f"not a JSON document ({exc})",
                       "give the reports written by `gradcheck-cli --format json`") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list) \
            or not isinstance(doc.get("summary"), dict):
        raise _problem(path, "not a gradcheck-cli JSON report",
                       "give the reports written by `gradcheck-cli --format json`")
    schema = doc.get("schema")
    if schema != SCHEMA:
        said = "has no schema version" if schema is None else f"has schema {schema!r}"
        raise _problem(path, f"{said}; this gradcheck-cli reads schema {SCHEMA}",
                       "merge reports written by the same version of gradcheck-cli")
    try:
        results = [CheckResult.from_dict(r) for r in doc["results"]]
        shard = _shard(doc["shard"]) if doc.get("shard") else None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _problem(path, f"a malformed report ({type(exc).__name__}: {exc})") from None
    if shard is not None and len(shard.order) != len(results):
        raise _problem(path, "a malformed report: its shard's `order` does not list every "
                             "result")
    return ShardReport(path, str(doc.get("version")), shard, results, doc["summary"])


def _shard(data: Any) -> ShardInfo:
    shard = ShardInfo.from_dict(data)
    numbers = (shard.index, shard.count, shard.checks, shard.planned, shard.undiscovered)
    if not all(isinstance(n, int) for n in numbers) or not isinstance(shard.order, list) \
            or not all(isinstance(n, int) for n in shard.order) \
            or not isinstance(shard.plan, str) or not isinstance(shard.split, str):
        raise ValueError("its `shard` is not as gradcheck-cli writes it")
    return shard


def _same_version(reports: list[ShardReport]) -> None:
    versions = {r.version for r in reports}
    if len(versions) > 1:
        listed = ", ".join(f"{r.path} {r.version}" for r in reports)
        raise UsageError(f"the reports come from different versions of gradcheck-cli ({listed})",
                         hint="run every shard with one version, then merge")


def _check_shards(reports: list[ShardReport]) -> None:
    """Shards of one split, each once, none missing; or whole runs only."""
    sharded = [r for r in reports if r.shard is not None]
    if not sharded:
        return
    if len(sharded) < len(reports):
        whole = next(r for r in reports if r.shard is None)
        raise UsageError(f"{whole.path} is a whole run and {sharded[0].path} a shard of one: "
                         "they overlap", hint="merge the shards of one run only")
    first = sharded[0]
    assert first.shard is not None
    by_index: dict[int, ShardReport] = {}
    for report in sharded:
        shard = report.shard
        assert shard is not None
        if shard.count != first.shard.count:
            raise UsageError(
                f"{first.path} is shard {first.shard.index}/{first.shard.count} and "
                f"{report.path} shard {shard.index}/{shard.count}: shards of different splits "
                "overlap", hint="merge the shards of one --shard I/N run, same N")
        if shard.plan != first.shard.plan:
            raise UsageError(
                f"{first.path} and {report.path} are shards of different runs: other specs, "
                "paths or options (checks, devices, seed, tolerances, mode)",
                hint="run every shard with the same command but --shard")
        if shard.split != first.shard.split:
            raise UsageError(
                f"{first.path} and {report.path} were split differently: the durations "
                "recorded in their cache folders differed, so some checks may have run in "
                "two shards and others in none",
                hint="give every shard the same cache folder (its durations.json), or "
                     "--no-cache, and run them again")
        if shard.index in by_index:
            raise UsageError(f"shard {shard.index}/{shard.count} is given twice: "
                             f"{by_index[shard.index].path} and {report.path}",
                             hint="give each shard's report once")
        by_index[shard.index] = report
    missing = [i for i in range(1, first.shard.count + 1) if i not in by_index]
    if missing:
        names = ", ".join(f"{i}/{first.shard.count}" for i in missing)
        raise UsageError(f"shard {names} missing: its checks would be left out of the report",
                         hint="give the report of every shard")


def _key(result: CheckResult) -> tuple[Any, ...]:
    """What makes a result one check: its place, Function, case, device and check."""
    return (result.spec, result.module, result.function, result.case, result.device,
            result.check)


def combine(reports: list[ShardReport]) -> tuple[list[CheckResult], Summary]:
    """The results of every report in the whole run's order, and their summary."""
    _same_version(reports)
    _check_shards(reports)
    placed: list[tuple[tuple[int, int], CheckResult]] = []
    seen: dict[tuple[Any, ...], Path] = {}
    for number, report in enumerate(reports):
        orders = report.shard.order if report.shard is not None else None
        for position, result in enumerate(report.results):
            key = _key(result)
            if key in seen:
                if result.before_checks:
                    # A module that does not import is said by every shard that met it.
                    continue
                from gradcheck_cli.report import result_id

                raise UsageError(f"{result_id(result)} is in {seen[key]} and {report.path}: "
                                 "the reports overlap", hint="merge reports of disjoint runs")
            seen[key] = report.path
            rank = (orders[position], 0) if orders is not None else (number, position)
            placed.append((rank, result))
    placed.sort(key=lambda entry: entry[0])
    results = [result for _, result in placed]
    summary = Summary.of(results, sum(_number(r.summary.get("duration")) for r in reports))
    summary.merged = len(reports)
    summary.interrupted = any(r.summary.get("interrupted") for r in reports)
    summary.signal = next((r.summary["signal"] for r in reports
                           if isinstance(r.summary.get("signal"), int)), None)
    summary.selection_error = next((str(r.summary["selection_error"]) for r in reports
                                    if r.summary.get("selection_error")), None)
    return results, summary


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


@click.command(name="merge", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("reports", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(tuple(REPORTERS)), default=None,
              help="Report on stdout (as gradcheck-cli's --format). Default: table.")
@click.option("--junit-xml", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Also write a JUnit XML report to FILE.")
@click.option("--no-cache", is_flag=True, help="Do not record the shards' durations.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Where the durations are recorded. Default: the project's cache folder.")
@click.option("-q", "--quiet", count=True,
              help="-q: only failures and the summary line; -qq: the summary line only.")
def command(reports: tuple[Path, ...], fmt: str | None, junit_xml: str | None,
            no_cache: bool, cache_dir: str | None, quiet: int) -> int:
    """Combine the JSON reports of a run's shards (`gradcheck-cli --shard I/N --format
    json`) into one report, with the exit code the whole run would have had.

    Refuses reports of different gradcheck-cli versions, shards of different runs or
    splits, a shard given twice or missing, and a check found in two reports.
    """
    from gradcheck_cli import api
    from gradcheck_cli.cli.check import write_reports
    from gradcheck_cli.config import find_config
    from gradcheck_cli.execution.shard import record_durations
    from gradcheck_cli.report.safe import printable

    config = find_config()
    for warning in config.warnings:
        click.echo(f"gradcheck-cli: warning: {printable(warning)}", err=True)
    settings = api.make_settings(config, format=fmt, cache=False if no_cache else None,
                                 cache_dir=cache_dir, quiet=quiet)
    results, summary = combine([read_report(path) for path in reports])
    if settings.options.cache_dir is not None:
        record_durations(settings.options.cache_dir, results)
    report = api.Report(results, summary)
    write_reports(report, settings, junit_xml)
    return int(report.exit_code)
