"""The pytest plugin: gradient specs matching `gradcheck_specs` become pytest items.

Registered through the `pytest11` entry point as `gradcheck` (`-p no:gradcheck` turns it
off). Importing this module must not import torch: every pytest run in an environment
with gradcheck-cli installed loads it, and torch is imported only once a spec is collected.

One item per Function x case x device x check, named as the CLI names results
(`specs/gradcheck_ops.yaml::MultiplyAdd[wide-cpu-gradcheck]`). A spec that cannot be
read, or whose module cannot be imported, is one failing item (`...::collect`); a Function
the spec gets wrong is one failing item named after it.

`--gradcheck-shard I/N` (or `[tool.gradcheck-cli] shard`) keeps the I-th of N shards of the
gradcheck items, balanced by the cost model's estimates as the CLI's `--shard` is (other
tests are left alone). `--lf` and `--sw` re-run the failed items only: their node ids are
stable from run to run.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from gradcheck_cli.quiet import quiet_torch_import
from gradcheck_cli.specs.collect import SPEC_SUFFIXES

if TYPE_CHECKING:
    from gradcheck_cli.execution.tasks import Task
    from gradcheck_cli.results import Advice, CheckResult
    from gradcheck_cli.settings import RunOptions

INI_SPECS = "gradcheck_specs"
DEFAULT_PATTERNS = ("gradcheck_*.yaml", "gradcheck_*.yml")
MARKER = "gradcheck"
COLLECT_NAME = "collect"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradcheck", "gradient checks from gradcheck-cli specs")
    group.addoption(
        "--gradcheck-specs", action="append", default=None, metavar="GLOB",
        help="glob of spec files to collect as gradient checks (repeatable; several may be "
             "given in one value, separated by spaces); overrides the `gradcheck_specs` "
             f"ini option. Default: {' '.join(DEFAULT_PATTERNS)}",
    )
    group.addoption(
        "--gradcheck-device", action="append", default=None, choices=("cpu", "cuda"),
        help="device to check on (repeatable), replacing the specs' `devices` as "
             "`gradcheck-cli --device` does. Default: [tool.gradcheck-cli] devices, else the "
             "spec's, else cpu plus cuda when available (cuda items are skipped without CUDA)",
    )
    group.addoption(
        "--gradcheck-shard", default=None, metavar="I/N",
        help="run only the I-th of N shards of the gradcheck items (1-based), balanced by "
             "their expected duration, as `gradcheck-cli --shard`; other tests all run. "
             "Default: [tool.gradcheck-cli] shard, else all of them",
    )
    parser.addini(
        INI_SPECS, type="args", default=list(DEFAULT_PATTERNS),
        help="globs of spec files collected as gradient checks: a glob without `/` matches "
             "the file name, one with `/` the path relative to the rootdir",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: a gradient check collected from a gradcheck-cli spec file"
    )
    shard: str | None = config.getoption("--gradcheck-shard")
    if shard is not None:
        from gradcheck_cli.errors import UsageError
        from gradcheck_cli.settings import parse_shard

        try:
            parse_shard(shard, "--gradcheck-shard")
        except UsageError as exc:
            raise pytest.UsageError(f"gradcheck-cli: {exc}") from None


def spec_patterns(config: pytest.Config) -> list[str]:
    """The globs that select spec files: the command line's, else the ini option's."""
    given: list[str] | None = config.getoption("--gradcheck-specs")
    if given is not None:
        return [p for value in given for p in value.replace(",", " ").split()]
    return [str(p) for p in config.getini(INI_SPECS)]


def matches(path: Path, patterns: list[str], root: Path) -> bool:
    """Whether `path` matches a glob: by file name, or (a glob with `/`) by relative path."""
    for pattern in patterns:
        if "/" not in pattern:
            if fnmatch.fnmatch(path.name, pattern):
                return True
            continue
        try:
            relative = path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            relative = path.as_posix()
        if fnmatch.fnmatch(relative, pattern.removeprefix("./")) or fnmatch.fnmatch(
            path.as_posix(), pattern
        ):
            return True
    return False


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> SpecFile | None:
    if file_path.suffix not in SPEC_SUFFIXES:
        return None
    config = parent.config
    # As pytest's own `python_files`: a file named on the command line is collected too.
    if not parent.session.isinitpath(file_path) and not matches(
        file_path, spec_patterns(config), config.rootpath
    ):
        return None
    spec: SpecFile = SpecFile.from_parent(parent, path=file_path)
    return spec


_OPTIONS = pytest.StashKey["RunOptions"]()


def run_options(config: pytest.Config) -> RunOptions:
    """The engine's options for this run, made by the API's `make_settings`, as the CLI's:
    the project's `[tool.gradcheck-cli]`, with `--gradcheck-device` winning over its
    devices. Items run in pytest's process (pytest-xdist spreads them), without the cache."""
    if _OPTIONS in config.stash:
        return config.stash[_OPTIONS]
    from gradcheck_cli.api import make_settings
    from gradcheck_cli.config import find_config
    from gradcheck_cli.errors import GradcheckCliError

    flag: list[str] | None = config.getoption("--gradcheck-device")
    shard: str | None = config.getoption("--gradcheck-shard")
    try:
        settings = make_settings(find_config(config.rootpath), devices=flag, jobs=0,
                                 cache=False, shard=shard)
    except GradcheckCliError as exc:
        raise pytest.UsageError(f"gradcheck-cli: {exc}") from None
    config.stash[_OPTIONS] = settings.options
    return settings.options


