"""Project config: found by walking up, typed, and loud (with a suggestion) about mistakes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gradcheck_cli import config
from gradcheck_cli.config import ProjectConfig, find_config


def _write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pyproject.toml"
    path.write_text(text, encoding="utf-8")
    return path


FULL = """
[project]
name = "demo"

[tool.gradcheck-cli]
specs = "gradspecs"
devices = ["cpu"]
checks = ["gradcheck"]
seed = 3
atol = 1e-5
rtol = 0
eps = 1e-6
timeout = 30
jobs = "auto"
cache = true
cache_dir = ".cache/gradcheck"
format = "json"
"""


def test_walks_up_to_the_nearest_pyproject(tmp_path: Path) -> None:
    path = _write(tmp_path, FULL)
    deep = tmp_path / "src" / "pkg" / "ops"
    deep.mkdir(parents=True)
    found = find_config(deep)
    assert found.path == path
    assert found.warnings == []
    assert found.values == {
        "specs": str(tmp_path / "gradspecs"),
        "devices": ["cpu"],
        "checks": ["gradcheck"],
        "seed": 3,
        "atol": 1e-5,
        "rtol": 0.0,
        "eps": 1e-6,
        "timeout": 30.0,
        "jobs": "auto",
        "cache": True,
        "cache_dir": str(tmp_path / ".cache" / "gradcheck"),
        "format": "json",
    }
    assert isinstance(found.values["rtol"], float)


def test_nearest_table_wins(tmp_path: Path) -> None:
    _write(tmp_path, "[tool.gradcheck-cli]\nseed = 1\n")
    inner = _write(tmp_path / "sub", "[tool.gradcheck-cli]\nseed = 2\n")
    assert find_config(tmp_path / "sub").path == inner
    assert find_config(tmp_path / "sub").values == {"seed": 2}


def test_pyproject_without_the_table_is_passed_over(tmp_path: Path) -> None:
    outer = _write(tmp_path, "[tool.gradcheck-cli]\nseed = 1\n")
    _write(tmp_path / "sub", "[project]\nname = 'sub'\n")
    found = find_config(tmp_path / "sub")
    assert found.path == outer
    assert found.values == {"seed": 1}


def test_start_may_be_a_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[tool.gradcheck-cli]\nseed = 1\n")
    spec = tmp_path / "op.yaml"
    spec.write_text("functions: []\n", encoding="utf-8")
    assert find_config(spec).path == path


def test_nothing_found(tmp_path: Path) -> None:
    """A walk past pyproject.toml files without the table, and past none, to the root."""
    above = [folder for folder in tmp_path.parents if (folder / "pyproject.toml").is_file()]
    if above:  # pragma: no cover - depends on where the temp folders live
        pytest.skip(f"{above[0] / 'pyproject.toml'} is above the temp folder")
    _write(tmp_path / "repo", "[project]\nname = 'repo'\n")
    _write(tmp_path / "repo" / "sub", "[tool.other]\nkey = 1\n")
    deep = tmp_path / "repo" / "sub" / "src" / "pkg"
    deep.mkdir(parents=True)
    assert find_config(deep) == ProjectConfig(None, {}, [])
    assert find_config(tmp_path) == ProjectConfig(None, {}, [])


def test_defaults_to_the_working_directory(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "[tool.gradcheck-cli]\nseed = 5\n")
    monkeypatch.chdir(tmp_path)
    assert find_config().path == path


def test_unknown_key_warns_with_suggestion(tmp_path: Path) -> None:
    path = _write(tmp_path, '[tool.gradcheck-cli]\ndevcies = ["cpu"]\nzzz = 1\nseed = 4\n')
    found = find_config(tmp_path)
    assert found.values == {"seed": 4}
    assert len(found.warnings) == 2
    typo, unrelated = found.warnings
    assert str(path) in typo
    assert "unknown key `devcies`" in typo
    assert "did you mean `devices`?" in typo
    assert "unknown key `zzz`" in unrelated and "valid keys:" in unrelated


@pytest.mark.parametrize(("line", "key"), [
    ('seed = "3"', "seed"),
    ("seed = true", "seed"),
    ("seed = 1.5", "seed"),
    ('devices = "cpu"', "devices"),
    ("checks = [1, 2]", "checks"),
    ('atol = "1e-5"', "atol"),
    ("timeout = false", "timeout"),
    ('jobs = "many"', "jobs"),
    ("jobs = 2.0", "jobs"),
    ('cache = "yes"', "cache"),
    ("cache_dir = 1", "cache_dir"),
    ("specs = ['a', 'b']", "specs"),
    ("format = 1", "format"),
])
def test_wrong_type_warns_and_is_dropped(tmp_path: Path, line: str, key: str) -> None:
    path = _write(tmp_path, f"[tool.gradcheck-cli]\n{line}\n")
    found = find_config(tmp_path)
    assert found.path == path
    assert key not in found.values
    (warning,) = found.warnings
    assert str(path) in warning
    assert f"`{key}` must be" in warning


def test_jobs_accepts_an_integer(tmp_path: Path) -> None:
    _write(tmp_path, "[tool.gradcheck-cli]\njobs = 4\n")
    assert find_config(tmp_path).values == {"jobs": 4}


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    _write(tmp_path / "proj", f"[tool.gradcheck-cli]\nspecs = '{target.as_posix()}'\n")
    assert find_config(tmp_path / "proj").values["specs"] == str(target)


def test_invalid_toml_warns(tmp_path: Path) -> None:
    path = _write(tmp_path, "[tool.gradcheck-cli\nseed = \n")
    found = find_config(tmp_path)
    assert found.path == path
    assert found.values == {}
    (warning,) = found.warnings
    assert str(path) in warning and "not valid TOML" in warning


def test_table_of_the_wrong_type_warns(tmp_path: Path) -> None:
    _write(tmp_path, '[tool]\ngradcheck-cli = "yes"\n')
    found = find_config(tmp_path)
    assert found.values == {}
    assert "must be a table" in found.warnings[0]


def test_without_a_toml_reader_config_is_skipped_with_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "[tool.gradcheck-cli]\nseed = 1\n")
    monkeypatch.setattr(config, "_toml_loader", lambda: None)
    found = find_config(tmp_path)
    assert found.path == path
    assert found.values == {}
    assert "tomli" in found.warnings[0] and str(path) in found.warnings[0]


def test_config_does_not_import_torch() -> None:
    code = ("import sys, gradcheck_cli.config as c; c.find_config('.'); "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
