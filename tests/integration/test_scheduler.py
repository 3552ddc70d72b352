"""The scheduler for real: APScheduler with its job store in the monitoring database on SQLite
and on PostgreSQL, jobs recorded in pipeline_runs and beating, the watchdog alerting on a
missed heartbeat and resolving it, and a real job (materialize) on a scratch Feast repo.

The jobs below are module-level functions because the job store keeps them by reference, as
it keeps the platform's own. No assertion is about time: waits are bounded, nothing more.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.events import EVENT_ALL, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

from collectwise import scheduler_jobs
from collectwise.settings import Settings, get_settings
from ingestion.retrieval import scratch_repo
from monitoring.job_inputs import NothingToMonitorError
from monitoring.monitor_db import MonitoringStore
from monitoring.scheduler import engine
from monitoring.scheduler.runner import AlreadyRunningError, run_job, stage_of, watch_of
from monitoring.scheduler.schedule import JobKind, Schedule, parse_schedule
from monitoring.scheduler.status import read_delivery_problems, read_job_statuses
from monitoring.scheduler.watchdog import check, overdue_metric
from tests.integration.conftest import FeatureData

pytestmark = pytest.mark.integration

GATE = threading.Event()  # held() waits on it
STARTED = threading.Event()  # held() sets it when it runs
BOUND = 90.0  # seconds any wait may take before the test fails (a bound, not a measure)


def held(note: str = "held") -> str:
    """A job that runs until the test lets it finish."""
    STARTED.set()
    if not GATE.wait(BOUND):
        raise RuntimeError("the test never released the job")
    return note


def tick() -> str:
    return "ticked"


def nothing_to_do(window: str = "1d") -> None:
    raise NothingToMonitorError(f"no served rows in the last {window}: nothing to monitor")


KINDS = {
    "held": JobKind("held", held, "runs until released"),
    "tick": JobKind("tick", tick, "returns at once"),
    "nothing": JobKind("nothing", nothing_to_do, "fails with a domain error"),
}


def schedule_of(text: str, settings: Settings) -> Schedule:
    path = settings.home / "schedules.yaml"
    path.write_text(text)
    return parse_schedule(text, path, KINDS, settings.scheduler.timezone)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


@dataclass
class Platform:
    settings: Settings
    store: MonitoringStore


@pytest.fixture
def platform(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    """A home of its own whose monitoring database is db_url (SQLite or PostgreSQL)."""
    monkeypatch.setenv("COLLECTWISE_HOME", str(tmp_path))
    monkeypatch.setenv("COLLECTWISE_MONITORING__DB_URL", db_url)
    GATE.clear()
    STARTED.clear()
    store = MonitoringStore(db_url)
    yield Platform(get_settings(), store)
    GATE.set()
    store.dispose()


class Events:
    """APScheduler's events, collected from its threads."""

    def __init__(self) -> None:
        self.seen: list[JobEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: JobEvent) -> None:
        with self._lock:
            self.seen.append(event)

    def codes(self) -> list[int]:
        with self._lock:
            return [e.code for e in self.seen]


def started_with_events(schedule: Schedule, settings: Settings) -> tuple[object, Events]:
    events = Events()
    scheduler = engine.new_scheduler(settings, workers=4)
    scheduler.add_listener(events, EVENT_ALL)
    started, _ = engine.start(schedule, settings, scheduler)
    return started, events


def runs_of(store: MonitoringStore, name: str) -> list[str]:
    return [r.status for r in store.list_runs(stage_of(name))]


def test_an_overlapping_run_is_refused(platform: Platform) -> None:
    # Yearly, so it never comes due by itself while the test runs: the test makes it due.
    schedule = schedule_of("jobs:\n  held:\n    cron: '0 0 1 jan *'\n", platform.settings)
    scheduler, events = started_with_events(schedule, platform.settings)
    try:
        scheduler.modify_job("held", next_run_time=datetime.now(UTC))  # type: ignore[attr-defined]
        assert STARTED.wait(BOUND)
        scheduler.modify_job("held", next_run_time=datetime.now(UTC))  # type: ignore[attr-defined]
        wait_until(lambda: EVENT_JOB_MAX_INSTANCES in events.codes(), "the refusal")
        GATE.set()
        wait_until(lambda: runs_of(platform.store, "held") == ["succeeded"], "the run's end")
    finally:
        GATE.set()
        scheduler.shutdown(wait=True)  # type: ignore[attr-defined]
    (run,) = platform.store.list_runs(stage_of("held"))
    assert run.message == "held"
    (beat,) = platform.store.list_heartbeats()
    assert beat.job == "held" and beat.last_run_id == run.id and beat.last_beat_at is not None


