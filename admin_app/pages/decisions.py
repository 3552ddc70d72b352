"""Decision views: how a version's calibrated probability moves with its most important
features (partial dependence over ICE lines of individual accounts), and a two-feature
decision map with the model's band cutoffs drawn on it.

Everything is computed on first visit to a version, per feature and per pair, and cached
(admin_app.lookups): a registered version never changes. The spinner of dcc.Loading is the
loading state meanwhile; the server is threaded, so other pages stay usable.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html

from admin_app.backends import backends
from admin_app.components import header, note, section
from admin_app.logic.decisions import (
    DEFAULT_TOP,
    ICE_LINES,
    TOP_CHOICES,
    curves_figure,
    feature_title,
    map_figure,
    pair_options,
    top_columns,
)
from admin_app.logic.explain import short_name
from collectwise.errors import CollectwiseError

if TYPE_CHECKING:
    from admin_app.lookups import DecisionBasis

PATH = "/decisions"
NAME = "Decisions"
MIN_ROLE = "viewer"
CENTRED = "centred"

log = logging.getLogger(__name__)


def layout(version: str | None = None, **_: Any) -> Any:
    return html.Div(
        [
            header("Decision views", "Partial dependence (red) of the calibrated probability "
                   "over ICE lines of individual training accounts (grey), and a two-feature "
                   "decision map with the band cutoffs."),
            dcc.Store(id="dec-asked", data=version),
            _controls(),
            html.Div(id="dec-message"),
            section("Partial dependence and ICE", dcc.Loading(html.Div(
                note("Computed on the first visit to a version; this can take a few seconds.",
                     "light"), id="dec-curves"))),
            section("Decision map", _pair_controls(),
                    dcc.Loading([html.Div(id="dec-map-message"), dcc.Graph(id="dec-map")])),
        ]
    )  # fmt: skip


def _controls() -> Any:
    top = [{"label": f"top {k}", "value": k} for k in TOP_CHOICES]
    return dbc.Row([
        dbc.Col(dbc.Label("Model version", html_for="dec-version"), md="auto"),
        dbc.Col(dcc.Dropdown(id="dec-version", clearable=False), md=3),
        dbc.Col(dbc.Label("Features", html_for="dec-top"), md="auto"),
        dbc.Col(dcc.Dropdown(id="dec-top", options=top, value=DEFAULT_TOP, clearable=False),
                md=2),
        dbc.Col(dbc.Checklist(id="dec-centred", switch=True, value=[],
                              options=[{"label": "centred ICE (c-ICE)", "value": CENTRED}]),
                md="auto"),
    ], className="g-2 mb-3 align-items-center")  # fmt: skip


def _pair_controls() -> Any:
    return dbc.Row([
        dbc.Col(dbc.Label("Across", html_for="dec-map-x"), md="auto"),
        dbc.Col(dcc.Dropdown(id="dec-map-x", clearable=False), md=4),
        dbc.Col(dbc.Label("Up", html_for="dec-map-y"), md="auto"),
        dbc.Col(dcc.Dropdown(id="dec-map-y", clearable=False), md=4),
    ], className="g-2 mb-2 align-items-center")  # fmt: skip


def register(app: Dash) -> None:
    app.callback(
        Output("dec-version", "options"),
        Output("dec-version", "value"),
        Output("dec-message", "children"),
        Input("dec-version", "id"),
        State("dec-asked", "data"),
    )(_versions)
    app.callback(
        Output("dec-curves", "children"),
        Input("dec-version", "value"),
        Input("dec-top", "value"),
        Input("dec-centred", "value"),
        prevent_initial_call=True,
    )(_curves)
    app.callback(
        Output("dec-map-x", "options"),
        Output("dec-map-x", "value"),
        Output("dec-map-y", "options"),
        Output("dec-map-y", "value"),
        Input("dec-version", "value"),
        prevent_initial_call=True,
    )(_pairs)
    app.callback(
        Output("dec-map", "figure"),
        Output("dec-map-message", "children"),
        Input("dec-map-x", "value"),
        Input("dec-map-y", "value"),
        State("dec-version", "value"),
        prevent_initial_call=True,
    )(_map)


def _versions(_: Any, asked: str | None) -> tuple[Any, Any, Any]:
    from training.registry import list_versions  # noqa: PLC0415

    try:
        metas = list_versions(client=backends().mlflow())
    except CollectwiseError as exc:
        return [], None, note(f"The model registry cannot be read: {exc}", "danger")
    options = [
        {"label": f"v{m.version}" + (f" ({', '.join(m.aliases)})" if m.aliases else ""),
         "value": m.version}
        for m in metas
    ]  # fmt: skip
    known = {m.version for m in metas}
    if asked and asked.lstrip("v").isdigit() and int(asked.lstrip("v")) in known:
        return options, int(asked.lstrip("v")), None
    champion = next((m.version for m in metas if "champion" in m.aliases), None)
    if champion is None:
        text = "No champion yet: promote a version (Models) or choose one above."
        return options, None, note(text if metas else "No registered versions yet.", "warning")
    return options, champion, None


def _basis(version: int | None) -> tuple[DecisionBasis | None, Any]:
    """The version's basis, or None and the message that says why there is none."""
    from admin_app.lookups import decision_basis  # noqa: PLC0415

    if version is None:
        return None, note("Choose a model version.", "light")
    try:
        return decision_basis(backends(), int(version)), None
    except (CollectwiseError, ValueError, KeyError) as exc:
        # No reference artefact, a model the explainer cannot read, a registry that is
        # down: each one a sentence on the page, never a traceback.
        log.warning("no decision views for v%s: %s", version, exc)
        return None, note(f"No decision views for v{version}: {exc}", "warning")


