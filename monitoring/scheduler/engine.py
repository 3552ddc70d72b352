"""The scheduler: APScheduler 3 with its job store in the monitoring database.

Jobs live in APScheduler's SQLAlchemyJobStore (table apscheduler_jobs) beside the pipeline
runs and heartbeats, on SQLite by default and PostgreSQL in production, so a restarted
scheduler knows when each job should have run. Every job runs with:
- max_instances=1: a run still going when the next is due is refused (logged), never
  doubled;
- coalesce=True and misfire_grace_time (settings.scheduler.misfire_grace_seconds): runs
  missed while the scheduler was down are caught up once, if the latest of them is at most
  that late; older ones are skipped (logged).

At start the job store is brought in line with the schedule file: new jobs added, changed
crons rescheduled, arguments updated, jobs no longer enabled removed. A job whose cron did
not change keeps its pending run time, which is what lets a missed run be caught up.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from monitoring.monitor_db import MonitoringStore
from monitoring.scheduler.runner import run_scheduled, watch_of

if TYPE_CHECKING:
    from collectwise.settings import Settings
    from monitoring.scheduler.schedule import Schedule, ScheduledJob

log = logging.getLogger(__name__)

JOBSTORE_TABLE = "apscheduler_jobs"


@dataclass(frozen=True)
class Sync:
    """What bringing the job store in line with the schedule did, by job name."""

    changes: dict[str, str]

    def summary(self) -> str:
        return ", ".join(f"{name} {what}" for name, what in sorted(self.changes.items()))


def new_scheduler(settings: Settings, workers: int = 8) -> BackgroundScheduler:
    """An unstarted scheduler on the monitoring database's job store."""
    url = settings.monitoring.database_url
    # SQLite: wait for another writer (a job writing its run) rather than fail at once.
    options: dict[str, Any] = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}
    store = SQLAlchemyJobStore(url=url, tablename=JOBSTORE_TABLE, engine_options=options)
    return BackgroundScheduler(
        jobstores={"default": store},
        executors={"default": ThreadPoolExecutor(max_workers=max(1, workers))},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": settings.scheduler.misfire_grace_seconds,
        },
        timezone=settings.scheduler.timezone,
    )


def sync_jobs(
    scheduler: BackgroundScheduler, jobs: Sequence[ScheduledJob], settings: Settings
) -> Sync:
    """Make the (started) scheduler's job store hold exactly the enabled jobs."""
    timezone = settings.scheduler.timezone
    stored = {job.id: job for job in scheduler.get_jobs()}
    changes: dict[str, str] = {}
    for job in jobs:
        if not job.enabled:
            continue
        trigger = job.trigger(timezone)
        held = stored.pop(job.name, None)
        if held is None:
            scheduler.add_job(
                run_scheduled, trigger, id=job.name, name=job.name, kwargs=job.entry_kwargs()
            )
            changes[job.name] = "added"
            continue
        scheduler.modify_job(
            job.name,
            func=run_scheduled,
            kwargs=job.entry_kwargs(),
            coalesce=True,
            max_instances=1,
            misfire_grace_time=settings.scheduler.misfire_grace_seconds,
        )
        if repr(held.trigger) != repr(trigger):
            scheduler.reschedule_job(job.name, trigger=trigger)
            changes[job.name] = "rescheduled"
        else:
            changes[job.name] = "kept"
    for name in stored:
        scheduler.remove_job(name)
        changes[name] = "removed"
    return Sync(changes)


def watch_jobs(store: MonitoringStore, jobs: Sequence[ScheduledJob], timezone: str) -> None:
    """Watch the heartbeats of exactly the enabled jobs."""
    store.watch([watch_of(job.name, job.cron, timezone) for job in jobs if job.enabled])


def start(
    schedule: Schedule, settings: Settings, scheduler: BackgroundScheduler | None = None
) -> tuple[BackgroundScheduler, Sync]:
    """A running scheduler holding the schedule's enabled jobs, their heartbeats watched.
    A caller may pass the (unstarted) scheduler, e.g. with listeners already attached."""
    store = MonitoringStore(settings.monitoring.database_url)  # creates the database if new
    try:
        watch_jobs(store, schedule.jobs, settings.scheduler.timezone)
    finally:
        store.dispose()
    scheduler = scheduler or new_scheduler(settings, workers=len(schedule.enabled))
    scheduler.start(paused=True)
    try:
        sync = sync_jobs(scheduler, schedule.jobs, settings)
    except BaseException:
        scheduler.shutdown(wait=False)
        raise
    scheduler.resume()
    log.info("scheduler started from %s: %s", schedule.path, sync.summary() or "no jobs")
    for job in scheduler.get_jobs():
        log.info("  %-16s next run %s", job.id, job.next_run_time)
    return scheduler, sync


def serve(schedule: Schedule, settings: Settings) -> None:
    """Run the schedule until SIGTERM or SIGINT; running jobs are let finish."""
    stop = threading.Event()

    def _stop(signum: int, _: Any) -> None:
        log.info("%s received: stopping after the running jobs", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    scheduler, _ = start(schedule, settings)
    try:
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(1.0):
            pass
    finally:
        scheduler.shutdown(wait=True)
        log.info("scheduler stopped")


def next_runs(settings: Settings) -> dict[str, datetime | None]:
    """Each stored job's next run time (None: paused), read through a paused scheduler."""
    scheduler = new_scheduler(settings, workers=1)
    scheduler.start(paused=True)
    try:
        return {job.id: job.next_run_time for job in scheduler.get_jobs()}
    finally:
        scheduler.shutdown(wait=False)