_SHARD = pytest.StashKey[str]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep this shard's gradcheck items (`--gradcheck-shard`); pytest's --lf and --sw
    filter afterwards (their hooks wrap this one)."""
    ours = [item for item in items if isinstance(item, _SpecItem)]
    if not ours:
        return
    options = run_options(config)
    if options.shard is None:
        return
    from gradcheck_cli.execution import shard

    index, count = options.shard
    weights = [(item.nodeid, shard.estimate(item.task, options) if isinstance(item, CheckItem)
                else shard.PROBLEM_SECONDS) for item in ours]
    chosen = shard.assign(weights, count)
    dropped = {id(item) for item, s in zip(ours, chosen) if s != index - 1}
    if dropped:
        config.hook.pytest_deselected(items=[i for i in items if id(i) in dropped])
        items[:] = [i for i in items if id(i) not in dropped]
    config.stash[_SHARD] = (f"gradcheck: shard {index}/{count}: "
                            f"{len(ours) - len(dropped)} of {len(ours)} checks")


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    return config.stash.get(_SHARD, None)


class SpecFile(pytest.File):
    """A spec file: its Functions x cases x devices x checks, planned by the CLI's runner."""

    def collect(self) -> Iterator[pytest.Item]:
        from gradcheck_cli.execution.plan import plan_spec
        from gradcheck_cli.results import CheckResult
        from gradcheck_cli.specs.collect import display
        from gradcheck_cli.specs.specfile import load_spec

        spec = load_spec(self.path, display(self.path))
        lines = {f.name: f.line for f in spec.functions}
        options = run_options(self.config)
        quiet_torch_import()
        seen: set[str] = set()
        broken: set[str | None] = set()
        checked: dict[str, CheckResult | None] = {}
        for entry in plan_spec(self.path, options, spec):
            if isinstance(entry, CheckResult):
                problem: CheckResult | None = entry
            else:
                if entry.function not in checked:
                    checked[entry.function] = _unrunnable(entry)
                problem = checked[entry.function]
            if problem is None:
                assert not isinstance(entry, CheckResult)
                name = _unique(item_name(entry), seen)
                item: pytest.Item = CheckItem.from_parent(
                    self, name=name, nodeid=_child_id(self, name), task=entry,
                    options=options)
            else:
                # A spec, module or Function that cannot be checked: one item says why.
                if problem.function in broken or None in broken:
                    continue
                broken.add(problem.function)
                if problem.function is not None:
                    line = lines.get(problem.function)
                elif spec.error is not None:
                    line = spec.error.line
                else:
                    line = spec.module_line
                name = _unique(problem.function or COLLECT_NAME, seen)
                item = ProblemItem.from_parent(
                    self, name=name, nodeid=_child_id(self, name), result=problem,
                    spec_line=line)
            item.add_marker(MARKER)
            yield item


def _child_id(parent: pytest.Collector, name: str) -> str:
    """The item's node id as a string (`spec.yaml::Fn[cpu-gradcheck]`). Given so, pytest 9.2+
    parses the bracket as the item's params, as it parses the ids it stored for --lf and
    --sw; built from the name, the bracket stays in the name and no stored id matches."""
    return f"{parent.nodeid}::{name}"


