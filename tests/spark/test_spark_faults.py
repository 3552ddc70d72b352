"""`collectwise build-features --engine spark` without Java or without pyspark: one line
naming what to install and a non-zero exit, no traceback, nothing written. Each case runs
the real console script in a subprocess whose environment lacks the dependency."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from collectwise.errors import EXIT_FAILED
from tests.rawdata import one_account, write_raw

pytestmark = pytest.mark.spark


def _build_with_spark(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    write_raw(tmp_path / "raw", one_account(), as_of="2024-07-01")
    command = [sys.executable, "-c", "from collectwise.cli import main; main()"]
    args = ["build-features", "--engine", "spark", "--raw", str(tmp_path / "raw")]
    return subprocess.run(
        [*command, *args, "--out", str(tmp_path / "features")],
        env={**os.environ, "COLLECTWISE_HOME": str(tmp_path / "home"), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _the_one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == EXIT_FAILED, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_without_java_it_names_the_runtime_to_install(tmp_path: Path) -> None:
    # A PATH with python's own directory only, and a JAVA_HOME that holds no java.
    env = {"PATH": str(Path(sys.executable).parent), "JAVA_HOME": str(tmp_path / "nojava")}
    line = _the_one_error_line(_build_with_spark(tmp_path, env))
    assert "SparkUnavailableError" in line
    assert "openjdk-17-jre-headless" in line
    assert not (tmp_path / "features").exists()


def test_without_java_on_path_it_says_so(tmp_path: Path) -> None:
    env = {"PATH": str(Path(sys.executable).parent), "JAVA_HOME": ""}
    line = _the_one_error_line(_build_with_spark(tmp_path, env))
    assert "found none (PATH)" in line
    assert "openjdk-17-jre-headless" in line


def test_without_pyspark_it_names_the_install_command(tmp_path: Path) -> None:
    # A package that shadows pyspark and fails to import, as an absent one does.
    shadow = tmp_path / "shadow"
    (shadow / "pyspark").mkdir(parents=True)
    (shadow / "pyspark" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'pyspark'\")\n"
    )
    line = _the_one_error_line(_build_with_spark(tmp_path, {"PYTHONPATH": str(shadow)}))
    assert "needs pyspark" in line
    assert "make setup-spark" in line
    assert not (tmp_path / "features").exists()
