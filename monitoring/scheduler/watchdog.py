"""The watchdog: a dead man's switch over the scheduled jobs' heartbeats.

Each run holds the heartbeats to the schedule file (new and changed jobs watched from now,
jobs gone or disabled no longer watched) and reports, per watched job, how many seconds
past its window the last beat is: `heartbeat.<job>.overdue_seconds`, negative while the
job is in time. Those metrics go through monitoring.job_finish.finish_job like any job's:
stored, evaluated by the "scheduled job missed" rule (monitoring.alerts.HEARTBEAT_RULE),
which opens one alert per overdue job, delivers it (escalating a failed delivery), and
resolves it by itself once the job beats again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from monitoring.alerts import HEARTBEAT_RULE, Alert
from monitoring.job_finish import finish_job
from monitoring.job_result import JobResult
from monitoring.monitor_db import DuplicateRule, Heartbeat, MonitoringStore
from monitoring.scheduler.engine import watch_jobs

if TYPE_CHECKING:
    from collectwise.settings import Settings
    from monitoring.scheduler.schedule import ScheduledJob

log = logging.getLogger(__name__)

JOB = "watchdog"


def overdue_metric(job: str) -> str:
    return f"heartbeat.{job}.overdue_seconds"


def heartbeat_result(beats: Sequence[Heartbeat], grace: timedelta, now: datetime) -> JobResult:
    """The watchdog's metrics over the watched heartbeats (pure)."""
    metrics = {overdue_metric(b.job): b.overdue_seconds(now, grace) for b in beats}
    overdue = sorted(b.job for b in beats if b.overdue_seconds(now, grace) > 0)
    return JobResult(
        JOB, None, now, metrics, labels={"grace_seconds": str(int(grace.total_seconds()))},
        details={"overdue": overdue}, rows=len(beats),
    )  # fmt: skip


def ensure_rule(store: MonitoringStore) -> None:
    """Put the dead man's switch rule back if it is missing (a store seeded before it
    existed); a disabled rule stays disabled."""
    if any(rule.name == HEARTBEAT_RULE.name for rule in store.list_rules()):
        return
    try:
        store.add_rule(HEARTBEAT_RULE)
        log.info("added the alert rule %r", HEARTBEAT_RULE.name)
    except DuplicateRule:  # added concurrently
        pass


def check(
    jobs: Sequence[ScheduledJob],
    settings: Settings,
    *,
    store: MonitoringStore | None = None,
    now: datetime | None = None,
) -> list[Alert]:
    """One watchdog run: watch the schedule's jobs, judge their beats, alert; returns the
    alerts it opened."""
    now = now or datetime.now(UTC)
    own = store is None
    active = store or MonitoringStore(settings.monitoring.database_url)
    try:
        ensure_rule(active)
        watch_jobs(active, jobs, settings.scheduler.timezone)
        grace = timedelta(seconds=settings.scheduler.heartbeat_grace_seconds)
        result = heartbeat_result(active.list_heartbeats(active_only=True), grace, now)
        if result.details["overdue"]:
            log.warning("overdue scheduled jobs: %s", ", ".join(result.details["overdue"]))
        # A missed heartbeat is an operations problem: it must never start retraining, even
        # when retrain_on names its severity.
        quiet = settings.monitoring.model_copy(update={"retrain_on": []})
        return finish_job(result, quiet, store=active, now=now)
    finally:
        if own:
            active.dispose()
