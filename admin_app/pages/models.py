"""Models: registered versions side by side, lineage, model card; promote and roll back.

Promotion runs training.registry.promote, so the gate (test AUC margin on the same test
set) decides and its refusal is what the person reads. Both actions ask for a reason and a
confirmation, and land in the console's audit trail whatever their outcome.
"""

from __future__ import annotations

import logging
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html, no_update

from admin_app.auth import acting, may
from admin_app.backends import backends
from admin_app.components import columns, grid, header, message, note, pairs, section
from admin_app.logic import models as logic
from admin_app.logic.outcome import Outcome
from admin_app.logic.roles import PermissionDenied, Role

PATH = "/models"
NAME = "Models"
MIN_ROLE = "viewer"
# The promote and rollback form exists for admins only; so do its callbacks.
CALLBACK_ROLES: dict[str, Role] = {
    "models-promote-version": "admin",
    "models-promote-modal": "admin",
    "models-rollback-modal": "admin",
    "models-message": "admin",
}

log = logging.getLogger(__name__)

VERSION_COLUMNS = (
    "version", "aliases", "status", "test_roc_auc", "test_pr_auc", "test_f1", "test_brier",
    "threshold", "created", "feature_service", "fingerprint", "data_hash", "git_commit",
    "calibration", "promoted_by",
)  # fmt: skip


EXPERIMENT_COLUMNS = (
    "arm", "versions", "n", "defaults", "auc", "auc_low", "auc_high", "brier", "expected_cost",
    "collection_success_rate",
)  # fmt: skip


def layout(**_: Any) -> Any:
    children: list[Any] = [
        header("Models", "Registered versions, their lineage and the champion's history."),
        dcc.Store(id="models-refresh", data=0),
        html.Div(id="models-message"),
        section("Registered versions", grid("models-grid", [], VERSION_COLUMNS, select=True,
                                            row_id="version", height=300)),
        dbc.Row(
            [
                dbc.Col(section("Lineage", html.Div(id="models-lineage",
                                                   children=note("Select a version."))), md=5),
                dbc.Col(section("Metrics side by side",
                                grid("models-metrics", [], None, height=300, page_size=None)),
                        md=7),
            ]
        ),
        _experiment(),
    ]  # fmt: skip
    if may("promote"):
        children.append(_actions())
    children += [
        section("Champion history", grid("models-history", [], None, height=260)),
        section(
            "Model card",
            dcc.Loading(html.Iframe(id="models-card", style={"width": "100%", "height": "640px",
                                                            "border": "0"})),
        ),
    ]  # fmt: skip
    return html.Div(children)


def _experiment() -> Any:
    """The latest `collectwise monitor experiment` report: each arm on matured outcomes."""
    return section(
        "Champion / challenger experiment (latest)",
        html.Div(id="models-experiment-summary", children=note("No experiment report yet.")),
        grid("models-experiment", [], EXPERIMENT_COLUMNS, height=200, page_size=None),
    )


def _load_experiment(_: Any) -> tuple[list[dict[str, Any]], Any]:
    from monitoring.experiment import console_rows, console_summary, latest_report  # noqa: PLC0415

    report = latest_report(backends().paths.monitoring_reports_dir)
    if report is None:
        return [], note("No experiment report yet: run `collectwise monitor experiment`.")
    return console_rows(report), pairs(console_summary(report))


def _actions() -> Any:
    promote = dbc.Col(
        [
            dbc.Label("Version to promote", html_for="models-promote-version"),
            dcc.Dropdown(id="models-promote-version", clearable=False),
            dbc.Label("Why", html_for="models-promote-why", className="mt-2"),
            dbc.Textarea(id="models-promote-why", placeholder="recorded on the version"),
            dbc.Checkbox(id="models-promote-force", label="force (skip the gate)", value=False),
            dbc.Button("Promote…", id="models-promote-open", color="primary", className="mt-2"),
        ],
        md=6,
    )
    rollback = dbc.Col(
        [
            dbc.Label("Why roll back", html_for="models-rollback-why"),
            dbc.Textarea(id="models-rollback-why", placeholder="recorded on the version"),
            dbc.Button("Roll back…", id="models-rollback-open", color="danger", className="mt-2"),
        ],
        md=6,
    )
    return section(
        "Promote or roll back (admin)",
        dbc.Row([promote, rollback]),
        _confirm("promote", "Promote to champion?"),
        _confirm("rollback", "Roll back the champion?"),
    )


def _confirm(kind: str, title: str) -> dbc.Modal:
    return dbc.Modal(
        [
            dbc.ModalHeader(dbc.ModalTitle(title)),
            dbc.ModalBody(id=f"models-{kind}-body"),
            dbc.ModalFooter(
                [
                    dbc.Button("Cancel", id=f"models-{kind}-cancel", color="secondary"),
                    dbc.Button("Confirm", id=f"models-{kind}-confirm", color="primary"),
                ]
            ),
        ],
        id=f"models-{kind}-modal",
        is_open=False,
    )


def register(app: Dash) -> None:
    app.callback(
        Output("models-grid", "rowData"),
        Output("models-grid", "selectedRows"),
        Output("models-metrics", "rowData"),
        Output("models-metrics", "columnDefs"),
        Output("models-history", "rowData"),
        Output("models-history", "columnDefs"),
        Input("models-refresh", "data"),
    )(_load)
    # Separate: the promote form exists only for admins, and a callback with a missing
    # output would not run for anyone else.
    app.callback(
        Output("models-promote-version", "options"),
        Output("models-promote-version", "value"),
        Input("models-refresh", "data"),
    )(_load_choices)
    app.callback(
        Output("models-experiment", "rowData"),
        Output("models-experiment-summary", "children"),
        Input("models-refresh", "data"),
    )(_load_experiment)
    app.callback(
        Output("models-lineage", "children"),
        Output("models-card", "srcDoc"),
        Input("models-grid", "selectedRows"),
        prevent_initial_call=True,
    )(_select)
    _register_actions(app)


