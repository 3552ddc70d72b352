"""The monitoring database: metric history, alert rules, alerts and their history, pipeline
runs, retraining requests and the scheduled jobs' heartbeats. SQLAlchemy Core, so one schema
runs on the embedded SQLite default and on PostgreSQL in production (MonitoringSettings.db_url).

Modules: schema (tables), base (shared errors and conversions), metric_history, rules,
alert_lifecycle (alerts and their events), run_history (pipeline runs), retrain_history
(retraining requests), heartbeats (scheduled jobs), database (MonitoringStore, composed from
the others). Callers import from here.
"""

from monitoring.monitor_db.alert_lifecycle import AlertEvent, AlertNotFound, AlertTransitionError
from monitoring.monitor_db.base import RecordNotFound, StoreInputError
from monitoring.monitor_db.database import MonitoringStore
from monitoring.monitor_db.heartbeats import Heartbeat, Watch
from monitoring.monitor_db.retrain_history import RetrainRequest
from monitoring.monitor_db.rules import DuplicateRule, RuleNotFound
from monitoring.monitor_db.run_history import RUN_STATUSES, PipelineRun, RunTracker
from monitoring.monitor_db.schema import (
    UTCDateTime,
    alert_events,
    alert_rules,
    alerts,
    heartbeats,
    metadata,
    metric_points,
    pipeline_runs,
    retrain_requests,
)

__all__ = [
    "RUN_STATUSES",
    "AlertEvent",
    "AlertNotFound",
    "AlertTransitionError",
    "DuplicateRule",
    "Heartbeat",
    "MonitoringStore",
    "PipelineRun",
    "RecordNotFound",
    "RetrainRequest",
    "RuleNotFound",
    "RunTracker",
    "StoreInputError",
    "UTCDateTime",
    "Watch",
    "alert_events",
    "alert_rules",
    "alerts",
    "heartbeats",
    "metadata",
    "metric_points",
    "pipeline_runs",
    "retrain_requests",
]