def _unrunnable(task: Task) -> CheckResult | None:
    """Why the task's Function cannot be checked at all, told at collection from the
    module's source alone: collecting never imports the user's module (nor torch), so
    `pytest -m "not gradcheck"` costs nothing. Problems only an import shows (a module
    that raises) fail the items when they run."""
    from gradcheck_cli.errors import SpecError, did_you_mean
    from gradcheck_cli.execution.tasks import error_result
    from gradcheck_cli.specs.collect import display
    from gradcheck_cli.target.discovery import load_problem, names_defined

    problem = load_problem(task.module)
    if problem is not None:
        return error_result(task.module, task.spec, problem)
    names = names_defined(task.module)
    if names is None or task.function in names:
        return None
    public = sorted(n for n in names if not n.startswith("_"))
    missing = SpecError(
        f"`{task.function}` is not defined in {display(task.module)}",
        file=display(task.spec) if task.spec else None, line=task.spec_line,
        hint=did_you_mean(task.function, public)
        or "name a torch.autograd.Function subclass or a function of that module")
    return error_result(task.module, task.spec, missing, task.function, task.case.name)


def _unique(name: str, seen: set[str]) -> str:
    # Node ids must be unique (pytest-xdist relies on it); a spec cannot normally repeat one.
    candidate, n = name, 1
    while candidate in seen:
        n += 1
        candidate = f"{name}#{n}"
    seen.add(candidate)
    return candidate


def item_name(task: Task) -> str:
    """`MultiplyAdd[cpu-gradcheck]`, `LogSoftmax[wide-cpu-gradgradcheck]`."""
    params = [task.device, task.check]
    if task.case.name != "default":
        params.insert(0, task.case.name)
    return f"{task.function}[{'-'.join(params)}]"


class GradcheckFailure(Exception):
    """A failed or errored result; pytest shows it with the CLI's details text."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.message)
        self.result = result


def details_text(result: CheckResult) -> str:
    """The CLI's details of one result, as plain text: the message first (pytest's short
    summary shows the first line), then where, the seed, the per-input table, the
    diagnoses and the command that reproduces it."""
    from gradcheck_cli.report.junit import details

    return details(result, advise=_advise)


def _advise(advice: Advice) -> str:
    """Advice in the plugin's words: what to add to the `reproduce:` command shown (the
    plugin itself takes only [tool.gradcheck-cli] settings)."""
    from gradcheck_cli.cli.advice import advise

    return f"{advise(advice)} (on the reproduce command below)"


class _SpecItem(pytest.Item):
    """What both kinds of item share: how failures show and where they point."""

    spec_line: int | None = None

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> Any:
        if isinstance(excinfo.value, GradcheckFailure):
            return details_text(excinfo.value.result)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        line = self.spec_line - 1 if self.spec_line else 0
        return self.path, line, self.name


class CheckItem(_SpecItem):
    """One Function x case x device x check, run in-process by the CLI's engine."""

    def __init__(self, *, task: Task, options: RunOptions, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.task = task
        self.options = options
        self.spec_line = task.spec_line

    def runtest(self) -> None:
        import time

        from gradcheck_cli.execution.execute import execute
        from gradcheck_cli.results import Status

        quiet_torch_import()
        started = time.perf_counter()
        result = execute(self.task, self.options)
        result.duration = time.perf_counter() - started
        if result.status is Status.SKIPPED:
            _skip(result.message or "skipped")
        if result.status.is_problem:
            raise GradcheckFailure(result)


def _skip(reason: str) -> NoReturn:
    """Skip the running item, reported at the spec's line rather than at this file's."""
    try:
        # What pytest's own skip marks raise; `_use_item_location` is private, hence the guard.
        exc = pytest.skip.Exception(reason, _use_item_location=True)
    except TypeError:
        pytest.skip(reason)
    raise exc


class ProblemItem(_SpecItem):
    """A spec, module or Function entry that could not be planned: it fails with why."""

    def __init__(self, *, result: CheckResult, spec_line: int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.result = result
        self.spec_line = spec_line

    def runtest(self) -> None:
        raise GradcheckFailure(self.result)
