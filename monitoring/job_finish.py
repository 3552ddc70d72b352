"""The end of every monitoring job: store its metrics, evaluate the rules, alert, retrain.

`finish_job` is what `collectwise monitor ...` calls after a drift, performance, skew or
fairness job has computed its JobResult. Only the rules that name one of this job's metrics
are evaluated, so a drift run can neither open nor resolve a performance alert.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from collectwise.settings import MonitoringSettings, get_settings
from monitoring.alerts import Alert, Rule, apply_firings, evaluate, matching_rules, parse_window
from monitoring.delivery import deliver
from monitoring.job_result import JobResult
from monitoring.monitor_db import MonitoringStore
from monitoring.retrain import trigger_retrain

if TYPE_CHECKING:
    from collectwise.settings import MlflowSettings

log = logging.getLogger(__name__)

History = dict[str, list[tuple[datetime, float]]]


def metric_history(store: MonitoringStore, rules: Iterable[Rule], result: JobResult) -> History:
    """Stored points (this run's included) of each metric a windowed rule looks at: enough for
    the widest span and the most points any of those rules needs."""
    spans: dict[str, timedelta] = {}
    points: dict[str, int] = {}
    for rule in rules:
        window = parse_window(rule.window)
        if window is None:
            continue
        for name in filter(rule.matches, result.metrics):
            if window.span is not None:
                spans[name] = max(spans.get(name, window.span), window.span)
            if window.points is not None:
                points[name] = max(points.get(name, window.points), window.points)
    return {
        name: _series(store, name, result.window_end, spans.get(name), points.get(name))
        for name in spans.keys() | points.keys()
    }


def _series(
    store: MonitoringStore, name: str, end: datetime, span: timedelta | None, points: int | None
) -> list[tuple[datetime, float]]:
    candidates = []
    if span is not None:
        candidates.append(store.metric_series(name, end - span))
    if points is not None:
        candidates.append(store.metric_series(name, limit=points))
    # Both are suffixes of the same time-ordered series, so the longer one holds the other.
    frame = max(candidates, key=len)
    return [
        (stamp, float(value))
        for stamp, value in zip(frame["window_end"], frame["value"], strict=True)
        if pd.notna(value) and math.isfinite(value)
    ]


def evaluate_job(
    store: MonitoringStore, result: JobResult, now: datetime
) -> tuple[list[Alert], int]:
    """Apply this job's rules to its metrics: (newly opened alerts, conditions firing)."""
    rules = matching_rules(store.list_rules(enabled_only=True), result.metrics)
    firings = evaluate(rules, result.metrics, metric_history(store, rules, result))
    opened = apply_firings(store, rules, firings, result.metrics, now, job=result.job)
    return opened, len(firings)


def finish_job(
    result: JobResult,
    settings: MonitoringSettings | None = None,
    *,
    store: MonitoringStore | None = None,
    now: datetime | None = None,
    training_settings: MlflowSettings | None = None,
) -> list[Alert]:
    """Record, evaluate, deliver, maybe retrain; returns the alerts this run opened.

    Delivery and retraining never raise; a store that cannot be written to does.
    """
    settings = settings or get_settings().monitoring
    own_store = store is None
    active = store or MonitoringStore(settings.database_url)
    try:
        now = now or datetime.now(UTC)
        written = active.record_metrics(result, at=now)
        opened, firing = evaluate_job(active, result, now)
        log.info(
            "%s: %d metrics recorded, %d condition(s) firing, %d new alert(s)",
            result.job,
            written,
            firing,
            len(opened),
        )
        deliver(opened, settings, active)
        if settings.retrain_on and opened:
            trigger_retrain(active, opened, settings, training_settings)
        return opened
    finally:
        if own_store:
            active.dispose()
