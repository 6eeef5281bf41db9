"""Sharded runs and `merge`: shards in separate processes combine into the whole run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from gradcheck_cli.execution import shard
from gradcheck_cli.version import __version__

SPECS = 40
HEAVY = 6  # about as many specs whose op sleeps several times longer
LIGHT_DELAY = 0.03
HEAVY_DELAY = 0.2
# Exact mode calls forward 5 times for one element: the sleeps, not the machine's load,
# make the checks' durations.
RUN = ("-j", "0", "--mode", "exact")
WRONG = (7, 30)


def _sleepy_ops(count: int) -> str:
    """`Op00`..: y = x * x, each forward sleeping its own delay (a cost no estimate sees);
    two backwards are wrong (not sleeping: their diagnosis calls forward many times)."""
    parts = ["import time\n\nimport torch\n"]
    for i in range(count):
        wrong = " + 1e-2" if i in WRONG else ""
        delay = 0 if wrong else HEAVY_DELAY if i % max(count // HEAVY, 1) == 3 else LIGHT_DELAY
        parts.append(textwrap.dedent(f'''
            class Op{i:02d}(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    time.sleep({delay})
                    ctx.save_for_backward(x)
                    return x * x

                @staticmethod
                def backward(ctx, g):
                    (x,) = ctx.saved_tensors
                    return 2 * x * g{wrong}
        '''))
    return "\n".join(parts)


@pytest.fixture
def many(tmp_path: Path) -> Path:
    """A project of SPECS specs, one Function each, of uneven cost, plus a broken spec."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'many'\n", encoding="utf-8")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "ops.py").write_text(_sleepy_ops(SPECS), encoding="utf-8")
    for i in range(SPECS):
        (specs / f"op{i:02d}.yaml").write_text(textwrap.dedent(f"""
            module: ops.py
            defaults: {{devices: [cpu], checks: [gradcheck]}}
            functions:
              Op{i:02d}:
                inputs: [{{shape: [1]}}]
        """), encoding="utf-8")
    (specs / "zz_broken.yaml").write_text("module: ops.py\nfunctions: [\n", encoding="utf-8")
    return tmp_path


