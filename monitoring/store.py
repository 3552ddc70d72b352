"""The monitoring database: metric history, alert rules, alerts and their history, pipeline
runs and retraining requests. SQLAlchemy Core, so one schema runs on the embedded SQLite
default and on PostgreSQL in production (MonitoringSettings.db_url).

Tables are created when absent; the default rules of monitoring.alerts are seeded only when
the rules table is created, so rules people deleted never come back.

Times are stored in UTC (SQLite has no time zone: the UTCDateTime column type converts on the
way in and marks UTC on the way out). A naive datetime is taken to be UTC already.

At most one live (open or acknowledged) alert per condition is enforced by a partial unique
index, so two jobs finishing at once cannot open the same alert twice.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult, Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from monitoring.alerts import (
    ALERT_STATUSES,
    DEFAULT_RULES,
    LIVE_STATUSES,
    Alert,
    Firing,
    Rule,
    validate_rule,
)
from monitoring.results import JobResult

log = logging.getLogger(__name__)

RUN_STATUSES = ("running", "succeeded", "failed")
_RULE_FIELDS = ("metric", "comparison", "threshold", "window", "severity", "enabled", "description")


class RuleNotFound(LookupError):  # noqa: N818 - reads as the condition, like KeyError
    """No rule has that name."""


class DuplicateRule(ValueError):  # noqa: N818
    """A rule with that name exists already."""


class AlertNotFound(LookupError):  # noqa: N818
    """No alert has that id."""


class AlertTransitionError(ValueError):
    """The alert's status does not allow that step (e.g. acknowledging a resolved alert)."""


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the backend keeps."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # SQLite's DateTime would drop the offset anyway; drop it after converting.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