def _cron_half_an_hour_away() -> str:
    # A minute of the hour 30 minutes from now: no genuine run can come due during the test.
    return f"{(datetime.now(UTC).minute + 30) % 60} * * * *"


def _down_for_hours(schedule: Schedule, settings: Settings, hours: int) -> None:
    """Run the scheduler, stop it, and leave its job store as `hours` of downtime would:
    the job's pending run time that many hours in the past.

    Written through the job store with no scheduler running: a scheduler shutting down
    processes due jobs once more (into its stopped executor), which would use the run up.
    """
    scheduler, sync = engine.start(schedule, settings)
    scheduler.shutdown(wait=True)
    assert sync.changes == {"tick": "added"}
    store = SQLAlchemyJobStore(
        url=settings.monitoring.database_url, tablename=engine.JOBSTORE_TABLE
    )
    store.start(scheduler, "default")
    try:
        job = store.lookup_job("tick")
        earlier = datetime.now(UTC) - timedelta(hours=hours)
        job._modify(next_run_time=job.trigger.get_next_fire_time(None, earlier))
        store.update_job(job)
    finally:
        store.shutdown()


def test_a_missed_run_is_caught_up_exactly_once(platform: Platform) -> None:
    schedule = schedule_of(f"jobs:\n  tick:\n    cron: '{_cron_half_an_hour_away()}'\n",
                           platform.settings)  # fmt: skip
    _down_for_hours(schedule, platform.settings, hours=5)  # about five runs missed
    scheduler, events = started_with_events(schedule, platform.settings)
    try:
        wait_until(lambda: runs_of(platform.store, "tick") == ["succeeded"], "the catch-up run")
        pending = scheduler.get_job("tick").next_run_time  # type: ignore[attr-defined]
    finally:
        scheduler.shutdown(wait=True)  # type: ignore[attr-defined]
    # Kept, not rescheduled: rescheduling would have dropped the missed run.
    assert events.codes().count(EVENT_JOB_MISSED) == 0
    submitted = [e for e in events.seen if getattr(e, "scheduled_run_times", None)]
    assert len(submitted) == 1 and len(submitted[0].scheduled_run_times) == 1  # coalesced
    assert pending > datetime.now(UTC)  # nothing else waits to run
    assert runs_of(platform.store, "tick") == ["succeeded"]


