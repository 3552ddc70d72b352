"""How the scheduled jobs are doing: last run, last heartbeat, when the next beat is due and
whether it is overdue; and the alerts whose delivery failed or was escalated. Read from the
monitoring database alone, so the console needs no schedule file; `collectwise scheduler
list` adds the schedule and the job store's next run times."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitoring.delivery import DELIVERY_PROBLEMS
from monitoring.monitor_db import AlertEvent, Heartbeat, MonitoringStore, PipelineRun
from monitoring.scheduler.runner import stage_of


@dataclass(frozen=True)
class JobStatus:
    job: str
    cron: str
    last_run_at: datetime | None
    last_status: str | None
    last_message: str | None
    last_beat_at: datetime | None
    due_by: datetime
    overdue: bool


@dataclass(frozen=True)
class DeliveryProblem:
    at: datetime
    alert_id: int
    rule: str
    action: str
    note: str | None


def job_statuses(
    beats: Sequence[Heartbeat],
    last_runs: Mapping[str, PipelineRun],
    now: datetime,
    grace: timedelta,
) -> list[JobStatus]:
    """One status per watched job (pure): last_runs by stage, newest run each."""
    statuses = []
    for beat in beats:
        run = last_runs.get(stage_of(beat.job))
        statuses.append(
            JobStatus(
                job=beat.job,
                cron=beat.cron,
                last_run_at=run.started_at if run else None,
                last_status=run.status if run else None,
                last_message=run.message if run else None,
                last_beat_at=beat.last_beat_at,
                due_by=beat.deadline(grace),
                overdue=beat.overdue_seconds(now, grace) > 0,
            )
        )
    return statuses


def read_job_statuses(store: MonitoringStore, grace: timedelta, now: datetime) -> list[JobStatus]:
    beats = store.list_heartbeats(active_only=True)
    runs = {stage_of(b.job): store.list_runs(stage_of(b.job), limit=1) for b in beats}
    last = {stage: found[0] for stage, found in runs.items() if found}
    return job_statuses(beats, last, now, grace)


def delivery_problems(
    events: Sequence[tuple[AlertEvent, str]],
) -> list[DeliveryProblem]:
    return [DeliveryProblem(e.at, e.alert_id, rule, e.action, e.note) for e, rule in events]


def read_delivery_problems(store: MonitoringStore, limit: int = 20) -> list[DeliveryProblem]:
    """The newest failed, escalated or failed-escalation deliveries, newest first."""
    return delivery_problems(store.recent_events(DELIVERY_PROBLEMS, limit))
