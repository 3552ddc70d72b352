"""Fairness: the latest registered version's fairness table against the 80% rule, and the
disparate-impact trend the monitoring job records on scored populations."""

from __future__ import annotations

import re
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html

from admin_app.backends import backends
from admin_app.components import columns, grid, header, note, section
from admin_app.logic import fairness as logic
from admin_app.logic.monitoring import trend_figure

PATH = "/fairness"
NAME = "Fairness"
MIN_ROLE = "viewer"

_RATIO_METRIC = re.compile(r"^fairness\.(?P<attr>[^.]+)\.disparate_impact$")


def layout(**_: Any) -> Any:
    return html.Div(
        [
            header(
                "Fairness",
                "Selection rate per protected group at the model's threshold; a group below "
                "80% of the highest fails the four-fifths rule. Protected attributes are "
                "never model features.",
            ),
            dcc.Store(id="fair-report"),
            html.Div(id="fair-source"),
            section("Per attribute", grid("fair-summary", [], None, height=180, page_size=None)),
            section(
                "Per group",
                dcc.Dropdown(id="fair-attribute", clearable=False, className="mb-2"),
                dcc.Graph(id="fair-figure"),
                grid("fair-groups", [], None, height=320),
            ),
            section("Disparate impact on scored accounts (monitoring)", dcc.Graph(id="fair-trend")),
        ]
    )


def register(app: Dash) -> None:
    app.callback(
        Output("fair-report", "data"),
        Output("fair-source", "children"),
        Output("fair-summary", "rowData"),
        Output("fair-summary", "columnDefs"),
        Output("fair-groups", "rowData"),
        Output("fair-groups", "columnDefs"),
        Output("fair-attribute", "options"),
        Output("fair-attribute", "value"),
        Output("fair-trend", "figure"),
        Input("fair-report", "id"),
    )(_load)
    app.callback(
        Output("fair-figure", "figure"),
        Input("fair-attribute", "value"),
        State("fair-report", "data"),
        prevent_initial_call=True,
    )(_figure)


def _load(_: Any) -> tuple[Any, ...]:
    from admin_app.lookups import latest_fairness  # noqa: PLC0415
    from training.registry import list_versions  # noqa: PLC0415

    b = backends()
    versions = [m.version for m in list_versions(client=b.mlflow())]
    found = latest_fairness(b, versions)
    trend = _trend()
    if found is None:
        empty: list[Any] = []
        text = note("No registered version has a fairness report yet.")
        return None, text, empty, empty, empty, empty, empty, None, trend
    version, fairness = found
    summary, groups = logic.summary_rows(fairness), logic.group_rows(fairness)
    attributes = [r["attribute"] for r in summary]
    source = dbc.Alert(
        f"From the evaluation report of v{version} (test set, threshold "
        f"{float(fairness.get('threshold', float('nan'))):.3f}).",
        color="light",
    )
    return (
        fairness, source, summary, columns(summary), groups, columns(groups),
        attributes, attributes[0] if attributes else None, trend,
    )  # fmt: skip


def _trend() -> Any:
    store = backends().monitoring()
    names = [n for n in store.metric_names() if _RATIO_METRIC.match(n)]
    series = {n: store.metric_series(n) for n in names}
    figure = trend_figure(series, "Disparate impact by attribute")
    figure.add_hline(y=logic.FOUR_FIFTHS, line_dash="dash", annotation_text="four-fifths")
    return figure


def _figure(attribute: str | None, fairness: dict[str, Any] | None) -> Any:
    if not attribute or not fairness:
        return {}
    return logic.selection_figure(fairness, attribute)
