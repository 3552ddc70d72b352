"""Scoring: one account the way POST /v1/score does it (probability, band, decision,
reasons and a waterfall of every feature's push), and batch files scored in the background
with progress and a download.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html, no_update

from admin_app.auth import acting, may
from admin_app.backends import backends
from admin_app.components import header, message, note, pairs, section
from admin_app.logic import outcome
from admin_app.logic.explain import waterfall_figure
from admin_app.logic.outcome import Outcome
from admin_app.logic.roles import PermissionDenied, Role
from admin_app.logic.upload_checks import UploadError

PATH = "/scoring"
NAME = "Scoring"
MIN_ROLE = "viewer"
# Batch jobs are an operator's: a viewer may not start one or poll anyone's progress.
CALLBACK_ROLES: dict[str, Role] = {"batch-job": "operator", "batch-progress": "operator"}

log = logging.getLogger(__name__)


def layout(account: str | None = None, **_: Any) -> Any:
    lookup = [
        dbc.Row(
            [
                dbc.Col(dbc.Input(id="score-account", placeholder="account id", value=account,
                                  debounce=True), md=4),
                dbc.Col(dbc.Input(id="score-income", type="number", min=0,
                                  placeholder="reported monthly income (optional)"), md=4),
                dbc.Col(dbc.Button("Score", id="score-button", color="primary"), md="auto"),
            ],
            className="g-2 mb-3",
        ),
        dcc.Loading(html.Div(id="score-result")),
    ]  # fmt: skip
    return html.Div(
        [
            header("Scoring", "The scorer's own code: online features, champion, reasons."),
            section("Look up one account", *lookup),
            section("Score a batch file", _batch() if may("batch_score") else
                    note("Batch scoring needs the operator role.", "light")),
        ]
    )  # fmt: skip


def _batch() -> Any:
    return html.Div(
        [
            html.P(
                "A CSV or parquet file with an account_id column (scored from the online "
                "store), or a UCI-format CSV (run through the adapter and the data contract).",
                className="text-muted",
            ),
            dcc.Upload(
                id="batch-upload",
                children=html.Div(["Drop a file here or ", html.A("choose one")]),
                accept=".csv,.parquet",
                multiple=False,
                className="border border-2 rounded p-4 text-center mb-3",
                style={"borderStyle": "dashed"},
            ),
            dcc.Store(id="batch-job"),
            dcc.Interval(id="batch-poll", interval=500, disabled=True),
            dbc.Progress(id="batch-progress", value=0, striped=True, className="mb-2"),
            html.Div(id="batch-status"),
        ]
    )


def register(app: Dash) -> None:
    app.callback(
        Output("score-result", "children"),
        Input("score-button", "n_clicks"),
        Input("score-account", "value"),
        State("score-income", "value"),
    )(_score)
    app.callback(
        Output("batch-job", "data"),
        Output("batch-poll", "disabled"),
        Output("batch-status", "children"),
        Output("batch-progress", "value"),
        Input("batch-upload", "contents"),
        State("batch-upload", "filename"),
        prevent_initial_call=True,
    )(_upload)
    app.callback(
        Output("batch-progress", "value", allow_duplicate=True),
        Output("batch-progress", "label"),
        Output("batch-status", "children", allow_duplicate=True),
        Output("batch-poll", "disabled", allow_duplicate=True),
        Input("batch-poll", "n_intervals"),
        State("batch-job", "data"),
        prevent_initial_call=True,
    )(_poll)


def _score(_: Any, account: str | None, income: float | None) -> Any:
    from admin_app.lookups import NotFound, lookup  # noqa: PLC0415
    from serving.model_set import ModelUnavailableError  # noqa: PLC0415
    from serving.online import StoreUnavailableError  # noqa: PLC0415

    account = (account or "").strip()
    if not account:
        return note("Enter an account id.", "light")
    try:
        found = lookup(backends(), account, float(income) if income else None)
    except (NotFound, ModelUnavailableError, StoreUnavailableError) as exc:
        return message(outcome.refused(str(exc)))
    return _result(found)


def _result(found: Any) -> Any:
    s = found.scored
    facts = [
        ("account", s.row.account_id),
        ("probability of not paying in 30 days", f"{s.probability:.3f}"),
        ("band", s.band),
        ("decision", "flag for action" if s.decision else "no flag"),
        ("threshold", f"{found.served.model.threshold:.3f}"),
        ("model", f"{found.served.name} v{found.served.version} ({found.served.alias})"),
    ]
    if s.degraded:
        facts.append(("degraded", "; ".join(s.degraded)))
    if s.row.missing:
        facts.append(("missing features", ", ".join(s.row.missing)))
    reasons = html.Ul([html.Li(r.sentence) for r in s.reasons]) if s.reasons else None
    children: list[Any] = [
        dbc.Row(
            [
                dbc.Col([pairs(facts), html.H3("Reasons", className="h6 mt-3"), reasons], md=5),
                dbc.Col(_waterfall(found), md=7),
            ]
        ),
        dcc.Link("Explain this account, with a counterfactual →",
                 href=f"/explanations?account={s.row.account_id}", id="score-explain-link"),
    ]  # fmt: skip
    return html.Div(children, id="score-card")


def _waterfall(found: Any) -> Any:
    if found.contributions.empty:
        return note("This model has no tree explainer: no contributions to show.")
    figure = waterfall_figure(found.contributions, found.base_value, found.scored.probability)
    return dcc.Graph(figure=figure, id="score-waterfall")


def _upload(contents: str | None, filename: str | None) -> tuple[Any, ...]:
    from admin_app.batch_upload import check_upload, make_work, save_upload  # noqa: PLC0415
    from serving.model_set import ModelUnavailableError  # noqa: PLC0415

    b = backends()
    try:
        user = acting("batch_score", filename)
    except PermissionDenied as exc:
        return None, True, message(Outcome("denied", str(exc))), 0
    job = b.jobs.new(user.name, filename or "upload")
    try:
        path = save_upload(b, job, contents, filename)
        problems = check_upload(b, path)
        served = b.service().watcher.current.require_champion()
    except (UploadError, ModelUnavailableError) as exc:
        problems = [str(exc)]
    if problems:
        b.actions.record(user.name, "batch_score", "refused", filename, "; ".join(problems))
        return None, True, _problems(filename, problems), 0
    work = make_work(b, path, served.model, b.jobs.result_path(job.id), served.version)
    who = user.name

    def on_end(done: Any) -> None:
        state: Literal["ok", "error"] = "ok" if done.status == "done" else "error"
        b.actions.record(who, "batch_score", state, job.id, f"{filename}: {done.message}")

    b.jobs.start(job, work, on_end)
    return job.id, False, note(f"Scoring {filename}…", "info"), 0


def _problems(filename: str | None, problems: list[str]) -> Any:
    return dbc.Alert(
        [
            html.Strong(f"{filename or 'The file'} cannot be scored:"),
            html.Ul([html.Li(p) for p in problems], className="mb-0"),
        ],
        color="danger",
        id="batch-error",
    )


def _poll(_: Any, job_id: str | None) -> tuple[Any, ...]:
    job = backends().jobs.get(job_id) if job_id else None
    if job is None:
        return no_update, no_update, no_update, True
    percent = round(job.progress * 100)
    if not job.finished:
        return percent, f"{percent}%", note(job.message, "info"), False
    if job.status == "failed":
        return 0, "", _problems(job.name, [job.message]), True
    link = html.A(
        "Download the scores (CSV)", href=f"/batch/{job.id}/scores.csv", id="batch-download",
        className="btn btn-success",
    )  # fmt: skip
    return 100, "100%", html.Div([note(job.message, "success"), link]), True
