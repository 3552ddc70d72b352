"""The system-health page: headline figures, the last materialisation per view, the
scheduled jobs with their heartbeats, and deliveries that failed or were escalated."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from admin_app.logic.monitoring import stamp


@dataclass(frozen=True)
class Card:
    label: str
    value: str
    colour: str  # a Bootstrap colour: success, warning, danger, secondary


def scorer_cards(scorer: Any, scorer_error: str | None, configured: bool) -> list[Card]:
    """API latency and error rate from monitoring.health.ScorerHealth."""
    if not configured:
        unset = "not watched: set COLLECTWISE_MONITORING__SCORER_METRICS_URL"
        return [Card("scorer", unset, "secondary")]
    if scorer is None:
        return [Card("scorer", f"unreachable: {scorer_error or 'no answer'}", "danger")]
    routes = scorer.routes
    p99 = None
    if not routes.empty and routes["p99_ms"].notna().any():
        p99 = float(routes["p99_ms"].max())
    rate = scorer.error_rate
    return [
        Card("requests", f"{scorer.requests:,.0f}", "secondary"),
        Card("p99 latency", "n/a" if p99 is None else f"{p99:.1f} ms", "secondary"),
        Card(
            "error rate",
            "n/a" if rate is None else f"{rate:.2%}",
            "secondary" if rate is None else ("danger" if rate > 0.01 else "success"),
        ),
    ]


def store_card(healthy: bool, error: str | None) -> Card:
    if healthy:
        return Card("online store", "answering", "success")
    return Card("online store", f"down: {error or 'no answer'}", "danger")


def materialisation_rows(
    views: Iterable[tuple[str, Sequence[tuple[datetime, datetime]]]],
) -> list[dict[str, Any]]:
    """Per feature view: the end of its latest materialised interval and how many there were."""
    rows = []
    for name, intervals in views:
        latest = max((end for _, end in intervals), default=None)
        rows.append(
            {
                "view": name,
                "last_materialised_up_to": stamp(latest) if latest else "never",
                "intervals": len(intervals),
            }
        )
    return sorted(rows, key=lambda r: r["view"])


def scheduled_rows(statuses: Iterable[Any]) -> list[dict[str, Any]]:
    """The scheduled jobs (monitoring.scheduler.status.JobStatus): last run, last heartbeat,
    when the next beat is due and whether it is overdue; overdue ones first."""
    rows = [
        {
            "job": s.job,
            "cron": s.cron,
            "last_run": stamp(s.last_run_at) if s.last_run_at else "never",
            "last_status": s.last_status or "",
            "last_heartbeat": stamp(s.last_beat_at) if s.last_beat_at else "never",
            "beat_due_by": stamp(s.due_by),
            "overdue": "OVERDUE" if s.overdue else "",
            "message": s.last_message or "",
        }
        for s in statuses
    ]
    return sorted(rows, key=lambda r: (not r["overdue"], r["job"]))


def scheduled_card(statuses: Sequence[Any]) -> Card:
    overdue = [s.job for s in statuses if s.overdue]
    if not statuses:
        return Card("scheduled jobs", "none: start `collectwise scheduler run`", "secondary")
    if overdue:
        return Card("scheduled jobs", f"{len(overdue)} overdue: {', '.join(overdue)}", "danger")
    return Card("scheduled jobs", f"{len(statuses)} in time", "success")


def delivery_rows(problems: Iterable[Any]) -> list[dict[str, Any]]:
    """Failed, escalated and failed-escalation deliveries (monitoring.scheduler.status.
    DeliveryProblem), newest first as read."""
    return [
        {
            "at": stamp(p.at),
            "alert": p.alert_id,
            "rule": p.rule,
            "what": p.action.replace("_", " "),
            "note": p.note or "",
        }
        for p in problems
    ]


def scheduled_problems(statuses: Iterable[Any]) -> list[str]:
    return [f"scheduled job {s.job} missed its heartbeat" for s in statuses if s.overdue]
