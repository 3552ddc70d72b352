"""MonitoringStore: one monitoring database, its engine and schema, with the methods of each
table group (metric history, rules, alerts, pipeline runs, retraining, heartbeats) mixed in.

Tables are created when absent; the default rules of monitoring.alerts are seeded only when
the rules table is created, so rules people deleted never come back.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from monitoring.alerts import DEFAULT_RULES
from monitoring.monitor_db.alert_lifecycle import AlertLifecycle
from monitoring.monitor_db.heartbeats import HeartbeatBook
from monitoring.monitor_db.metric_history import MetricHistory
from monitoring.monitor_db.retrain_history import RetrainHistory
from monitoring.monitor_db.rules import DuplicateRule, RuleBook
from monitoring.monitor_db.run_history import RunHistory
from monitoring.monitor_db.schema import alert_rules, alerts, metadata

log = logging.getLogger(__name__)


def _ensure_sqlite_dir(url: str) -> None:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database or "").parent.mkdir(parents=True, exist_ok=True)


# Any fixed number: it names the schema lock among PostgreSQL's advisory locks.
SCHEMA_LOCK_KEY = 0x636F6C6C6563  # "collec"


def _lock_schema(conn: sa.Connection) -> None:
    """Hold the database's schema lock until this transaction ends.

    SQLite: BEGIN IMMEDIATE takes the write lock now (others wait up to the busy timeout);
    its DDL is transactional, so the tables appear at commit. PostgreSQL: a transaction-scoped
    advisory lock, with DDL transactional there too."""
    backend = conn.dialect.name
    if backend == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif backend == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})


class MonitoringStore(
    MetricHistory, RuleBook, AlertLifecycle, RunHistory, RetrainHistory, HeartbeatBook
):
    """Small methods over the monitoring tables; one engine per store (dispose() to close)."""

    def __init__(self, url: str, *, seed_defaults: bool = True) -> None:
        _ensure_sqlite_dir(url)
        is_sqlite = sa.engine.make_url(url).get_backend_name() == "sqlite"
        # SQLite: wait for a concurrent writer (another job) instead of failing at once.
        # PostgreSQL: a server that went away is found by the pre-ping (then a fresh connect
        # fails, naming host and port) and one that does not answer gives up in 10 s.
        connect_args: dict[str, Any] = {"timeout": 30} if is_sqlite else {"connect_timeout": 10}
        self.engine: Engine = sa.create_engine(
            url, connect_args=connect_args, pool_pre_ping=not is_sqlite
        )
        self.seeded = self._create_schema(seed_defaults)

    def _create_schema(self, seed_defaults: bool) -> bool:
        # Two processes opening a new database at once (the scheduler and an operator's CLI)
        # would both see no table and both CREATE it; the second fails with "already
        # exists". Checking and creating under one lock makes the first create and the
        # second find the tables, and only the creator seeds the default rules.
        with self.engine.begin() as conn:
            _lock_schema(conn)
            fresh = not sa.inspect(conn).has_table(alert_rules.name)
            metadata.create_all(conn)
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

    # Here rather than in RuleBook: deleting a rule also resolves its live alerts.
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
