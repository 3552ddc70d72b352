"""Monitoring: alerts (acknowledge, resolve), the rules editor, drift and performance
trends, the monitoring jobs' HTML reports, feature freshness and pipeline runs.

Everything reads and writes monitoring.monitor_db.MonitoringStore; a rule the editor saves is
validated by the store (monitoring.alerts.validate_rule), whose message names the field.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from admin_app.auth import acting, may
from admin_app.backends import backends
from admin_app.components import columns, grid, header, message, note, section
from admin_app.logic import monitoring as logic
from admin_app.logic import outcome
from admin_app.logic.files import list_reports
from admin_app.logic.outcome import Outcome
from admin_app.logic.roles import PermissionDenied, Role
from admin_app.routes import REPORTS_PREFIX

PATH = "/monitoring"
NAME = "Monitoring"
MIN_ROLE = "viewer"
# Acknowledging needs an operator, the rule editor an admin (their actions check again).
CALLBACK_ROLES: dict[str, Role] = {"mon-message": "operator", "mon-rule-name": "admin"}

log = logging.getLogger(__name__)

ALERT_COLUMNS = (
    "id", "status", "severity", "rule", "metric", "value", "condition", "opened",
    "last_seen", "seen", "acknowledged_by", "resolved_by", "note",
)  # fmt: skip
RULE_COLUMNS = (
    "name", "metric", "comparison", "threshold", "window", "severity", "enabled",
    "description", "updated_by", "updated_at",
)  # fmt: skip
TREND_DAYS = 180


def layout(**_: Any) -> Any:
    return html.Div(
        [
            header("Monitoring", "Alerts, rules, drift and performance over time, reports."),
            dcc.Store(id="mon-refresh", data=0),
            html.Div(id="mon-message"),
            section("Alerts", _alert_controls(), grid("mon-alerts", [], ALERT_COLUMNS,
                                                      select=True, row_id="id", height=300)),
            section("Alert rules", grid("mon-rules", [], RULE_COLUMNS, select=True,
                                        row_id="name", height=280), _rule_editor()),
            section("Trends", _trend_controls(), dbc.Row([
                dbc.Col(dcc.Graph(id="mon-drift-trend"), md=6),
                dbc.Col(dcc.Graph(id="mon-perf-trend"), md=6),
            ]), dcc.Graph(id="mon-custom-trend")),
            section("Monitoring reports", grid("mon-reports", [], None, select=True,
                                               row_id="path", height=220),
                    html.Div(id="mon-report-view")),
            dbc.Row([
                dbc.Col(section("Feature freshness", grid("mon-freshness", [], None,
                                                          height=220, page_size=None)), md=6),
                dbc.Col(section("Pipeline runs (latest per stage)",
                                grid("mon-runs", [], None, height=220, page_size=None)), md=6),
            ]),
        ]
    )  # fmt: skip


def _alert_controls() -> Any:
    status = dcc.Dropdown(
        id="mon-alert-status",
        options=[
            {"label": "live (open or acknowledged)", "value": "live"},
            {"label": "open", "value": "open"},
            {"label": "acknowledged", "value": "acknowledged"},
            {"label": "resolved", "value": "resolved"},
            {"label": "all", "value": "all"},
        ],
        value="live",
        clearable=False,
    )
    controls: list[Any] = [dbc.Col(status, md=3)]
    if may("ack_alert"):
        controls += [
            dbc.Col(dbc.Input(id="mon-alert-note", placeholder="note (optional)"), md=5),
            dbc.Col(dbc.Button("Acknowledge", id="mon-ack", color="warning"), md="auto"),
            dbc.Col(dbc.Button("Resolve", id="mon-resolve", color="success"), md="auto"),
        ]
    return dbc.Row(controls, className="g-2 mb-2")


def _rule_editor() -> Any:
    if not may("edit_rules"):
        return note("Rules are edited by admins.", "light")
    field = "mon-rule-"
    return html.Div(
        [
            html.H3("Edit a rule (select a row to load it; a new name adds a rule)",
                    className="h6 mt-3"),
            dbc.Row([
                dbc.Col(dbc.Input(id=f"{field}name", placeholder="name"), md=2),
                dbc.Col(dbc.Input(id=f"{field}metric", placeholder="metric or glob"), md=3),
                dbc.Col(dcc.Dropdown(id=f"{field}comparison", options=[">", ">=", "<", "<="],
                                     value=">", clearable=False), md=1),
                dbc.Col(dbc.Input(id=f"{field}threshold", placeholder="threshold"), md=1),
                dbc.Col(dbc.Input(id=f"{field}window", placeholder="window (7d, 5pts)"), md=2),
                dbc.Col(dcc.Dropdown(id=f"{field}severity", options=["info", "warning", "critical"],
                                     value="warning", clearable=False), md=2),
                dbc.Col(dbc.Checkbox(id=f"{field}enabled", label="enabled", value=True), md=1),
            ], className="g-2"),
            dbc.Input(id=f"{field}description", placeholder="description", className="mt-2"),
            dbc.Button("Save rule", id="mon-rule-save", color="primary", className="mt-2 me-2"),
            dbc.Button("Delete rule", id="mon-rule-delete", color="danger", outline=True,
                       className="mt-2"),
        ]
    )  # fmt: skip


def _trend_controls() -> Any:
    return dcc.Dropdown(id="mon-trend-metrics", multi=True, placeholder="add metrics to plot")


def register(app: Dash) -> None:
    app.callback(
        Output("mon-alerts", "rowData"),
        Input("mon-refresh", "data"),
        Input("mon-alert-status", "value"),
    )(_alerts)
    app.callback(
        Output("mon-rules", "rowData"),
        Output("mon-reports", "rowData"),
        Output("mon-reports", "columnDefs"),
        Output("mon-freshness", "rowData"),
        Output("mon-freshness", "columnDefs"),
        Output("mon-runs", "rowData"),
        Output("mon-runs", "columnDefs"),
        Output("mon-trend-metrics", "options"),
        Input("mon-refresh", "data"),
    )(_load)
    app.callback(
        Output("mon-drift-trend", "figure"),
        Output("mon-perf-trend", "figure"),
        Output("mon-custom-trend", "figure"),
        Input("mon-refresh", "data"),
        Input("mon-trend-metrics", "value"),
    )(_trends)
    app.callback(
        Output("mon-report-view", "children"),
        Input("mon-reports", "selectedRows"),
        prevent_initial_call=True,
    )(_show_report)
    app.callback(
        Output("mon-message", "children"),
        Output("mon-refresh", "data"),
        Input("mon-ack", "n_clicks"),
        Input("mon-resolve", "n_clicks"),
        State("mon-alerts", "selectedRows"),
        State("mon-alert-note", "value"),
        State("mon-refresh", "data"),
        prevent_initial_call=True,
    )(_alert_action)
    _register_rules(app)


def _register_rules(app: Dash) -> None:
    fields = ("name", "metric", "comparison", "threshold", "window", "severity", "enabled",
              "description")  # fmt: skip
    app.callback(
        *(Output(f"mon-rule-{f}", "value") for f in fields),
        Input("mon-rules", "selectedRows"),
        prevent_initial_call=True,
    )(_fill_rule)
    app.callback(
        Output("mon-message", "children", allow_duplicate=True),
        Output("mon-refresh", "data", allow_duplicate=True),
        Input("mon-rule-save", "n_clicks"),
        Input("mon-rule-delete", "n_clicks"),
        *(State(f"mon-rule-{f}", "value") for f in fields),
        State("mon-refresh", "data"),
        prevent_initial_call=True,
    )(_rule_action)


def _alerts(_: Any, status: str) -> list[dict[str, Any]]:
    store = backends().monitoring()
    if status == "live":
        alerts = store.open_alerts()
    else:
        alerts = store.list_alerts(None if status == "all" else status, limit=500)
    return logic.alert_rows(alerts)


def _load(_: Any) -> tuple[Any, ...]:
    from monitoring.health import feature_freshness, runs_frame  # noqa: PLC0415

    b = backends()
    store = b.monitoring()
    reports = list_reports(b.paths.monitoring_reports_dir)
    freshness = logic.records(feature_freshness(b.features_dir).drop(columns=["path"]))
    runs = logic.records(runs_frame(store.list_runs(limit=500)))
    metrics = store.metric_names()
    return (
        logic.rule_rows(store.list_rules()),
        reports,
        columns(reports),
        freshness,
        columns(freshness),
        runs,
        columns(runs),
        [{"label": m, "value": m} for m in metrics],
    )


def _series(names: list[str]) -> dict[str, Any]:
    store = backends().monitoring()
    since = datetime.now(UTC) - timedelta(days=TREND_DAYS)
    return {n: store.metric_series(n, since=since) for n in names}


def _trends(_: Any, chosen: list[str] | None) -> tuple[Any, Any, Any]:
    rules = backends().monitoring().list_rules(enabled_only=True)
    drift = logic.trend_figure(
        _series(list(logic.DRIFT_TRENDS)),
        "Feature and score drift",
        logic.rule_thresholds(rules, logic.DRIFT_TRENDS),
    )
    perf = logic.trend_figure(
        _series(list(logic.PERFORMANCE_TRENDS)),
        "Performance on matured outcomes",
        logic.rule_thresholds(rules, logic.PERFORMANCE_TRENDS),
    )
    custom = logic.trend_figure(
        _series(list(chosen or [])),
        "Chosen metrics" if chosen else "Chosen metrics: pick some above",
        empty_note=bool(chosen),
    )
    return drift, perf, custom


def _show_report(selected: list[dict[str, Any]] | None) -> Any:
    if not selected:
        return None
    src = REPORTS_PREFIX + str(selected[0]["path"])
    return html.Iframe(src=src, style={"width": "100%", "height": "720px", "border": "0"})


def _alert_action(
    _a: Any, _r: Any, selected: list[dict[str, Any]] | None, note_text: str | None, refresh: int
) -> tuple[Any, int]:
    from monitoring.monitor_db import AlertNotFound, AlertTransitionError  # noqa: PLC0415

    resolve = ctx.triggered_id == "mon-resolve"
    action = "resolve_alert" if resolve else "ack_alert"
    alert_id = selected[0]["id"] if selected else None
    try:
        user = acting(action, f"alert {alert_id}")
    except PermissionDenied as exc:
        return message(Outcome("denied", str(exc))), refresh
    b = backends()
    store = b.monitoring()
    do = store.resolve if resolve else store.acknowledge
    verb = "resolved" if resolve else "acknowledged"
    errors = (AlertNotFound, AlertTransitionError)
    result = logic.alert_action(do, alert_id, user.name, note_text, verb, errors)
    if alert_id is not None:
        b.actions.record(user.name, action, result.outcome, f"alert {alert_id}", result.message)
    return message(result), refresh + 1


def _fill_rule(selected: list[dict[str, Any]] | None) -> tuple[Any, ...]:
    if not selected:
        return (no_update,) * 8
    r = selected[0]
    return (
        r["name"], r["metric"], r["comparison"], str(r["threshold"]), r.get("window") or "",
        r["severity"], bool(r["enabled"]), r.get("description") or "",
    )  # fmt: skip


def _rule_action(_s: Any, _d: Any, *values: Any) -> tuple[Any, int]:
    *fields, refresh = values
    form = dict(zip(("name", "metric", "comparison", "threshold", "window", "severity",
                     "enabled", "description"), fields, strict=True))  # fmt: skip
    deleting = ctx.triggered_id == "mon-rule-delete"
    name = str(form.get("name") or "").strip()
    try:
        user = acting("edit_rules", f"rule {name}")
    except PermissionDenied as exc:
        return message(Outcome("denied", str(exc))), refresh
    result = _delete_rule(user.name, name) if deleting else _save_rule(user.name, form)
    backends().actions.record(
        user.name, "delete_rule" if deleting else "save_rule", result.outcome, f"rule {name}",
        result.message,
    )  # fmt: skip
    return message(result), refresh + (1 if result.ok else 0)


def _save_rule(who: str, form: dict[str, Any]) -> Outcome:
    from monitoring.alerts import Rule  # noqa: PLC0415
    from monitoring.monitor_db import RuleNotFound  # noqa: PLC0415

    store = backends().monitoring()
    try:
        values = logic.parse_rule_form(form)
        try:
            store.get_rule(values["name"])
        except RuleNotFound:
            store.add_rule(Rule(**values, created_by=who))
            return outcome.ok(f"rule {values['name']!r} added")
        changes = {k: values[k] for k in logic.RULE_FIELDS}
        store.update_rule(values["name"], who, **changes)
        return outcome.ok(f"rule {values['name']!r} updated")
    except ValueError as exc:
        return outcome.refused(str(exc))


def _delete_rule(who: str, name: str) -> Outcome:
    from monitoring.monitor_db import RuleNotFound  # noqa: PLC0415

    if not name:
        return outcome.refused("rule field 'name': say which rule to delete")
    try:
        backends().monitoring().delete_rule(name, who)
    except RuleNotFound as exc:
        return outcome.refused(str(exc))
    return outcome.ok(f"rule {name!r} deleted (its live alerts resolved by {who})")
