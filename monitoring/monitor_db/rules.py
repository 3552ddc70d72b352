"""Alert rules as stored: listing, adding and changing them (validated by monitoring.alerts)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from collectwise.errors import ConflictError, NotFoundError
from monitoring.alerts import Rule, validate_rule
from monitoring.monitor_db.base import StoreBase, StoreInputError, required, utc_now
from monitoring.monitor_db.schema import alert_rules

log = logging.getLogger(__name__)

RULE_FIELDS = ("metric", "comparison", "threshold", "window", "severity", "enabled", "description")


class RuleNotFound(NotFoundError, LookupError):  # noqa: N818 - reads as the condition, like KeyError
    """No rule has that name."""


class DuplicateRule(ConflictError, ValueError):  # noqa: N818
    """A rule with that name exists already."""


class RuleBook(StoreBase):
    """Read and write the alert_rules table (deleting a rule is MonitoringStore's: it also
    resolves the rule's alerts)."""

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
        values = {f: getattr(rule, f) for f in ("name", "created_by", *RULE_FIELDS)}
        try:
            with self.engine.begin() as conn:
                conn.execute(alert_rules.insert().values(**values, updated_at=utc_now()))
        except IntegrityError as exc:
            raise DuplicateRule(f"rule field 'name': {rule.name!r} already exists") from exc
        return self.get_rule(rule.name)

    def update_rule(self, name: str, who: str, /, **changes: Any) -> Rule:
        """Change some of metric, comparison, threshold, window, severity, enabled,
        description; `who` is recorded as the rule's updated_by."""
        unknown = sorted(set(changes) - set(RULE_FIELDS))
        if unknown:
            raise StoreInputError(
                f"rule field '{unknown[0]}': cannot be changed (or does not exist)"
            )
        who = required("who", who)
        updated = validate_rule(replace(self.get_rule(name), **changes, updated_by=who))
        values = {f: getattr(updated, f) for f in ("updated_by", *RULE_FIELDS)}
        with self.engine.begin() as conn:
            conn.execute(
                alert_rules.update()
                .where(alert_rules.c.name == updated.name)
                .values(**values, updated_at=utc_now())
            )
        log.info("rule %r updated by %s: %s", name, who, changes)
        return self.get_rule(name)

    def enable_rule(self, name: str, who: str) -> Rule:
        return self.update_rule(name, who, enabled=True)

    def disable_rule(self, name: str, who: str) -> Rule:
        """Stop evaluating a rule; its live alerts stay for a person to resolve."""
        return self.update_rule(name, who, enabled=False)


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
