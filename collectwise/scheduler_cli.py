"""`collectwise scheduler ...`: run the schedule file, list its jobs, run one now, generate
the Kubernetes CronJobs. Thin shells over monitoring.scheduler with the jobs of
collectwise.scheduler_jobs; a bad schedule ends in one line naming the job and the field."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from collectwise.errors import InvalidInputError
from collectwise.shell import new_app

app = new_app(
    help="The scheduler: materialization, monitoring, heartbeats and retraining on schedule.",
    no_args_is_help=True,
)
log = logging.getLogger("collectwise.scheduler")

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


@app.command()
def run() -> None:
    """Run the jobs of the schedule file until stopped (SIGTERM or Ctrl-C)."""
    from collectwise import scheduler_jobs  # noqa: PLC0415
    from collectwise.settings import get_settings  # noqa: PLC0415
    from monitoring.scheduler.engine import serve  # noqa: PLC0415

    settings = get_settings()
    serve(scheduler_jobs.load(), settings)


@app.command("run-once")
def run_once(
    job: Annotated[str, typer.Argument(help="the job's name in the schedule file")],
) -> None:
    """Run one job of the schedule now, recorded and beating as a scheduled run."""
    from collectwise import scheduler_jobs  # noqa: PLC0415
    from collectwise.settings import get_settings  # noqa: PLC0415
    from monitoring.scheduler.runner import run_scheduled_job  # noqa: PLC0415

    get_settings()
    tracker = run_scheduled_job(scheduler_jobs.load().job(job))
    typer.echo(f"{job}: succeeded" + (f": {tracker.message}" if tracker.message else ""))


def _status_rows(now: datetime) -> list[dict[str, Any]]:
    from collectwise import scheduler_jobs  # noqa: PLC0415
    from collectwise.settings import get_settings  # noqa: PLC0415
    from monitoring.monitor_db import MonitoringStore  # noqa: PLC0415
    from monitoring.scheduler.engine import next_runs  # noqa: PLC0415
    from monitoring.scheduler.status import read_job_statuses  # noqa: PLC0415

    settings = get_settings()
    schedule = scheduler_jobs.load()
    store = MonitoringStore(settings.monitoring.database_url)
    try:
        grace = timedelta(seconds=settings.scheduler.heartbeat_grace_seconds)
        statuses = {s.job: s for s in read_job_statuses(store, grace, now)}
    finally:
        store.dispose()
    upcoming = next_runs(settings)
    rows = []
    for job in schedule.jobs:
        status = statuses.get(job.name)
        rows.append(
            {
                "job": job.name,
                "runs": job.kind.name,
                "cron": job.cron,
                "enabled": job.enabled,
                "next_run": upcoming.get(job.name),
                "last_run": status.last_run_at if status else None,
                "last_status": status.last_status if status else None,
                "last_beat": status.last_beat_at if status else None,
                "overdue": bool(status and status.overdue and job.enabled),
                "arguments": job.arguments,
            }
        )
    return rows


def _when(moment: Any) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment else "-"


@app.command("list")
def list_jobs(as_json: JsonOpt = False) -> None:
    """The schedule's jobs: cron, next run (from the job store), last run, last heartbeat."""
    # Reading the job store starts and stops a paused scheduler: not news for this listing.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    rows = _status_rows(datetime.now(UTC))
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    typer.echo(
        f"{'job':<16} {'cron':<16} {'next run (UTC)':<17} {'last run':<17} {'status':<10} "
        f"{'last beat':<17} overdue"
    )
    for r in rows:
        next_run = _when(r["next_run"]) if r["enabled"] else "disabled"
        typer.echo(
            f"{r['job']:<16} {r['cron']:<16} {next_run:<17} {_when(r['last_run']):<17} "
            f"{r['last_status'] or '-':<10} {_when(r['last_beat']):<17} "
            f"{'OVERDUE' if r['overdue'] else '-'}"
        )
    if any(r["enabled"] and r["next_run"] is None for r in rows):
        typer.echo("(no next run: `collectwise scheduler run` has not registered that job yet)")


@app.command()
def k8s(
    out: Annotated[Path, typer.Option(help="the manifest file to write")] = Path(
        "deploy/kubernetes/cronjobs.yaml"
    ),
    image: Annotated[str, typer.Option(help="the Collectwise image")] = "collectwise:latest",
    namespace: Annotated[str, typer.Option(help="the Kubernetes namespace")] = "collectwise",
) -> None:
    """Write Kubernetes CronJobs (and the schedule's ConfigMap) generated from the schedule."""
    from collectwise import scheduler_jobs  # noqa: PLC0415
    from collectwise.settings import get_settings  # noqa: PLC0415
    from monitoring.scheduler.kubernetes import Target, render  # noqa: PLC0415

    settings = get_settings()
    if out.is_dir():
        raise InvalidInputError(f"--out {out} is a directory: name the manifest file")
    target = Target(
        image=image,
        namespace=namespace,
        timezone=settings.scheduler.timezone,
        misfire_grace_seconds=settings.scheduler.misfire_grace_seconds,
    )
    schedule = scheduler_jobs.load()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(schedule, target))
    log.info("wrote %d CronJob(s) from %s to %s", len(schedule.jobs), schedule.path, out)
