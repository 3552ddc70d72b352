"""The real console script: `collectwise scheduler run` in a process of its own runs the
schedule (the watchdog every minute) until SIGTERM, recording and beating; `list` shows the
job store's next run and the last run; `run-once` runs a job now, recorded the same way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitoring.monitor_db import MonitoringStore
from monitoring.scheduler.runner import stage_of

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COMMAND = [sys.executable, "-c", "from collectwise.cli import main; main()", "scheduler"]
SCHEDULE = """\
jobs:
  watchdog:
    cron: "* * * * *"
  retrain:
    cron: "0 4 * * sun"
    enabled: false
"""
BOUND = 180.0  # the first run comes within a minute; a bound on the wait, not a measure


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "COLLECTWISE_HOME": str(home),
        "COLLECTWISE_MONITORING__DB_URL": f"sqlite:///{home / 'monitoring.db'}",
    }


def _cli(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], env=_env(home), capture_output=True, text=True, timeout=300, check=False
    )


def _beaten(store: MonitoringStore) -> bool:
    return any(b.job == "watchdog" and b.last_beat_at for b in store.list_heartbeats())


def test_the_scheduler_runs_until_stopped_and_operators_see_it(tmp_path: Path) -> None:
    (tmp_path / "schedules.yaml").write_text(SCHEDULE)
    log = (tmp_path / "scheduler.log").open("w")
    process = subprocess.Popen([*COMMAND, "run"], env=_env(tmp_path), stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + BOUND
        while not (tmp_path / "monitoring.db").exists() and process.poll() is None:
            time.sleep(0.5)
        store = MonitoringStore(f"sqlite:///{tmp_path / 'monitoring.db'}")
        while not _beaten(store):
            assert process.poll() is None, (tmp_path / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "no scheduled run within the bound"
            time.sleep(1)
        listed = _cli(["list", "--json"], tmp_path)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=120)
        log.close()
    output = (tmp_path / "scheduler.log").read_text()
    assert code == 0, output
    assert "scheduler stopped" in output and "Traceback" not in output
    (run,) = store.list_runs(stage_of("watchdog"))
    assert run.status == "succeeded" and run.message == "every scheduled job in time"

    assert listed.returncode == 0, listed.stderr
    rows = {r["job"]: r for r in json.loads(listed.stdout)}
    assert (
        rows["watchdog"]["next_run"] is not None and rows["watchdog"]["last_status"] == "succeeded"
    )
    assert rows["retrain"]["enabled"] is False and rows["retrain"]["next_run"] is None

    once = _cli(["run-once", "watchdog"], tmp_path)
    assert once.returncode == 0, once.stderr
    assert once.stdout.strip() == "watchdog: succeeded: every scheduled job in time"
    assert [r.status for r in store.list_runs(stage_of("watchdog"))] == ["succeeded"] * 2
    store.dispose()
