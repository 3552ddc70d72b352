"""The monitoring tables, in SQLAlchemy Core so one schema runs on SQLite and PostgreSQL.

Times are stored in UTC (SQLite has no time zone: the UTCDateTime column type converts on the
way in and marks UTC on the way out). A naive datetime is taken to be UTC already.

At most one live (open or acknowledged) alert per condition is enforced by a partial unique
index, so two jobs finishing at once cannot open the same alert twice.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa


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

# One row per scheduled job: the interval its cron promises and when it last beat, for the
# watchdog (a dead man's switch) and the console's health page.
heartbeats = sa.Table(
    "heartbeats",
    metadata,
    sa.Column("job", sa.String(100), primary_key=True),
    sa.Column("cron", sa.String(100), nullable=False),
    sa.Column("interval_seconds", sa.Float, nullable=False),
    # False once the job left the schedule (or was disabled): no longer watched.
    sa.Column("active", sa.Boolean, nullable=False),
    # When the job was (re)scheduled as it is now: the watch starts here until it beats.
    sa.Column("registered_at", UTCDateTime, nullable=False),
    sa.Column("last_beat_at", UTCDateTime, nullable=True),
    sa.Column("last_run_id", sa.Integer, nullable=True),
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