def test_a_run_missed_by_more_than_the_grace_is_skipped(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLLECTWISE_SCHEDULER__MISFIRE_GRACE_SECONDS", "60")
    get_settings.cache_clear()
    settings = get_settings()
    schedule = schedule_of(f"jobs:\n  tick:\n    cron: '{_cron_half_an_hour_away()}'\n", settings)
    _down_for_hours(schedule, settings, hours=2)  # the latest missed run is ~30 min late
    scheduler, events = started_with_events(schedule, settings)
    try:
        wait_until(lambda: EVENT_JOB_MISSED in events.codes(), "the missed run's report")
    finally:
        scheduler.shutdown(wait=True)  # type: ignore[attr-defined]
    assert runs_of(platform.store, "tick") == []


def test_the_job_store_follows_the_schedule_file(platform: Platform) -> None:
    first = schedule_of(
        "jobs:\n  tick:\n    cron: '0 3 * * *'\n  held:\n    cron: '0 4 * * *'\n",
        platform.settings,
    )
    scheduler, sync = engine.start(first, platform.settings)
    scheduler.shutdown(wait=True)
    assert sync.changes == {"tick": "added", "held": "added"}
    second = schedule_of(
        "jobs:\n  tick:\n    cron: '0 5 * * *'\n  held:\n    cron: '0 4 * * *'\n"
        "    enabled: false\n  nothing:\n    cron: '0 6 * * *'\n",
        platform.settings,
    )
    scheduler, sync = engine.start(second, platform.settings)
    try:
        stored = {job.id: str(job.trigger) for job in scheduler.get_jobs()}
    finally:
        scheduler.shutdown(wait=True)
    assert sync.changes == {"tick": "rescheduled", "held": "removed", "nothing": "added"}
    daily = "cron[month='*', day='*', day_of_week='*', hour='{}', minute='0']"
    assert stored == {"tick": daily.format(5), "nothing": daily.format(6)}
    watched = {b.job: b.active for b in platform.store.list_heartbeats()}
    assert watched == {"tick": True, "held": False, "nothing": True}
    assert set(engine.next_runs(platform.settings)) == {"tick", "nothing"}


def test_a_failed_run_is_recorded_and_does_not_beat(platform: Platform) -> None:
    with pytest.raises(NothingToMonitorError, match="nothing to monitor"):
        run_job("nothing", KINDS["nothing"], "0 3 * * *", {"window": "2d"}, platform.store)
    (run,) = platform.store.list_runs(stage_of("nothing"))
    assert run.status == "failed" and "no served rows in the last 2d" in (run.message or "")
    assert [b.last_beat_at for b in platform.store.list_heartbeats()] == []


def test_a_run_while_another_is_recorded_running_is_refused(platform: Platform) -> None:
    # Another process (a run-once, a CronJob) started the job and has not finished.
    platform.store.start_run(stage_of("tick"))
    with pytest.raises(AlreadyRunningError, match="already running"):
        run_job("tick", KINDS["tick"], "*/5 * * * *", {}, platform.store)
    # One "running" for longer than the job's interval died with its process: not a block.
    platform.store.start_run(stage_of("tick"), at=datetime.now(UTC) - timedelta(hours=1))
    stale = sorted(platform.store.list_runs(stage_of("tick")), key=lambda r: r.id)[0]
    platform.store.finish_run(stale.id, "failed", message="killed")
    tracker = run_job("tick", KINDS["tick"], "*/5 * * * *", {}, platform.store)
    assert tracker.message == "ticked"


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed on exit: connections are refused


def test_the_watchdog_alerts_on_a_missed_heartbeat_and_resolves_it(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Alerts go to a webhook that is down, so each is escalated to the fallback file.
    monkeypatch.setenv("COLLECTWISE_MONITORING__WEBHOOK_URL", f"http://127.0.0.1:{_dead_port()}/")
    monkeypatch.setenv("COLLECTWISE_MONITORING__WEBHOOK_RETRIES", "0")
    get_settings.cache_clear()
    settings = get_settings()
    schedule = schedule_of("jobs:\n  tick:\n    cron: '*/5 * * * *'\n", settings)
    store = platform.store
    in_time = check(schedule.jobs, settings, store=store)
    assert in_time == []
    grace = settings.scheduler.heartbeat_grace_seconds
    late = datetime.now(UTC) + timedelta(minutes=5, seconds=grace + 60)  # past tick's window
    (alert,) = check(schedule.jobs, settings, store=store, now=late)
    assert alert.rule_name == "scheduled job missed" and alert.metric == overdue_metric("tick")
    assert alert.severity == "critical" and alert.value is not None and alert.value > 0
    overdue = read_job_statuses(store, timedelta(seconds=900), late)
    assert [(s.job, s.overdue) for s in overdue] == [("tick", True)]

    store.beat(watch_of("tick", "*/5 * * * *", "UTC"), at=late + timedelta(minutes=1))
    assert check(schedule.jobs, settings, store=store, now=late + timedelta(minutes=2)) == []
    resolved = store.get_alert(alert.id)
    assert resolved.status == "resolved" and resolved.resolved_by == "system"
    assert [s.overdue for s in read_job_statuses(store, timedelta(seconds=900), late)] == [False]

    problems = read_delivery_problems(store)
    assert [(p.alert_id, p.action) for p in problems] == [
        (alert.id, "escalated"),
        (alert.id, "delivery_failed"),
    ]
    escalated = Path(settings.paths.monitoring_db.with_name("escalated-alerts.jsonl"))
    assert '"rule": "scheduled job missed"' in escalated.read_text()


def test_a_real_job_runs_recorded_and_beats(
    platform: Platform, feature_data: FeatureData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`collectwise materialize`'s code as the scheduled materialize job: the first run loads
    the snapshot, the second finds it loaded and skips, a third after the online store was
    lost loads it again; each recorded, each beating."""
    project = f"cwsched_{uuid.uuid4().hex[:8]}"
    online = {"type": "sqlite", "path": str(platform.settings.home / "online.db")}
    with scratch_repo(feature_data.features_dir, project, online=online) as applied:
        monkeypatch.setenv("COLLECTWISE_HOME", str(applied.repo))
        monkeypatch.setenv("COLLECTWISE_FEAST__YAML", str(applied.profile))
        get_settings.cache_clear()
        kind = scheduler_jobs.kinds()["materialize"]
        arguments = {"features": str(feature_data.features_dir), "only_new": True}
        first = run_job("materialize", kind, "5 * * * *", arguments, platform.store)
        second = run_job("materialize", kind, "5 * * * *", arguments, platform.store)
        Path(online["path"]).unlink()  # the online store is lost
        third = run_job("materialize", kind, "5 * * * *", arguments, platform.store)
    assert (first.message or "").startswith("loaded")
    assert (second.message or "").startswith("skipped")
    assert (third.message or "").startswith("loaded")
    runs = platform.store.list_runs(stage_of("materialize"))
    assert [r.status for r in runs] == ["succeeded"] * 3
    (beat,) = platform.store.list_heartbeats()
    assert beat.last_run_id == third.id and beat.interval_seconds == 3600
