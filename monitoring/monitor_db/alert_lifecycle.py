"""Alerts and their lifecycle (open, bump, acknowledge, resolve) with the history of events
each alert collects (status changes, deliveries, retraining)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from collectwise.errors import ConflictError, NotFoundError
from monitoring.alerts import ALERT_STATUSES, LIVE_STATUSES, Alert, Firing
from monitoring.monitor_db.base import (
    StoreBase,
    StoreInputError,
    finite_or_none,
    inserted_id,
    required,
    utc_now,
)
from monitoring.monitor_db.schema import alert_events, alerts

log = logging.getLogger(__name__)


class AlertNotFound(NotFoundError, LookupError):  # noqa: N818
    """No alert has that id."""


class AlertTransitionError(ConflictError, ValueError):
    """The alert's status does not allow that step (e.g. acknowledging a resolved alert)."""


@dataclass(frozen=True)
class AlertEvent:
    alert_id: int
    action: str
    who: str
    at: datetime
    note: str | None


class AlertLifecycle(StoreBase):
    """Read and write the alerts and alert_events tables."""

    def get_alert(self, alert_id: int) -> Alert:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).mappings().first()
        if row is None:
            raise AlertNotFound(f"no alert with id {alert_id}")
        return _alert(row)

    def list_alerts(self, status: str | None = None, limit: int = 100) -> list[Alert]:
        """Newest first; status one of open, acknowledged, resolved (None = all)."""
        query = sa.select(alerts).order_by(alerts.c.opened_at.desc(), alerts.c.id.desc())
        if status is not None:
            if status not in ALERT_STATUSES:
                raise StoreInputError(
                    f"'status' must be one of {list(ALERT_STATUSES)}, got {status!r}"
                )
            query = query.where(alerts.c.status == status)
        with self.engine.connect() as conn:
            return [_alert(r) for r in conn.execute(query.limit(limit)).mappings()]

    def open_alerts(self) -> list[Alert]:
        """Alerts not yet resolved (open and acknowledged), newest first."""
        query = (
            sa.select(alerts)
            .where(alerts.c.status.in_(LIVE_STATUSES))
            .order_by(alerts.c.opened_at.desc(), alerts.c.id.desc())
        )
        with self.engine.connect() as conn:
            return [_alert(r) for r in conn.execute(query).mappings()]

    def live_alerts(self) -> dict[str, Alert]:
        """The open or acknowledged alert of each live condition, by condition key."""
        return {a.condition_key: a for a in self.open_alerts()}

    def open_alert(self, firing: Firing, at: datetime, *, job: str | None = None) -> Alert | None:
        """A new open alert, or None when a concurrent job opened this condition first."""
        rule = firing.rule
        values = {
            "rule_id": rule.id,
            "rule_name": rule.name,
            "condition_key": firing.condition_key,
            "job": job,
            "status": "open",
            "severity": rule.severity,
            "metric": firing.metric,
            "comparison": rule.comparison,
            "value": finite_or_none(firing.value),
            "threshold": rule.threshold,
            "opened_at": at,
            "last_seen_at": at,
            "occurrences": 1,
        }
        try:
            with self.engine.begin() as conn:
                alert_id = inserted_id(conn.execute(alerts.insert().values(**values)))
                self._event(conn, alert_id, "opened", "system", at, None)
        except IntegrityError:
            log.info("%s was opened concurrently; not opening it twice", firing.condition_key)
            return None
        return self.get_alert(alert_id)

    def touch_alert(self, alert_id: int, value: float, at: datetime) -> None:
        """The condition still holds: count it, remember when and the latest value."""
        with self.engine.begin() as conn:
            conn.execute(
                alerts.update()
                .where(alerts.c.id == alert_id)
                .values(
                    last_seen_at=at,
                    occurrences=alerts.c.occurrences + 1,
                    value=finite_or_none(value),
                )
            )

    def acknowledge(
        self, alert_id: int, who: str, note: str | None = None, *, at: datetime | None = None
    ) -> Alert:
        """open -> acknowledged: someone is on it; the alert stays live (no re-notification)."""
        return self._transition(alert_id, "acknowledged", who, note, at)

    def resolve(
        self, alert_id: int, who: str, note: str | None = None, *, at: datetime | None = None
    ) -> Alert:
        """open or acknowledged -> resolved."""
        return self._transition(alert_id, "resolved", who, note, at)

    def _transition(
        self, alert_id: int, target: str, who: str, note: str | None, at: datetime | None
    ) -> Alert:
        who = required("who", who)
        at = at or utc_now()
        allowed = ("open",) if target == "acknowledged" else LIVE_STATUSES
        prefix = "acknowledged" if target == "acknowledged" else "resolved"
        values: dict[str, Any] = {"status": target, f"{prefix}_by": who, f"{prefix}_at": at}
        if target == "resolved":
            values["resolution_note"] = note
        with self.engine.begin() as conn:
            # The status check is in the UPDATE itself, so two people cannot both win.
            done = conn.execute(
                alerts.update()
                .where(alerts.c.id == alert_id, alerts.c.status.in_(allowed))
                .values(**values)
            )
            if done.rowcount == 0:
                raise self._transition_error(conn, alert_id, target, allowed)
            self._event(conn, alert_id, target, who, at, note)
        log.info("alert %s %s by %s", alert_id, target, who)
        return self.get_alert(alert_id)

    @staticmethod
    def _transition_error(
        conn: Connection, alert_id: int, target: str, allowed: Sequence[str]
    ) -> Exception:
        query = sa.select(alerts.c.status).where(alerts.c.id == alert_id)
        current = conn.execute(query).scalar_one_or_none()
        if current is None:
            return AlertNotFound(f"no alert with id {alert_id}")
        verb = "acknowledge" if target == "acknowledged" else "resolve"
        return AlertTransitionError(
            f"alert {alert_id} is {current}: cannot {verb} it (only {' or '.join(allowed)} "
            f"alerts can be {target})"
        )

    @staticmethod
    def _event(
        conn: Connection, alert_id: int, action: str, who: str, at: datetime, note: str | None
    ) -> None:
        conn.execute(
            alert_events.insert().values(
                alert_id=alert_id, action=action, who=who, at=at, note=note
            )
        )

    def record_event(
        self, alert_id: int, action: str, who: str = "system", note: str | None = None
    ) -> None:
        """Add to an alert's history (deliveries, retraining); not a status change."""
        with self.engine.begin() as conn:
            self._event(conn, alert_id, action, who, utc_now(), note)

    def alert_events(self, alert_id: int) -> list[AlertEvent]:
        query = (
            sa.select(alert_events)
            .where(alert_events.c.alert_id == alert_id)
            .order_by(alert_events.c.at, alert_events.c.id)
        )
        with self.engine.connect() as conn:
            return [
                AlertEvent(r["alert_id"], r["action"], r["who"], r["at"], r["note"])
                for r in conn.execute(query).mappings()
            ]

    def recent_events(
        self, actions: Sequence[str], limit: int = 50
    ) -> list[tuple[AlertEvent, str]]:
        """The newest events of these kinds (e.g. delivery_failed, escalated) across every
        alert, each with its alert's rule name."""
        query = (
            sa.select(alert_events, alerts.c.rule_name)
            .join(alerts, alerts.c.id == alert_events.c.alert_id)
            .where(alert_events.c.action.in_(list(actions)))
            .order_by(alert_events.c.at.desc(), alert_events.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings()
            return [
                (
                    AlertEvent(r["alert_id"], r["action"], r["who"], r["at"], r["note"]),
                    r["rule_name"],
                )
                for r in rows
            ]


def _alert(row: RowMapping) -> Alert:
    return Alert(**{k: row[k] for k in Alert.__dataclass_fields__})
