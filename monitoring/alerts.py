"""Alert rules and their evaluation: which conditions fire, and what that does to open alerts.

The core is pure: `evaluate(rules, metrics)` turns named metric values into Firings.
`apply_firings` is the one place with side effects (through a MonitoringStore) and holds the
dedup policy that keeps a bad day from becoming an alert storm:

- a condition is one rule on one metric (condition_key "rule:metric"); a glob rule such as
  `drift.feature.*.drifted` yields one condition per feature;
- a firing condition that already has an open or acknowledged alert only bumps that alert's
  last_seen_at and occurrences: no new alert, no new notification;
- a condition that was evaluated and no longer fires resolves its alert (who = "system");
- a condition with no live alert opens one, and only those are returned for delivery.
A person resolving an alert whose condition still fires will see it reopen on the next run:
acknowledge it instead to keep it quiet while it is being worked on.

Windows: a rule with window "7d" / "12h" / "2w" compares the mean of the metric over points
whose window ends within that span of the newest one; "5" or "5pts" the mean of the newest
five points; no window, the newest value alone.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any, Protocol

from collectwise.errors import InvalidInputError

SEVERITIES = ("info", "warning", "critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
ALERT_STATUSES = ("open", "acknowledged", "resolved")
LIVE_STATUSES = ("open", "acknowledged")
SYSTEM = "system"
# ':' separates rule and metric in a condition key, so rule names may not contain it.
_RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,99}$")
_WINDOW = re.compile(r"^\s*(\d+)\s*(pts?|points?|[hdw])?\s*$", re.IGNORECASE)
_SPAN_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


@dataclass(frozen=True)
class Rule:
    """A threshold on one metric (or on every metric a glob matches)."""

    name: str
    metric: str
    comparison: str
    threshold: float
    severity: str = "warning"
    window: str | None = None
    enabled: bool = True
    description: str = ""
    created_by: str = SYSTEM
    updated_by: str | None = None
    id: int | None = None
    updated_at: datetime | None = None

    def matches(self, metric_name: str) -> bool:
        # fnmatchcase: metric names are case-sensitive identifiers on every platform.
        return fnmatchcase(metric_name, self.metric)

    def breached(self, value: float) -> bool:
        return COMPARISONS[self.comparison](value, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Window:
    """How much history a rule looks at: a number of points or a span of time."""

    points: int | None = None
    span: timedelta | None = None


@dataclass(frozen=True)
class Firing:
    """One condition (rule x metric) that holds now, with the value that breached."""

    rule: Rule
    metric: str
    value: float

    @property
    def condition_key(self) -> str:
        return condition_key(self.rule.name, self.metric)


@dataclass(frozen=True)
class Alert:
    """One alert as stored: a live condition, its lifecycle and who touched it."""

    id: int
    rule_id: int | None
    rule_name: str
    condition_key: str
    job: str | None
    status: str
    severity: str
    metric: str
    comparison: str
    value: float | None
    threshold: float
    opened_at: datetime
    last_seen_at: datetime
    occurrences: int
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolution_note: str | None = None

    @property
    def summary(self) -> str:
        value = "n/a" if self.value is None else f"{self.value:.4g}"
        return f"{self.metric} = {value} {self.comparison} {self.threshold:.4g}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        return out


# The dead man's switch of the scheduled jobs: the watchdog (monitoring.scheduler.watchdog)
# reports, per job, how far past its expected window the last heartbeat is. Seeded like the
# rules below, and put back by the watchdog if missing: disable it to silence it.
HEARTBEAT_RULE = Rule(
    "scheduled job missed",
    "heartbeat.*.overdue_seconds",
    ">",
    0.0,
    "critical",
    description="a scheduled job did not beat within its cron interval plus the grace",
)

# Seeded into an empty store on first use (MonitoringStore(seed_defaults=True)); people edit
# them with `collectwise alerts rules ...` afterwards and the seed never runs again.
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        "drift share",
        "drift.share_drifted",
        ">",
        0.3,
        "warning",
        description="more than 30% of features drifted against the training reference",
    ),
    Rule(
        "score drift",
        "drift.score_psi",
        ">",
        0.2,
        "warning",
        description="PSI of the score distribution above 0.2: the population has moved",
    ),
    Rule(
        "categorical drift",
        "drift.feature.*.jensenshannon",
        ">",
        0.12,
        "warning",
        # The drift share cannot see a shift confined to one categorical feature (a payment
        # channel moving): benchmarks/drift_scenarios.py measured Jensen-Shannon 0.145-0.167
        # under channel_shift against 0.076-0.096 on the no-drift control.
        description="a categorical feature's distribution moved (Jensen-Shannon above 0.12)",
    ),
    Rule(
        "feature drifted",
        "drift.feature.*.drifted",
        ">=",
        1.0,
        "info",
        description="one feature drifted; context for the drift-share alert, not pushed",
    ),
    Rule(
        "performance drop",
        "performance.auc_drop",
        ">",
        0.05,
        "critical",
        description="ROC AUC on matured labels fell more than 0.05 below the model's test AUC",
    ),
    Rule(
        "fairness four-fifths",
        "fairness.*.passes_80",
        "<",
        1.0,
        "warning",
        description="a protected group's selection-rate ratio fell below the four-fifths rule",
    ),
    Rule(
        "training-serving skew",
        "skew.max_mismatch_rate",
        ">",
        0.01,
        "critical",
        description="served features differ from offline features for more than 1% of rows",
    ),
    Rule(
        "serving errors",
        "serving.error_rate",
        ">",
        0.01,
        "critical",
        description="more than 1% of scoring requests failed",
    ),
    Rule(
        "serving p99 latency",
        "serving.latency_p99_ms",
        ">",
        250.0,
        "warning",
        # Half the default online-read deadline (0.5 s): a p99 near it means reads are about
        # to start failing; the scorer's p99 measured on this machine is about 10 ms.
        description="p99 latency of the scoring routes above 250 ms since the last check",
    ),
    Rule(
        "serving memory growth",
        "serving.memory_growth",
        ">",
        1.5,
        "warning",
        description="the scorer's resident memory grew by more than half since the last check",
    ),
    Rule(
        "champion rolled back",
        "probation.rolled_back",
        ">=",
        1.0,
        "critical",
        description="a champion on probation crossed a limit and the platform rolled it back "
        "to the previous champion (the run's labels say why)",
    ),
    Rule(
        "champion failing probation",
        "probation.failed",
        ">=",
        1.0,
        "critical",
        description="a champion on probation crossed a limit (error rate, p99 latency or "
        "score PSI) and there was no previous champion to roll back to",
    ),
    HEARTBEAT_RULE,
)


def condition_key(rule_name: str, metric: str) -> str:
    return f"{rule_name}:{metric}"


class RuleFieldError(InvalidInputError, ValueError):
    """A rule field that cannot be stored or evaluated; the message names the field."""


def _field_error(field: str, message: str) -> RuleFieldError:
    return RuleFieldError(f"rule field '{field}': {message}")


def parse_window(text: str | None) -> Window | None:
    """'7d' -> a span, '5' / '5pts' -> a count, None / '' -> no window."""
    if text is None or not text.strip():
        return None
    found = _WINDOW.match(text)
    if not found or int(found.group(1)) < 1:
        raise _field_error("window", f"{text!r} is not like '7d', '12h', '2w' or '5pts'")
    amount, unit = int(found.group(1)), (found.group(2) or "pts").lower()
    if unit in _SPAN_UNITS:
        return Window(span=amount * _SPAN_UNITS[unit])
    return Window(points=amount)


def validate_rule(rule: Rule) -> Rule:
    """The rule with normalised text fields; ValueError names the first bad field."""
    name = rule.name.strip()
    if not _RULE_NAME.match(name):
        raise _field_error(
            "name", f"{rule.name!r}: 1-100 letters, digits, spaces, '_', '.', '-' (no ':')"
        )
    metric = rule.metric.strip()
    if not metric or len(metric) > 255 or any(c.isspace() for c in metric):
        raise _field_error("metric", f"{rule.metric!r}: a metric name or glob without spaces")
    if rule.comparison not in COMPARISONS:
        raise _field_error("comparison", f"{rule.comparison!r} is not one of {list(COMPARISONS)}")
    if isinstance(rule.threshold, bool) or not math.isfinite(float(rule.threshold)):
        raise _field_error("threshold", f"{rule.threshold!r} is not a finite number")
    if rule.severity not in SEVERITIES:
        raise _field_error("severity", f"{rule.severity!r} is not one of {list(SEVERITIES)}")
    parse_window(rule.window)
    if not rule.created_by.strip():
        raise _field_error("created_by", "say who made the rule")
    window = rule.window.strip() if rule.window and rule.window.strip() else None
    return replace(rule, name=name, metric=metric, threshold=float(rule.threshold), window=window)


def windowed_value(
    rule: Rule, current: float, history: Sequence[tuple[datetime, float]] | None
) -> float:
    """The value a rule compares: the newest one, or the mean over the rule's window.

    history is (window_end, value) oldest first and includes the current point.
    """
    window = parse_window(rule.window)
    if window is None or not history:
        return current
    if window.points is not None:
        chosen = [v for _, v in history[-window.points :]]
    else:
        assert window.span is not None  # nosec B101  # narrows the type for mypy: a window has points or a span
        newest = history[-1][0]
        chosen = [v for end, v in history if end >= newest - window.span]
    finite = [v for v in chosen if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else current


def matching_rules(rules: Iterable[Rule], metric_names: Iterable[str]) -> list[Rule]:
    """The enabled rules that name at least one of these metrics (a job's own rules)."""
    names = list(metric_names)
    return [r for r in rules if r.enabled and any(r.matches(n) for n in names)]


def evaluate(
    rules: Iterable[Rule],
    metrics: Mapping[str, float],
    history: Mapping[str, Sequence[tuple[datetime, float]]] | None = None,
) -> list[Firing]:
    """Every (enabled rule, matching metric) whose value breaches the threshold.

    Non-finite values never fire (a metric that could not be computed is no evidence).
    """
    firings: list[Firing] = []
    for rule in rules:
        if not rule.enabled:
            continue
        for name in sorted(metrics):
            if not rule.matches(name) or not math.isfinite(metrics[name]):
                continue
            value = windowed_value(rule, float(metrics[name]), (history or {}).get(name))
            if rule.breached(value):
                firings.append(Firing(rule, name, value))
    return firings


def evaluated_conditions(rules: Iterable[Rule], metrics: Mapping[str, float]) -> set[str]:
    """Condition keys these metrics gave an answer for (fired or not)."""
    return {
        condition_key(rule.name, name)
        for rule in rules
        if rule.enabled
        for name, value in metrics.items()
        if rule.matches(name) and math.isfinite(value)
    }


class AlertWriter(Protocol):
    """What apply_firings needs of a store (monitoring.monitor_db.MonitoringStore is one); a
    protocol, so this module stays free of the store, which imports it."""

    def live_alerts(self) -> dict[str, Alert]: ...

    def touch_alert(self, alert_id: int, value: float, at: datetime) -> None: ...

    def open_alert(
        self, firing: Firing, at: datetime, *, job: str | None = None
    ) -> Alert | None: ...

    def resolve(
        self, alert_id: int, who: str, note: str | None = None, *, at: datetime | None = None
    ) -> Alert: ...


def apply_firings(
    store: AlertWriter,
    rule_set: Iterable[Rule],
    firings: Sequence[Firing],
    evaluated_metrics: Mapping[str, float],
    now: datetime | None = None,
    *,
    job: str | None = None,
) -> list[Alert]:
    """Open, bump or auto-resolve alerts; returns only the newly opened ones (to deliver).

    Only conditions of rule_set on evaluated_metrics are resolved: an alert raised by another
    job's metrics is never touched here.
    """
    now = now or datetime.now(UTC)
    live = store.live_alerts()
    opened: list[Alert] = []
    for firing in firings:
        existing = live.get(firing.condition_key)
        if existing is not None:
            store.touch_alert(existing.id, firing.value, now)
            continue
        alert = store.open_alert(firing, now, job=job)
        if alert is not None:
            opened.append(alert)
    fired = {f.condition_key for f in firings}
    for key in evaluated_conditions(rule_set, evaluated_metrics) - fired:
        alert = live.get(key)
        if alert is not None:
            value = evaluated_metrics[alert.metric]
            note = f"{alert.metric} = {value:.4g}: no longer {alert.comparison} {alert.threshold}"
            store.resolve(alert.id, SYSTEM, note, at=now)
    return opened
