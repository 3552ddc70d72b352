"""Stage runs of the real console script are recorded for system health, failures too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring.monitor_db import MonitoringStore

pytestmark = pytest.mark.e2e


def run_cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "COLLECTWISE_PATHS__DATA_DIR": str(tmp_path / "data"),
        "COLLECTWISE_MONITORING__DB_URL": f"sqlite:///{tmp_path / 'monitoring.db'}",
    }
    command = [sys.executable, "-c", "from collectwise.cli import main; main()", *args]
    return subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=300
    )


def test_stage_runs_are_recorded(tmp_path: Path) -> None:
    ok = run_cli(["generate", "--accounts", "50", "--months", "3"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    failed = run_cli(["validate", "--raw", str(tmp_path / "nowhere")], tmp_path)
    assert failed.returncode == 1
    runs = {
        r.stage: r for r in MonitoringStore(f"sqlite:///{tmp_path / 'monitoring.db'}").list_runs()
    }
    assert runs["generate"].status == "succeeded" and runs["generate"].ended_at is not None
    assert runs["validate"].status == "failed" and "exit code 1" in (runs["validate"].message or "")
