"""The jobs a schedule may name, each the function behind its `collectwise` command.

The scheduler calls these in its own process (not the CLI in a subprocess): materialize is
`collectwise materialize`'s code, drift / performance / skew / fairness / serving-health are
the `collectwise monitor ...` commands' functions themselves, so a scheduled run and a typed one
cannot drift apart. An entry's arguments are the function's keyword parameters, checked
against its signature when the schedule loads. Each job may return one line saying what it
did ("skipped: ..."), kept on its pipeline run.

This module is the composition root's: it may name jobs of every layer; the monitoring
package only receives them (monitoring.scheduler.schedule.JobKind).
"""

from __future__ import annotations

import logging
from pathlib import Path

from collectwise import monitor_cli
from collectwise.settings import get_settings
from monitoring.scheduler.schedule import JobKind, Schedule, load_schedule

log = logging.getLogger("collectwise.scheduler")


def materialize(features: Path | None = None, only_new: bool = True) -> str:
    """Load the newest feature snapshot into the online store (`collectwise materialize`);
    with only_new, skip when the store already holds it whole."""
    from ingestion.feast_store import materialize_newest  # noqa: PLC0415

    loaded = materialize_newest(get_settings(), features, only_new=only_new)
    if loaded is None:
        return "skipped: the online store already holds the newest snapshot"
    return f"loaded {loaded[0]:%Y-%m-%d} to {loaded[1]:%Y-%m-%d %H:%M:%S}"


def watchdog() -> str:
    """The dead man's switch: alert on scheduled jobs that missed their window."""
    from monitoring.scheduler.watchdog import check  # noqa: PLC0415

    settings = get_settings()
    opened = check(load().jobs, settings)
    return f"{len(opened)} new alert(s)" if opened else "every scheduled job in time"


def retrain() -> str:
    """Retrain for live alerts that COLLECTWISE_MONITORING__RETRAIN_ON names and that never
    had a retrain request; registers a challenger, never promotes."""
    from monitoring.monitor_db import MonitoringStore  # noqa: PLC0415
    from monitoring.retrain import retrain_pending  # noqa: PLC0415

    settings = get_settings()
    if not settings.monitoring.retrain_on:
        return "skipped: COLLECTWISE_MONITORING__RETRAIN_ON is empty (retraining not allowed)"
    store = MonitoringStore(settings.monitoring.database_url)
    try:
        request = retrain_pending(store, settings.monitoring, settings.mlflow)
    finally:
        store.dispose()
    if request is None:
        return "no alert waits for retraining"
    return f"retrain request {request.id} {request.status}"


KINDS = (
    JobKind("materialize", materialize, "load the newest feature snapshot into the online store"),
    JobKind("drift", monitor_cli.drift, "feature and score drift of the served window"),
    JobKind("performance", monitor_cli.performance, "live performance on matured outcomes"),
    JobKind("skew", monitor_cli.skew, "online/offline skew of logged vectors"),
    JobKind("fairness", monitor_cli.fairness, "disparate impact on recent scores"),
    JobKind(
        "serving-health",
        monitor_cli.serving_health,
        "the scorer's error rate, latency and memory from its /metrics",
    ),
    JobKind(
        "probation",
        monitor_cli.probation,
        "judge a newly promoted champion; roll it back when it fails",
    ),
    JobKind("watchdog", watchdog, "alert on scheduled jobs that missed their heartbeat"),
    JobKind("retrain", retrain, "retrain for alerts that retrain_on names (never promotes)"),
)


def kinds() -> dict[str, JobKind]:
    return {kind.name: kind for kind in KINDS}


def load(path: Path | None = None) -> Schedule:
    """The schedule file of the settings (or another), checked against these jobs."""
    settings = get_settings()
    return load_schedule(
        path or settings.scheduler.schedule_file, kinds(), settings.scheduler.timezone
    )
