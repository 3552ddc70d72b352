"""The monitoring page: alerts and rules as rows, the rule form, trends as figures."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from admin_app.logic import outcome
from admin_app.logic.outcome import Outcome

DRIFT_TRENDS = ("drift.share_drifted", "drift.score_psi")
PERFORMANCE_TRENDS = ("performance.auc", "performance.auc_drop", "performance.f1")
RULE_FIELDS = ("metric", "comparison", "threshold", "window", "severity", "enabled", "description")


def stamp(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Grid rows: datetimes as text, NaN as empty, so the browser gets plain JSON."""
    rows = []
    for record in frame.to_dict("records"):
        row: dict[str, Any] = {}
        for key, value in record.items():
            if isinstance(value, float) and math.isnan(value):
                row[str(key)] = None
            elif isinstance(value, float):
                row[str(key)] = round(value, 3)
            elif isinstance(value, datetime | pd.Timestamp):
                row[str(key)] = stamp(value)
            else:
                row[str(key)] = value
        rows.append(row)
    return rows


def alert_rows(alerts: Iterable[Any]) -> list[dict[str, Any]]:
    """monitoring.alerts.Alert objects as grid rows."""
    rows = []
    for a in alerts:
        rows.append(
            {
                "id": a.id,
                "status": a.status,
                "severity": a.severity,
                "rule": a.rule_name,
                "metric": a.metric,
                "value": None if a.value is None else round(float(a.value), 4),
                "condition": f"{a.comparison} {a.threshold:g}",
                "opened": stamp(a.opened_at),
                "last_seen": stamp(a.last_seen_at),
                "seen": a.occurrences,
                "acknowledged_by": a.acknowledged_by or "",
                "resolved_by": a.resolved_by or "",
                "note": a.resolution_note or "",
            }
        )
    return rows


def rule_rows(rules: Iterable[Any]) -> list[dict[str, Any]]:
    rows = []
    for rule in rules:
        row = {k: v for k, v in asdict(rule).items() if k != "id"}
        row["updated_at"] = stamp(row.get("updated_at"))
        rows.append(row)
    return rows


def parse_rule_form(values: Mapping[str, Any]) -> dict[str, Any]:
    """The rule editor's inputs as Rule fields; ValueError names the field to fix.

    Full validation (names, comparisons, windows) is monitoring.alerts.validate_rule's,
    run by the store; this only turns form text into typed values.
    """
    name = str(values.get("name") or "").strip()
    if not name:
        raise ValueError("rule field 'name': required")
    threshold_text = str(values.get("threshold") or "").strip()
    try:
        threshold = float(threshold_text)
    except ValueError:
        raise ValueError(f"rule field 'threshold': {threshold_text!r} is not a number") from None
    return {
        "name": name,
        "metric": str(values.get("metric") or "").strip(),
        "comparison": str(values.get("comparison") or "").strip(),
        "threshold": threshold,
        "window": str(values.get("window") or "").strip() or None,
        "severity": str(values.get("severity") or "warning"),
        "enabled": bool(values.get("enabled", True)),
        "description": str(values.get("description") or "").strip(),
    }


def alert_action(
    do: Any,
    alert_id: Any,
    who: str,
    note: str | None,
    verb: str,
    errors: tuple[type[BaseException], ...],
) -> Outcome:
    """Acknowledge or resolve one alert; the store's transition errors become the message."""
    try:
        number = int(alert_id)
    except (TypeError, ValueError):
        return outcome.error("select an alert first")
    caught: tuple[type[BaseException], ...] = (*errors, ValueError)
    try:
        alert = do(number, who, (note or "").strip() or None)
    except caught as exc:
        return outcome.refused(str(exc))
    return outcome.ok(f"alert {alert.id} ({alert.rule_name}) {verb} by {who}")


def trend_figure(
    series: Mapping[str, pd.DataFrame],
    title: str,
    thresholds: Mapping[str, float] | None = None,
    empty_note: bool = True,
) -> go.Figure:
    """One line per metric over window_end; a dashed line per rule threshold."""
    fig = go.Figure()
    for name, frame in series.items():
        if frame.empty:
            continue
        fig.add_trace(
            go.Scatter(x=frame["window_end"], y=frame["value"], mode="lines+markers", name=name)
        )
    for name, value in (thresholds or {}).items():
        fig.add_hline(y=value, line_dash="dot", annotation_text=f"{name} threshold {value:g}")
    empty = not fig.data and empty_note
    fig.update_layout(
        title=title + (" (no points yet: the monitoring jobs have not run)" if empty else ""),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        height=340,
        legend={"orientation": "h"},
    )
    return fig


def rule_thresholds(rules: Iterable[Any], metrics: Sequence[str]) -> dict[str, float]:
    """Thresholds of enabled rules that watch exactly one of `metrics`."""
    return {
        rule.metric: float(rule.threshold)
        for rule in rules
        if rule.enabled and rule.metric in metrics
    }