def _cli(cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    return subprocess.Popen([sys.executable, "-m", "gradcheck_cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=600)
    return process.returncode, out, err


def _shards(cwd: Path, count: int, *extra: str) -> list[dict[str, Any]]:
    """Each shard in its own process, all at once; their JSON reports, also as files."""
    running = [_cli(cwd, "specs", "--shard", f"{i}/{count}", *RUN, "--format", "json",
                    *extra) for i in range(1, count + 1)]
    docs = []
    for i, process in enumerate(running, start=1):
        code, out, err = _finish(process)
        doc = json.loads(out)
        assert doc["summary"]["exit_code"] == code, err
        (cwd / f"shard{i}.json").write_text(out, encoding="utf-8")
        docs.append(doc)
    return docs


def _ids(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f"{r['spec']}::{r['function']}[{r['device']}-{r['check']}]", r["status"])
            for r in doc["results"]]


def _rows(table: str) -> list[str]:
    """The results table's lines (up to the first blank line), times blanked."""
    lines = table.split("\n\n")[0].splitlines()
    return [re.sub(r"\b\d+\.\d\ds\b", "T", line) for line in lines]


def _junit_tests(path: Path) -> int:
    return int(ET.parse(path).getroot().attrib["tests"])


def test_three_shards_in_three_processes_merge_into_the_whole_run(many: Path) -> None:
    whole_json = _cli(many, "specs", *RUN, "--no-cache", "--format", "json",
                      "--junit-xml", "whole.xml")
    whole_table = _cli(many, "specs", *RUN, "--no-cache")
    docs = _shards(many, 3, "--no-cache")
    code, out, err = _finish(whole_json)
    whole = json.loads(out)
    table_code, table, _ = _finish(whole_table)
    assert code == table_code == 1  # two wrong backwards and a broken spec
    assert len(whole["results"]) == SPECS + 1

    # Disjoint, and together the whole run check for check: ids and statuses.
    every = [entry for doc in docs for entry in _ids(doc)]
    assert len(every) == len(set(every)), "a check ran in two shards"
    assert sorted(every) == sorted(_ids(whole))
    plans = {(d["shard"]["plan"], d["shard"]["split"], d["shard"]["planned"]) for d in docs}
    assert len(plans) == 1 and plans.pop()[2] == SPECS + 1
    assert [d["shard"]["index"] for d in docs] == [1, 2, 3]
    assert sum(d["shard"]["checks"] for d in docs) == SPECS + 1
    for doc in docs:
        assert doc["schema"] == 1
        assert doc["shard"]["checks"] == len(doc["results"])

    # merge: the whole run's exit code, JUnit test count and table rows, in its order.
    names = [f"shard{i}.json" for i in (2, 3, 1)]  # any order
    code, merged_out, err = _finish(_cli(many, "merge", *names, "--format", "json",
                                         "--junit-xml", "merged.xml", "--no-cache"))
    merged = json.loads(merged_out)
    assert code == 1 and merged["summary"]["exit_code"] == 1
    assert _ids(merged) == _ids(whole)  # the same order too
    assert merged["summary"]["merged"] == 3 and merged["shard"] is None
    assert _junit_tests(many / "merged.xml") == _junit_tests(many / "whole.xml") == SPECS + 1
    code, merged_table, err = _finish(_cli(many, "merge", *names, "--no-cache"))
    assert code == 1, err
    assert _rows(merged_table) == _rows(table)
    assert len(_rows(table)) >= SPECS + 3  # header, rule, a row per result
    assert merged_table.splitlines()[-1].endswith("(summed over 3 reports)")


def test_recorded_durations_balance_the_next_split(many: Path) -> None:
    first = _shards(many, 3, "--no-cache")
    # merge records the shards' durations in the cache folder: the next split weighs them.
    code, _, err = _finish(_cli(many, "merge", "shard1.json", "shard2.json", "shard3.json",
                                "--cache-dir", "cache", "-qq"))
    assert code == 1, err
    recorded = json.loads((many / "cache" / shard.DURATIONS_FILE).read_text())
    assert len(recorded["checks"]) == SPECS
    second = _shards(many, 3, "--cache-dir", "cache")
    assert second[0]["shard"]["split"] != first[0]["shard"]["split"]
    assert second[0]["shard"]["plan"] == first[0]["shard"]["plan"]
    times = [sum(r["duration"] for r in doc["results"]) for doc in second]
    assert max(times) < 1.3 * min(times), times
    # No shard writes durations (the shards after it would split differently).
    assert json.loads((many / "cache" / shard.DURATIONS_FILE).read_text()) == recorded


def _result(where: str, function: str, duration: float = 0.1) -> Any:
    from gradcheck_cli.results import CheckResult, Status

    return CheckResult(module=where, spec=None, function=function, case="default",
                       device="cpu", check="gradcheck", status=Status.PASSED,
                       duration=duration)


def test_assign_is_disjoint_deterministic_and_balanced() -> None:
    weights = [(f"specs/op{i}.yaml::Op[cpu]", 1.0 + (i % 7) * 0.5) for i in range(100)]
    chosen = shard.assign(weights, 4)
    assert chosen == shard.assign(list(weights), 4)
    assert set(chosen) == {0, 1, 2, 3}
    loads = [sum(w for (_, w), s in zip(weights, chosen) if s == k) for k in range(4)]
    assert max(loads) - min(loads) <= 3.5  # within the heaviest piece
    # Equal weights (estimates alone) still spread evenly.
    even = shard.assign([(f"id{i}", 1.0) for i in range(10)], 3)
    assert sorted(even.count(k) for k in range(3)) == [3, 3, 4]
    assert shard.assign([], 3) == []


def test_durations_are_recorded_by_whole_runs_not_by_shards(tmp_path: Path,
                                                            write_op: Any, write_spec: Any,
                                                            run_json: Any) -> None:
    for i in range(6):
        write_spec({"module": "ops.py", "functions": {f"Op{i:02d}": {
            "inputs": [{"shape": [2]}], "checks": ["gradcheck"]}}}, f"specs/op{i}.yaml")
    (tmp_path / "specs" / "ops.py").write_text(_sleepy_ops(6), encoding="utf-8")
    durations = tmp_path / "cache" / shard.DURATIONS_FILE
    doc = run_json("specs", "--shard", "1/2", *RUN, "--cache-dir", "cache", in_process=False)
    assert doc["shard"]["index"] == 1 and not durations.exists()
    doc = run_json("specs", *RUN, "--cache-dir", "cache", in_process=False)
    assert doc["shard"] is None
    recorded = json.loads(durations.read_text())["checks"]
    ran = [r for r in doc["results"] if not r["cached"]]
    assert 0 < len(ran) < 6  # shard 1/2's passes came from the cache
    assert sorted(recorded) == sorted(f"{r['spec']}::{r['function']}[cpu-gradcheck]"
                                      for r in ran)
    # A cached re-run takes no time to answer: what was recorded stays.
    run_json("specs", *RUN, "--cache-dir", "cache", in_process=False)
    assert json.loads(durations.read_text())["checks"] == recorded


def test_an_empty_shard_exits_0_and_says_so(tmp_path: Path, write_op: Any, write_spec: Any,
                                            run_cli: Any) -> None:
    write_op(_sleepy_ops(1))
    write_spec({"module": "ops.py", "functions": {"Op00": {"inputs": [{"shape": [2]}]}}})
    code, out, err = run_cli("spec.yaml", "--shard", "3/3")
    assert code == 0, err
    assert out.strip().startswith("shard 3/3: 0 of 2 checks: no checks ran in ")
    code, out, err = run_cli("spec.yaml", "--shard", "1/3")
    assert code == 0, err
    assert out.splitlines()[-1].startswith("shard 1/3: 2 of 2 checks: 2 passed in ")


@pytest.mark.parametrize("value", ["0/4", "5/4", "2", "a/b", "1/0", "2/4/1"])
def test_a_bad_shard_is_a_usage_error(value: str, run_cli: Any) -> None:
    code, _out, err = run_cli(".", "--shard", value)
    assert code == 4
    assert f"Invalid value for '--shard': {value!r} is not a shard; write I/N" in err


def test_the_project_config_may_name_the_shard(tmp_path: Path, write_op: Any, write_spec: Any,
                                               run_cli: Any) -> None:
    write_op(_sleepy_ops(1))
    write_spec({"module": "ops.py", "functions": {"Op00": {"inputs": [{"shape": [2]}]}}})
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.gradcheck-cli]\nshard = "2/2"\n', encoding="utf-8")
    code, out, err = run_cli("spec.yaml")
    assert code == 0 and out.startswith("shard 2/2: 0 of 2 checks"), (out, err)
    code, out, err = run_cli("spec.yaml", "--shard", "1/2")  # the flag wins
    assert out.splitlines()[-1].startswith("shard 1/2: 2 of 2 checks"), (out, err)
    pyproject.write_text('[tool.gradcheck-cli]\nshard = "3/2"\n', encoding="utf-8")
    code, out, err = run_cli("spec.yaml")
    assert code == 4
    assert "`shard` in the project config '3/2' is not a shard" in err


# --- merge refuses what would make the combined report wrong -----------------------------


@pytest.fixture
def two_shards(tmp_path: Path, write_op: Any, write_spec: Any,
               run_cli: Any) -> tuple[Path, Path]:
    write_op(_sleepy_ops(4))
    for i in range(4):
        write_spec({"module": "ops.py", "functions": {f"Op{i:02d}": {
            "inputs": [{"shape": [2]}], "checks": ["gradcheck"]}}}, f"op{i}.yaml")
    paths = []
    for i in (1, 2):
        _code, out, _err = run_cli(".", "--shard", f"{i}/2", "--format", "json")
        paths.append(tmp_path / f"s{i}.json")
        paths[-1].write_text(out, encoding="utf-8")
    return paths[0], paths[1]


def _merge(run_cli: Any, *args: Any) -> tuple[int, str, str]:
    """`gradcheck-cli merge ARGS` in this process, none of run_cli's run flags added."""
    code, out, err = run_cli("merge", *args, cpu_only=False, in_process=False)
    return int(code), str(out), str(err)


def _edit(path: Path, change: Any) -> Path:
    doc = json.loads(path.read_text())
    change(doc)
    edited = path.with_name("edited-" + path.name)
    edited.write_text(json.dumps(doc), encoding="utf-8")
    return edited


def test_merge_of_two_shards_and_what_it_refuses(tmp_path: Path, two_shards: tuple[Path, Path],
                                                 run_cli: Any) -> None:
    one, two = two_shards
    code, out, err = _merge(run_cli, one, two, "--format", "json", "--no-cache")
    doc = json.loads(out)
    assert code == 0 and [r["function"] for r in doc["results"]] == [
        "Op00", "Op01", "Op02", "Op03"]

    def refused(*reports: Path) -> str:
        code, out, err = _merge(run_cli, *reports, "--no-cache")
        assert code == 4 and out == "", (out, err)
        return err

    assert "shard 2/2 missing: its checks would be left out" in refused(one)
    assert f"shard 1/2 is given twice: {one} and {one}" in refused(one, one, two)

    def version(doc: dict[str, Any]) -> None:
        doc["version"] = "0.0.1"
    err = refused(one, _edit(two, version))
    assert "the reports come from different versions of gradcheck-cli" in err
    assert f"{one} {__version__}" in err and "0.0.1" in err

    def no_schema(doc: dict[str, Any]) -> None:
        del doc["schema"]
    assert "has no schema version; this gradcheck-cli reads schema 1" in refused(
        one, _edit(two, no_schema))

    def other_split(doc: dict[str, Any]) -> None:
        doc["shard"]["split"] = "0" * 16
    assert "were split differently: the durations recorded in their cache folders" in \
        refused(one, _edit(two, other_split))

    def malformed(doc: dict[str, Any]) -> None:
        doc["shard"]["order"] = "everywhere"
    assert "a malformed report (ValueError: its `shard` is not as gradcheck-cli writes it)" \
        in refused(one, _edit(two, malformed))

    def other_run(doc: dict[str, Any]) -> None:
        doc["shard"]["plan"] = "0" * 16
    assert "are shards of different runs" in refused(one, _edit(two, other_run))

    code, out, err = run_cli(".", "--shard", "1/3", "--format", "json")
    third = tmp_path / "third.json"
    third.write_text(out, encoding="utf-8")
    assert "shard 1/2 and" in refused(one, third) and "shards of different splits overlap" in \
        refused(one, third)
    code, out, err = run_cli(".", "--format", "json")
    whole = tmp_path / "whole.json"
    whole.write_text(out, encoding="utf-8")
    assert "is a whole run and" in refused(whole, one)
    assert "Op00[cpu-gradcheck] is in" in refused(whole, whole) and "the reports overlap" in \
        refused(whole, whole)
    (tmp_path / "junk.json").write_text("{nope", encoding="utf-8")
    assert "junk.json: not a JSON document" in refused(tmp_path / "junk.json")
    # Whole runs of disjoint paths merge too.
    code, out, err = run_cli("op0.yaml", "--format", "json")
    (tmp_path / "a.json").write_text(out, encoding="utf-8")
    code, out, err = run_cli("op1.yaml", "--format", "json")
    (tmp_path / "b.json").write_text(out, encoding="utf-8")
    code, out, err = _merge(run_cli, "a.json", "b.json", "-qq", "--no-cache")
    assert (code, out.split(" in ")[0]) == (0, "2 passed")


def test_a_module_error_every_shard_meets_is_merged_once(tmp_path: Path, write_spec: Any,
                                                         run_cli: Any) -> None:
    (tmp_path / "ops.py").write_text("raise RuntimeError('no import today')\n",
                                     encoding="utf-8")
    write_spec({"module": "ops.py", "functions": {f"F{i}": {"inputs": [{"shape": [2]}]}
                                                  for i in range(6)}})
    reports = []
    for i in (1, 2):
        code, out, _ = run_cli("spec.yaml", "--shard", f"{i}/2", "--format", "json")
        assert code == 1 and json.loads(out)["results"][0]["check"] == "-"
        reports.append(tmp_path / f"s{i}.json")
        reports[-1].write_text(out, encoding="utf-8")
    _, out, _ = run_cli("spec.yaml", "--format", "json")
    whole = json.loads(out)
    code, out, _err = _merge(run_cli, *reports, "--format", "json", "--no-cache")
    merged = json.loads(out)
    assert code == 1
    assert [(r["check"], r["message"]) for r in merged["results"]] == [
        (r["check"], r["message"]) for r in whole["results"]]
    assert len(merged["results"]) == 1


def test_merge_never_imports_torch(two_shards: tuple[Path, Path], tmp_path: Path) -> None:
    code = ("import sys\nfrom gradcheck_cli.cli import main\n"
            f"status = main(['merge', {str(two_shards[0])!r}, {str(two_shards[1])!r}, '-qq'])\n"
            "sys.exit(10 + status if 'torch' in sys.modules else status)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert done.stdout.startswith("4 passed in ")
    assert (tmp_path / ".gradcheck_cache" / shard.DURATIONS_FILE).exists()