def _curves(version: int | None, k: int | None, centred: list[str] | None) -> Any:
    from admin_app.lookups import decision_curves  # noqa: PLC0415
    from training.inspection import column_sentence  # noqa: PLC0415

    basis, problem = _basis(version)
    if basis is None:
        return problem
    columns = top_columns(basis.importance, basis.x, int(k or DEFAULT_TOP))
    graphs, skipped = [], []
    for i, column in enumerate(columns):
        try:
            curves = decision_curves(backends(), basis.version, column)
        except ValueError as exc:
            skipped.append(f"{short_name(column)} ({exc})")
            continue
        title = feature_title(column, column_sentence(column, basis.model.feature_service))
        figure = curves_figure(curves, title, centred=CENTRED in (centred or []))
        graphs.append(dbc.Col(dcc.Graph(id=f"dec-pd-{i}", figure=figure), lg=6))
    return html.Div([_summary(basis, len(columns), skipped), dbc.Row(graphs)])


def _summary(basis: DecisionBasis, shown: int, skipped: list[str]) -> Any:
    constrained = len(basis.constraints)
    text = (
        f"v{basis.version}: the {shown} columns of largest mean |SHAP|, over {len(basis.x)} "
        f"reference accounts (a fixed sample); {min(ICE_LINES, len(basis.x))} ICE lines "
        "drawn; grid from the 5th to the 95th percentile; ticks along the bottom mark the deciles. "
        + (f"{constrained} columns are monotone-constrained." if constrained
           else "No monotone constraint is enforced by the final estimator.")
    )  # fmt: skip
    if skipped:
        text += f" Not shown: {'; '.join(skipped)}."
    return html.P(text, className="text-muted small mb-2", id="dec-summary")


def _pairs(version: int | None) -> tuple[Any, Any, Any, Any]:
    basis, _ = _basis(version)
    if basis is None:
        return [], None, [], None
    ranked = top_columns(basis.importance, basis.x, len(basis.x.columns))
    options = pair_options(ranked)
    first, second = [*ranked, None, None][:2]
    return options, first, options, second


def _map(x_column: str | None, y_column: str | None, version: int | None) -> tuple[Any, Any]:
    from admin_app.lookups import decision_map  # noqa: PLC0415

    empty = go.Figure()
    if version is None or not x_column or not y_column:
        return empty, note("Choose two features.", "light")
    if x_column == y_column:
        return empty, note("Choose two different features.", "warning")
    try:
        dmap = decision_map(backends(), int(version), x_column, y_column)
    except (CollectwiseError, ValueError, KeyError) as exc:
        log.warning("no decision map for v%s %s x %s: %s", version, x_column, y_column, exc)
        return empty, note(f"No decision map: {exc}", "warning")
    title = f"Decision map of v{version}: {short_name(x_column)} × {short_name(y_column)}"
    return map_figure(dmap, title), None