def _register_actions(app: Dash) -> None:
    for kind in ("promote", "rollback"):
        app.callback(
            Output(f"models-{kind}-modal", "is_open"),
            Output(f"models-{kind}-body", "children"),
            Input(f"models-{kind}-open", "n_clicks"),
            Input(f"models-{kind}-cancel", "n_clicks"),
            Input(f"models-{kind}-confirm", "n_clicks"),
            State("models-promote-version", "value"),
            State("models-promote-force", "value"),
            prevent_initial_call=True,
        )(_toggle(kind))
    app.callback(
        Output("models-message", "children"),
        Output("models-refresh", "data"),
        Input("models-promote-confirm", "n_clicks"),
        State("models-promote-version", "value"),
        State("models-promote-why", "value"),
        State("models-promote-force", "value"),
        State("models-refresh", "data"),
        prevent_initial_call=True,
    )(_promote)
    app.callback(
        Output("models-message", "children", allow_duplicate=True),
        Output("models-refresh", "data", allow_duplicate=True),
        Input("models-rollback-confirm", "n_clicks"),
        State("models-rollback-why", "value"),
        State("models-refresh", "data"),
        prevent_initial_call=True,
    )(_rollback)


def _load(_: Any) -> tuple[Any, ...]:
    from training.registry import champion_history, list_versions  # noqa: PLC0415

    client = backends().mlflow()
    metas = list_versions(client=client)
    history = logic.history_rows(champion_history(client=client))
    side = logic.metrics_side_by_side(metas[:8])
    rows = logic.version_rows(metas)
    # The champion starts selected, so its lineage and card show without a click.
    selected = [r for r in rows if "champion" in str(r["aliases"]).split(", ")][:1]
    return rows, selected, side, columns(side), history, columns(history)


def _load_choices(_: Any) -> tuple[list[dict[str, Any]], int | None]:
    from training.registry import list_versions  # noqa: PLC0415

    choices = logic.promotable(list_versions(client=backends().mlflow()))
    return [{"label": f"v{v}", "value": v} for v in choices], (choices[0] if choices else None)


def _select(selected: list[dict[str, Any]] | None) -> tuple[Any, Any]:
    from admin_app.lookups import model_card  # noqa: PLC0415
    from training.registry import show  # noqa: PLC0415

    if not selected:
        return note("Select a version."), ""
    version = int(selected[0]["version"])
    b = backends()
    meta = show(version, client=b.mlflow())
    card = b.cached(f"card:{version}", lambda: model_card(b, version))
    return html.Div([pairs(logic.lineage(meta)), _validation_links(version)]), card


def _validation_links(version: int) -> Any:
    """Links to the version's validation report, served from its run by admin_app.routes."""
    from admin_app.routes import validation_link  # noqa: PLC0415

    links = [
        html.A(kind.upper(), href=validation_link(version, kind), target="_blank",
               id=f"models-validation-{kind}")
        for kind in ("html", "pdf")
    ]  # fmt: skip
    return html.P(["Validation report: ", links[0], " · ", links[1]], className="mt-2 mb-0")


def _toggle(kind: str) -> Any:
    from dash import ctx  # noqa: PLC0415

    def toggle(_o: Any, _c: Any, _k: Any, version: Any, force: bool) -> tuple[bool, Any]:
        if ctx.triggered_id != f"models-{kind}-open":
            return False, no_update
        if kind == "promote":
            gate = "skipping the gate (forced)" if force else "if it passes the gate"
            return True, f"Make v{version} the champion, {gate}? The scorer follows within seconds."
        return True, "Make the previous champion the champion again? The scorer follows."

    return toggle


def _promote(_: Any, version: Any, why: str | None, force: bool, refresh: int) -> tuple[Any, int]:
    from training.registry import IncomparableTestSets, PromotionRefused, RegistryError, promote  # noqa: PLC0415

    b = backends()
    target = f"v{version}"
    try:
        user = acting("promote", target)
    except PermissionDenied as exc:
        return message(Outcome("denied", str(exc))), refresh

    def do(v: int, **kw: Any) -> Any:
        return promote(v, client=b.mlflow(), **kw)

    result = logic.promote(
        do, version, user.name, why, bool(force),
        errors=(RegistryError,), refusals=(PromotionRefused, IncomparableTestSets),
    )  # fmt: skip
    b.actions.record(user.name, "promote", result.outcome, target, result.message)
    return message(result), refresh + 1


def _rollback(_: Any, why: str | None, refresh: int) -> tuple[Any, int]:
    from training.registry import RegistryError, rollback  # noqa: PLC0415

    b = backends()
    try:
        user = acting("rollback", "champion")
    except PermissionDenied as exc:
        return message(Outcome("denied", str(exc))), refresh

    def do(who: str, reason: str) -> Any:
        return rollback(who, reason, client=b.mlflow())

    result = logic.rollback(do, user.name, why, errors=(RegistryError,))
    b.actions.record(user.name, "rollback", result.outcome, "champion", result.message)
    return message(result), refresh + 1
