"""Audit: the scorer's hash-chained log of scored accounts (with the chain verified) and
the console's own trail of who did what."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, dcc, html

from admin_app.backends import backends
from admin_app.components import grid, header, section
from admin_app.logic import audit as logic

PATH = "/audit"
NAME = "Audit"
MIN_ROLE = "viewer"

RECENT = 2000
SCORE_COLUMNS = (
    "seq", "scored_at", "request_id", "account_id", "caller", "route", "model",
    "probability", "band", "decision", "degraded", "intact", "row_hash",
)  # fmt: skip
ACTION_COLUMNS = ("id", "at", "who", "action", "target", "outcome", "detail")


def layout(**_: Any) -> Any:
    return html.Div(
        [
            header("Audit", "Every scored account, chained by hash; every console action."),
            dbc.Row(
                [
                    dbc.Col(html.Div(id="audit-verify"), md=9),
                    dbc.Col(dbc.Button("Verify again", id="audit-verify-button",
                                       color="secondary", outline=True), md="auto"),
                ]
            ),
            section(
                "Scored accounts (newest first)",
                dbc.Input(id="audit-search", placeholder="search: account, request id, band…",
                          debounce=True, className="mb-2"),
                dcc.Loading(grid("audit-scores", [], SCORE_COLUMNS, height=420)),
            ),
            section(
                "Console actions",
                dbc.Input(id="audit-action-search", placeholder="search: who, action, outcome…",
                          debounce=True, className="mb-2"),
                grid("audit-actions", [], ACTION_COLUMNS, height=360),
            ),
        ]
    )  # fmt: skip


def register(app: Dash) -> None:
    app.callback(Output("audit-verify", "children"), Input("audit-verify-button", "n_clicks"))(
        _verify
    )
    app.callback(Output("audit-scores", "rowData"), Input("audit-search", "value"))(_scores)
    app.callback(Output("audit-actions", "rowData"), Input("audit-action-search", "value"))(
        _actions
    )


def _verify(_: Any) -> Any:
    result = backends().audit().verify()
    text, colour = logic.verification_text(result)
    return dbc.Alert(text, color=colour, id="audit-verify-status")


def _scores(query: str | None) -> list[dict[str, Any]]:
    return logic.search(logic.score_rows(backends().audit().recent(RECENT)), query)


def _actions(query: str | None) -> list[dict[str, Any]]:
    return logic.search(logic.action_rows(backends().actions.recent(RECENT)), query)