metric_points = sa.Table(
    "metric_points",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(64), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    # Null when the job could not compute it (NaN): kept so the gap shows on a trend.
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("window_start", UTCDateTime, nullable=True),
    sa.Column("window_end", UTCDateTime, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Index("ix_metric_points_name_end", "name", "window_end"),
)

alert_rules = sa.Table(
    "alert_rules",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("metric", sa.String(255), nullable=False),
    sa.Column("comparison", sa.String(2), nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("window", sa.String(16), nullable=True),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("updated_by", sa.String(100), nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rule_id", sa.Integer, sa.ForeignKey("alert_rules.id"), nullable=True),
    # Kept beside rule_id so an alert still names its rule after the rule is deleted.
    sa.Column("rule_name", sa.String(100), nullable=False),
    sa.Column("condition_key", sa.String(400), nullable=False),
    sa.Column("job", sa.String(64), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("metric", sa.String(255), nullable=False),
    sa.Column("comparison", sa.String(2), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("occurrences", sa.Integer, nullable=False),
    sa.Column("acknowledged_by", sa.String(100), nullable=True),
    sa.Column("acknowledged_at", UTCDateTime, nullable=True),
    sa.Column("resolved_by", sa.String(100), nullable=True),
    sa.Column("resolved_at", UTCDateTime, nullable=True),
    sa.Column("resolution_note", sa.Text, nullable=True),
    sa.Index("ix_alerts_status", "status"),
)
sa.Index(
    "uq_alerts_live_condition",
    alerts.c.condition_key,
    unique=True,
    sqlite_where=alerts.c.status != "resolved",
    postgresql_where=alerts.c.status != "resolved",
)

alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id"), nullable=False, index=True),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("who", sa.String(100), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("note", sa.Text, nullable=True),
)

pipeline_runs = sa.Table(
    "pipeline_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("stage", sa.String(100), nullable=False, index=True),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("rows", sa.Integer, nullable=True),
    sa.Column("message", sa.Text, nullable=True),
)

retrain_requests = sa.Table(
    "retrain_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id"), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("command", sa.Text, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("registered_version", sa.Integer, nullable=True),
    sa.Column("log_tail", sa.Text, nullable=True),
)


@dataclass(frozen=True)
class AlertEvent:
    alert_id: int
    action: str
    who: str
    at: datetime
    note: str | None


@dataclass(frozen=True)
class PipelineRun:
    id: int
    stage: str
    started_at: datetime
    ended_at: datetime | None
    status: str
    rows: int | None
    message: str | None


@dataclass(frozen=True)
class RetrainRequest:
    id: int
    alert_id: int | None
    reason: str
    command: list[str]
    started_at: datetime
    ended_at: datetime | None
    status: str
    exit_code: int | None
    registered_version: int | None
    log_tail: str | None


@dataclass
class RunTracker:
    """Yielded by track_run: set rows / message before the block ends."""

    id: int
    rows: int | None = None
    message: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _required(field: str, value: str | None) -> str:
    if value is None or not value.strip():
        raise ValueError(f"'{field}' is required and may not be blank")
    return value.strip()


def _finite_or_none(value: float) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _inserted_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    if key is None:  # pragma: no cover - every table has an autoincrement key
        raise RuntimeError("the database returned no primary key")
    return int(key[0])


def _rule(row: RowMapping) -> Rule:
    return Rule(
        name=row["name"],
        metric=row["metric"],
        comparison=row["comparison"],
        threshold=row["threshold"],
        severity=row["severity"],
        window=row["window"],
        enabled=bool(row["enabled"]),
        description=row["description"],
        created_by=row["created_by"],
        updated_by=row["updated_by"],
        id=row["id"],
        updated_at=row["updated_at"],
    )


def _alert(row: RowMapping) -> Alert:
    return Alert(**{k: row[k] for k in Alert.__dataclass_fields__})


def _ensure_sqlite_dir(url: str) -> None:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)


class MonitoringStore:
    """Small methods over the monitoring tables; one engine per store (dispose() to close)."""

    def __init__(self, url: str, *, seed_defaults: bool = True) -> None:
        _ensure_sqlite_dir(url)
        is_sqlite = sa.engine.make_url(url).get_backend_name() == "sqlite"
        # SQLite: wait for a concurrent writer (another job) instead of failing at once.
        connect_args: dict[str, Any] = {"timeout": 30} if is_sqlite else {}
        self.engine: Engine = sa.create_engine(url, connect_args=connect_args)
        self.seeded = self._create_schema(seed_defaults)

    def _create_schema(self, seed_defaults: bool) -> bool:
        fresh = not sa.inspect(self.engine).has_table(alert_rules.name)
        metadata.create_all(self.engine)
        if not (fresh and seed_defaults):
            return False
        for rule in DEFAULT_RULES:
            try:
                self.add_rule(rule)
            except DuplicateRule:  # a concurrent first use seeded it already
                log.debug("default rule %r already present", rule.name)
        log.info("monitoring store created with %d default rules", len(DEFAULT_RULES))
        return True

    def dispose(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ metrics

    def record_metrics(self, result: JobResult, at: datetime | None = None) -> int:
        """Store every metric of a job run (one row each); returns the number written."""
        recorded = at or _now()
        rows = [
            {
                "job": result.job,
                "name": name,
                "value": _finite_or_none(value),
                "window_start": result.window_start,
                "window_end": result.window_end,
                "recorded_at": recorded,
                "labels": dict(result.labels),
            }
            for name, value in result.metrics.items()
        ]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(metric_points.insert(), rows)
        return len(rows)

    def metric_series(
        self,
        name: str,
        since: datetime | None = None,
        *,
        limit: int | None = None,
        job: str | None = None,
    ) -> pd.DataFrame:
        """Points of one metric, oldest first (the newest `limit` when given)."""
        query = sa.select(metric_points).where(metric_points.c.name == name)
        if since is not None:
            query = query.where(metric_points.c.window_end >= since)
        if job is not None:
            query = query.where(metric_points.c.job == job)
        query = query.order_by(metric_points.c.window_end.desc(), metric_points.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        columns = [c.name for c in metric_points.columns if c.name != "id"]
        frame = pd.DataFrame(rows[::-1], columns=["id", *columns])
        return frame.drop(columns="id").reset_index(drop=True)

    def metric_names(self) -> list[str]:
        query = sa.select(metric_points.c.name).distinct().order_by(metric_points.c.name)
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    # ------------------------------------------------------------------ rules

    def list_rules(self, *, enabled_only: bool = False) -> list[Rule]:
        query = sa.select(alert_rules).order_by(alert_rules.c.name)
        if enabled_only:
            query = query.where(alert_rules.c.enabled.is_(True))
        with self.engine.connect() as conn:
            return [_rule(r) for r in conn.execute(query).mappings()]

    def get_rule(self, name: str) -> Rule:
        query = sa.select(alert_rules).where(alert_rules.c.name == name)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise RuleNotFound(f"no rule named {name!r}")
        return _rule(row)

    def add_rule(self, rule: Rule) -> Rule:
        """Validate and insert; ValueError names the bad field (or a duplicate name)."""
        rule = validate_rule(rule)
        values = {f: getattr(rule, f) for f in ("name", "created_by", *_RULE_FIELDS)}
        try:
            with self.engine.begin() as conn:
                conn.execute(alert_rules.insert().values(**values, updated_at=_now()))
        except IntegrityError as exc:
            raise DuplicateRule(f"rule field 'name': {rule.name!r} already exists") from exc
        return self.get_rule(rule.name)

    def update_rule(self, name: str, who: str, /, **changes: Any) -> Rule:
        """Change some of metric, comparison, threshold, window, severity, enabled,
        description; `who` is recorded as the rule's updated_by."""
        unknown = sorted(set(changes) - set(_RULE_FIELDS))
        if unknown:
            raise ValueError(f"rule field '{unknown[0]}': cannot be changed (or does not exist)")
        who = _required("who", who)
        updated = validate_rule(replace(self.get_rule(name), **changes, updated_by=who))
        values = {f: getattr(updated, f) for f in ("updated_by", *_RULE_FIELDS)}
        with self.engine.begin() as conn:
            conn.execute(
                alert_rules.update()
                .where(alert_rules.c.name == updated.name)
                .values(**values, updated_at=_now())
            )
        log.info("rule %r updated by %s: %s", name, who, changes)
        return self.get_rule(name)

    def enable_rule(self, name: str, who: str) -> Rule:
        return self.update_rule(name, who, enabled=True)

    def disable_rule(self, name: str, who: str) -> Rule:
        """Stop evaluating a rule; its live alerts stay for a person to resolve."""
        return self.update_rule(name, who, enabled=False)

    def delete_rule(self, name: str, who: str) -> None:
        """Delete a rule; its live alerts are resolved by `who` and keep the rule's name."""
        rule = self.get_rule(name)
        for alert in self.live_alerts().values():
            if alert.rule_id == rule.id:
                self.resolve(alert.id, who, f"rule {name!r} deleted")
        with self.engine.begin() as conn:
            conn.execute(alerts.update().where(alerts.c.rule_id == rule.id).values(rule_id=None))
            conn.execute(alert_rules.delete().where(alert_rules.c.id == rule.id))
        log.info("rule %r deleted by %s", name, who)

    # ------------------------------------------------------------------ alerts

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
                raise ValueError(f"'status' must be one of {list(ALERT_STATUSES)}, got {status!r}")
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
            "value": _finite_or_none(firing.value),
            "threshold": rule.threshold,
            "opened_at": at,
            "last_seen_at": at,
            "occurrences": 1,
        }
        try:
            with self.engine.begin() as conn:
                alert_id = _inserted_id(conn.execute(alerts.insert().values(**values)))
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
                    value=_finite_or_none(value),
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
        who = _required("who", who)
        at = at or _now()
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

    # ------------------------------------------------------------------ history

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
            self._event(conn, alert_id, action, who, _now(), note)

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

    # ------------------------------------------------------------------ pipeline runs

    def start_run(self, stage: str, at: datetime | None = None) -> int:
        stage = _required("stage", stage)
        with self.engine.begin() as conn:
            result = conn.execute(
                pipeline_runs.insert().values(
                    stage=stage, started_at=at or _now(), status="running"
                )
            )
            return _inserted_id(result)

    def finish_run(
        self,
        run_id: int,
        status: str,
        rows: int | None = None,
        message: str | None = None,
        at: datetime | None = None,
    ) -> None:
        if status not in RUN_STATUSES[1:]:
            raise ValueError(f"'status' must be one of {list(RUN_STATUSES[1:])}, got {status!r}")
        with self.engine.begin() as conn:
            done = conn.execute(
                pipeline_runs.update()
                .where(pipeline_runs.c.id == run_id)
                .values(status=status, rows=rows, message=message, ended_at=at or _now())
            )
        if done.rowcount == 0:
            raise LookupError(f"no pipeline run with id {run_id}")

    @contextmanager
    def track_run(self, stage: str) -> Iterator[RunTracker]:
        """Record a stage run; a raised exception is recorded as the failure and re-raised."""
        tracker = RunTracker(self.start_run(stage))
        try:
            yield tracker
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}"
            self.finish_run(tracker.id, "failed", tracker.rows, message[:2000])
            raise
        self.finish_run(tracker.id, "succeeded", tracker.rows, tracker.message)

    def list_runs(self, stage: str | None = None, limit: int = 50) -> list[PipelineRun]:
        """Newest first."""
        query = sa.select(pipeline_runs).order_by(
            pipeline_runs.c.started_at.desc(), pipeline_runs.c.id.desc()
        )
        if stage is not None:
            query = query.where(pipeline_runs.c.stage == stage)
        with self.engine.connect() as conn:
            return [
                PipelineRun(**{k: r[k] for k in PipelineRun.__dataclass_fields__})
                for r in conn.execute(query.limit(limit)).mappings()
            ]

    # ------------------------------------------------------------------ retraining

    def start_retrain(self, alert_id: int | None, reason: str, command: Sequence[str]) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                retrain_requests.insert().values(
                    alert_id=alert_id,
                    reason=reason,
                    command=json.dumps(list(command)),
                    started_at=_now(),
                    status="running",
                )
            )
            return _inserted_id(result)

    def finish_retrain(self, request_id: int, **values: Any) -> None:
        """Set status, exit_code, registered_version, log_tail; ended_at is now."""
        allowed = {"status", "exit_code", "registered_version", "log_tail"}
        if set(values) - allowed:
            raise ValueError(f"unknown retrain fields: {sorted(set(values) - allowed)}")
        with self.engine.begin() as conn:
            conn.execute(
                retrain_requests.update()
                .where(retrain_requests.c.id == request_id)
                .values(**values, ended_at=_now())
            )

    def list_retrains(self, limit: int = 50, status: str | None = None) -> list[RetrainRequest]:
        """Newest first."""
        query = sa.select(retrain_requests).order_by(retrain_requests.c.id.desc())
        if status is not None:
            query = query.where(retrain_requests.c.status == status)
        with self.engine.connect() as conn:
            return [_retrain(r) for r in conn.execute(query.limit(limit)).mappings()]

    def get_retrain(self, request_id: int) -> RetrainRequest:
        query = sa.select(retrain_requests).where(retrain_requests.c.id == request_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise LookupError(f"no retrain request with id {request_id}")
        return _retrain(row)


def _retrain(row: RowMapping) -> RetrainRequest:
    values = {k: row[k] for k in RetrainRequest.__dataclass_fields__}
    values["command"] = json.loads(values["command"])
    return RetrainRequest(**values)
