"""The health page's scheduled-jobs table, card and problems, and its table of deliveries
that failed or were escalated (admin_app.logic.health), from the statuses
monitoring.scheduler.status computes over real heartbeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from admin_app.logic import health
from monitoring.monitor_db import AlertEvent, Heartbeat, PipelineRun
from monitoring.scheduler.status import delivery_problems, job_statuses

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=15)


def _beat(job: str, interval: timedelta, last: datetime | None) -> Heartbeat:
    return Heartbeat(job, "*/5 * * * *", interval.total_seconds(), True, T0, last, None)


def _run(job: str, status: str, at: datetime, message: str | None = None) -> PipelineRun:
    return PipelineRun(1, f"scheduled {job}", at, at + timedelta(seconds=5), status, None, message)


def _statuses(now: datetime) -> list[object]:
    beats = [
        _beat("watchdog", timedelta(minutes=5), now - timedelta(minutes=3)),
        _beat("drift", timedelta(hours=6), T0 + timedelta(minutes=1)),
        _beat("fairness", timedelta(days=1), None),
    ]
    runs = {
        "scheduled watchdog": _run("watchdog", "succeeded", now - timedelta(minutes=3)),
        "scheduled drift": _run("drift", "failed", now - timedelta(hours=1), "no served rows"),
    }
    return list(job_statuses(beats, runs, now, GRACE))


def test_overdue_jobs_come_first_with_their_last_run_and_beat() -> None:
    now = T0 + timedelta(hours=7)  # drift's window (6 h + 15 min after its beat) has passed
    rows = health.scheduled_rows(_statuses(now))
    assert [(r["job"], r["overdue"]) for r in rows] == [
        ("drift", "OVERDUE"),
        ("fairness", ""),
        ("watchdog", ""),
    ]
    drift, fairness, _ = rows
    assert (drift["last_status"], drift["message"]) == ("failed", "no served rows")
    assert drift["last_heartbeat"] == "2026-03-02 12:01:00"
    assert drift["beat_due_by"] == "2026-03-02 18:16:00"
    assert (fairness["last_run"], fairness["last_heartbeat"]) == ("never", "never")
    card = health.scheduled_card(_statuses(now))
    assert (card.colour, card.value) == ("danger", "1 overdue: drift")
    assert health.scheduled_problems(_statuses(now)) == ["scheduled job drift missed its heartbeat"]


def test_all_in_time_and_none_scheduled() -> None:
    assert health.scheduled_card(_statuses(T0 + timedelta(hours=1))).colour == "success"
    assert health.scheduled_problems(_statuses(T0 + timedelta(hours=1))) == []
    assert health.scheduled_card([]).colour == "secondary"


def test_troubled_deliveries_say_what_happened() -> None:
    events = [
        (AlertEvent(7, "escalated", "system", T0, "file /x.jsonl; failed: webhook: HTTP 503"),
         "scheduled job missed"),
        (AlertEvent(7, "delivery_failed", "system", T0, "webhook hooks.example: HTTP 503"),
         "scheduled job missed"),
    ]  # fmt: skip
    rows = health.delivery_rows(delivery_problems(events))
    assert [(r["alert"], r["what"], r["rule"]) for r in rows] == [
        (7, "escalated", "scheduled job missed"),
        (7, "delivery failed", "scheduled job missed"),
    ]
    assert rows[0]["note"].endswith("HTTP 503") and rows[0]["at"] == "2026-03-02 12:00:00"
