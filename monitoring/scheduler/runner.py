"""One run of one scheduled job: refuse an overlap, record the run, beat on success.

The same path serves the scheduler (APScheduler calls `run_scheduled` in a worker thread)
and an operator or a Kubernetes CronJob (`collectwise scheduler run-once JOB` calls
`run_job`). Each run is a pipeline_runs row with stage "scheduled <name>", written by
monitoring.pipeline_runs.recorded_run as the console-script stages write theirs; a run that
succeeds beats the job's heartbeat.

Overlap: inside one scheduler APScheduler refuses a second instance (max_instances=1);
across processes (a run-once beside the scheduler, a CronJob beside a manual run) a run
still recorded as running, and younger than the job's interval, refuses the new one. An
older one is taken for a run that died with its process.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.util import ref_to_obj

from collectwise.errors import CollectwiseError, ConflictError
from collectwise.settings import get_settings
from monitoring.monitor_db import MonitoringStore, RunTracker, Watch
from monitoring.pipeline_runs import recorded_run
from monitoring.scheduler.schedule import JobKind, check_cron, cron_interval

if TYPE_CHECKING:
    from monitoring.scheduler.schedule import ScheduledJob

log = logging.getLogger(__name__)

STAGE_PREFIX = "scheduled "


class AlreadyRunningError(ConflictError):
    """Another run of the job is still going; the message names it."""


def stage_of(name: str) -> str:
    """The pipeline_runs stage of a scheduled job."""
    return STAGE_PREFIX + name


def watch_of(name: str, cron: str, timezone: str) -> Watch:
    return Watch(name, cron, cron_interval(check_cron(cron, timezone)).total_seconds())


def run_scheduled(name: str, action: str, cron: str, arguments: Mapping[str, Any]) -> None:
    """APScheduler's entry point, stored by reference in the job store with plain values.

    A domain error (bad input, a dependency down) is one log line: it is already recorded
    on the run. Anything else propagates, so APScheduler logs it with its traceback.
    """
    callable_action = ref_to_obj(action)
    kind = JobKind(name, callable_action, "")
    try:
        run_job(name, kind, cron, arguments)
    except CollectwiseError as exc:
        log.error("scheduled job %s: %s: %s", name, type(exc).__name__, exc)


def run_scheduled_job(job: ScheduledJob, store: MonitoringStore | None = None) -> RunTracker:
    """Run a job of the schedule now (`collectwise scheduler run-once`)."""
    return run_job(job.name, job.kind, job.cron, job.arguments, store)


def run_job(
    name: str,
    kind: JobKind,
    cron: str,
    arguments: Mapping[str, Any],
    store: MonitoringStore | None = None,
) -> RunTracker:
    """Record the run, call the job's action with its checked arguments, beat on success.
    Raises what the action raised (after recording it), or AlreadyRunningError."""
    settings = get_settings()
    own = store is None
    active = store or MonitoringStore(settings.monitoring.database_url)
    try:
        watch = watch_of(name, cron, settings.scheduler.timezone)
        _refuse_overlap(active, name, timedelta(seconds=watch.interval_seconds))
        values = kind.arguments(arguments)
        log.info("scheduled job %s starts (%s)", name, _shown(values))
        with recorded_run(stage_of(name), active) as tracker:
            tracker.message = _message(kind.action(**values))
        _beat(active, watch, tracker)
        log.info(
            "scheduled job %s succeeded%s", name, f": {tracker.message}" if tracker.message else ""
        )
        return tracker
    finally:
        if own:
            active.dispose()


def _shown(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "no arguments"


def _message(outcome: Any) -> str | None:
    # An action may say what it did in one line ("skipped: ..."); kept on the run.
    return str(outcome)[:2000] if isinstance(outcome, str) and outcome else None


def _refuse_overlap(store: MonitoringStore, name: str, interval: timedelta) -> None:
    try:
        runs = store.list_runs(stage_of(name), limit=1)
    except Exception:  # the run itself records (or fails to record) what is wrong
        log.warning("could not check for a running %s", name, exc_info=True)
        return
    if runs and runs[0].status == "running":
        age = datetime.now(UTC) - runs[0].started_at
        if age < interval:
            raise AlreadyRunningError(
                f"scheduled job {name!r} is already running (run #{runs[0].id}, started "
                f"{runs[0].started_at:%Y-%m-%d %H:%M:%S} UTC): not starting another"
            )
        log.warning(
            "run #%d of %s has been running for %s, longer than its interval: taken for dead",
            runs[0].id,
            name,
            age,
        )


def _beat(store: MonitoringStore, watch: Watch, tracker: RunTracker) -> None:
    try:
        store.beat(watch, tracker.id if tracker.id >= 0 else None)
    except Exception:  # the watchdog will notice the missing beat: that is the point
        log.error("scheduled job %s succeeded but its heartbeat was not written", watch.job,
                  exc_info=True)  # fmt: skip
