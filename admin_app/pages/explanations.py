"""Explanations: global SHAP importance (and how it moved across versions), per-feature
dependence over the version's training reference, one account's contributions, and the
smallest change in actionable features that would flip its decision.
"""

from __future__ import annotations

import logging
from typing import Any

import dash_bootstrap_components as dbc
import pandas as pd
from dash import Dash, Input, Output, State, dcc, html

from admin_app.backends import backends
from admin_app.components import grid, header, message, note, section
from admin_app.logic import outcome
from admin_app.logic.explain import (
    dependence_figure,
    dependence_frame,
    history_figure,
    importance_figure,
    importance_from_shap,
    short_name,
    waterfall_figure,
)
from training.counterfactual import actionable_space, find_counterfactual

PATH = "/explanations"
NAME = "Explanations"
MIN_ROLE = "viewer"

log = logging.getLogger(__name__)


def layout(account: str | None = None, **_: Any) -> Any:
    return html.Div(
        [
            header("Explanations", "SHAP values in log-odds of the uncalibrated model."),
            dbc.Row([
                dbc.Col(dbc.Label("Model version", html_for="exp-version"), md="auto"),
                dbc.Col(dcc.Dropdown(id="exp-version", clearable=False), md=3),
            ], className="g-2 mb-3 align-items-center"),
            html.Div(id="exp-message"),
            dbc.Row([
                dbc.Col(section("Global importance", dcc.Loading(dcc.Graph(id="exp-importance"))),
                        md=6),
                dbc.Col(section("Importance across versions", dcc.Graph(id="exp-history")), md=6),
            ]),
            section("Dependence", dcc.Dropdown(id="exp-feature", placeholder="feature"),
                    dcc.Loading(dcc.Graph(id="exp-dependence"))),
            section("One account (champion)", _account_controls(account),
                    dcc.Loading(html.Div(id="exp-account"))),
        ]
    )  # fmt: skip


def _account_controls(account: str | None) -> Any:
    return dbc.Row(
        [
            dbc.Col(dbc.Input(id="exp-account-id", placeholder="account id", value=account), md=4),
            dbc.Col(dbc.Button("Explain", id="exp-explain", color="primary"), md="auto"),
        ],
        className="g-2 mb-3",
    )


def register(app: Dash) -> None:
    app.callback(
        Output("exp-version", "options"),
        Output("exp-version", "value"),
        Output("exp-history", "figure"),
        Input("exp-version", "id"),
    )(_versions)
    app.callback(
        Output("exp-importance", "figure"),
        Output("exp-feature", "options"),
        Output("exp-feature", "value"),
        Output("exp-message", "children"),
        Input("exp-version", "value"),
        prevent_initial_call=True,
    )(_importance)
    app.callback(
        Output("exp-dependence", "figure"),
        Input("exp-feature", "value"),
        State("exp-version", "value"),
        prevent_initial_call=True,
    )(_dependence)
    app.callback(
        Output("exp-account", "children"),
        Input("exp-explain", "n_clicks"),
        State("exp-account-id", "value"),
    )(_account)


def _versions(_: Any) -> tuple[Any, Any, Any]:
    from training.registry import importance_history, list_versions  # noqa: PLC0415

    client = backends().mlflow()
    metas = list_versions(client=client)
    options = [
        {"label": f"v{m.version}" + (f" ({', '.join(m.aliases)})" if m.aliases else ""),
         "value": m.version}
        for m in metas
    ]  # fmt: skip
    champion = next((m.version for m in metas if "champion" in m.aliases), None)
    chosen = champion if champion is not None else (metas[0].version if metas else None)
    return options, chosen, history_figure(importance_history(client=client))


def _importance(version: int | None) -> tuple[Any, ...]:
    from admin_app.lookups import shap_sample  # noqa: PLC0415
    from training.registry import RegistryError  # noqa: PLC0415

    empty = importance_figure(pd.Series(dtype=float), "Global importance")
    if version is None:
        return empty, [], None, note("No registered versions yet.")
    try:
        sample = shap_sample(backends(), int(version))
    except RegistryError as exc:
        return empty, [], None, message(outcome.refused(str(exc)))
    importance = importance_from_shap(sample.shap)
    figure = importance_figure(
        importance, f"v{version}: mean |SHAP| over {len(sample.x)} training accounts"
    )
    options = [{"label": short_name(str(c)), "value": str(c)} for c in importance.index]
    return figure, options, str(importance.index[0]) if len(importance) else None, None


def _dependence(feature: str | None, version: int | None) -> Any:
    from admin_app.lookups import shap_sample  # noqa: PLC0415

    if not feature or version is None:
        return dependence_figure(pd.DataFrame({"value": [], "shap": []}), feature or "")
    sample = shap_sample(backends(), int(version))
    return dependence_figure(dependence_frame(sample.x, sample.shap, feature), feature)


def _account(_: Any, account: str | None) -> Any:
    from admin_app.lookups import NotFound, lookup, reference_matrix  # noqa: PLC0415
    from serving.model_set import ModelUnavailableError  # noqa: PLC0415
    from serving.online import StoreUnavailableError  # noqa: PLC0415
    from training.registry import RegistryError  # noqa: PLC0415

    account = (account or "").strip()
    if not account:
        return note("Enter an account id to explain it.", "light")
    b = backends()
    try:
        found = lookup(b, account)
    except (NotFound, ModelUnavailableError, StoreUnavailableError) as exc:
        return message(outcome.refused(str(exc)))
    children: list[Any] = []
    if not found.contributions.empty:
        figure = waterfall_figure(found.contributions, found.base_value, found.scored.probability)
        children.append(dcc.Graph(figure=figure, id="exp-waterfall"))
    try:
        reference = reference_matrix(b, found.served.version)
    except RegistryError as exc:
        # Without the training reference there are no real values to search over.
        children.append(note(f"No counterfactual: {exc}.", "warning"))
        return html.Div(children, id="exp-account-card")
    model = found.served.model
    x = found.x.reindex(model.feature_columns)
    space = actionable_space(reference, model.feature_columns)
    result = find_counterfactual(x, model.predict_proba, model.threshold, space)
    children.append(_counterfactual(result))
    return html.Div(children, id="exp-account-card")


def _counterfactual(result: Any) -> Any:
    rows = [
        {
            "feature": short_name(c.feature),
            "now": round(c.before, 4),
            "would_be": round(c.after, 4),
            "percentile_now": round(100 * c.rank_before),
            "percentile_then": round(100 * c.rank_after),
        }
        for c in result.changes
    ]
    colour = "success" if result.found else "warning"
    verdict = (
        f"{result.message}: probability {result.probability_before:.4f} → "
        f"{result.probability_after:.4f} (threshold {result.threshold:.4f}). Other features "
        "held fixed; percentiles are of the model's training accounts."
    )
    children: list[Any] = [html.H3("Counterfactual", className="h6 mt-3"), note(verdict, colour)]
    if rows:
        children.append(grid("exp-counterfactual", rows, None, height=200, page_size=None))
    return html.Div(children, id="exp-counterfactual-card")
