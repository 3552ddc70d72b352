"""Users (admins only): add people, change roles, reset passwords, disable accounts.

A role change, a new password or disabling ends that user's open sessions (users.py).
"""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, ctx, dcc, html

from admin_app.auth import acting
from admin_app.backends import backends
from admin_app.components import grid, header, message, section
from admin_app.logic import outcome
from admin_app.logic.outcome import Outcome
from admin_app.logic.roles import ROLES, PermissionDenied
from admin_app.logic.users import check_change, user_rows
from admin_app.user_store import UserExists, UserNotFound

PATH = "/users"
NAME = "Users"
MIN_ROLE = "admin"

COLUMNS = ("name", "role", "active", "created_at", "last_login_at")
_BUTTONS = ("users-add", "users-set-role", "users-set-password", "users-disable", "users-enable")


def layout(**_: Any) -> Any:
    form = dbc.Row(
        [
            dbc.Col(dbc.Input(id="users-name", placeholder="user name"), md=3),
            dbc.Col(dcc.Dropdown(id="users-role", options=list(ROLES), value="viewer",
                                 clearable=False), md=2),
            dbc.Col(dbc.Input(id="users-password", type="password",
                              placeholder="password (10+ characters)"), md=3),
        ],
        className="g-2 mb-2",
    )  # fmt: skip
    buttons = html.Div(
        [
            dbc.Button("Add user", id="users-add", color="primary", className="me-2"),
            dbc.Button("Set role", id="users-set-role", color="secondary", className="me-2"),
            dbc.Button("Set password", id="users-set-password", color="secondary",
                       className="me-2"),
            dbc.Button("Disable", id="users-disable", color="danger", outline=True,
                       className="me-2"),
            dbc.Button("Enable", id="users-enable", color="success", outline=True),
        ]
    )  # fmt: skip
    return html.Div(
        [
            header("Users", "viewer reads; operator also acknowledges alerts and scores "
                   "batches; admin also promotes, rolls back, edits rules and users."),
            dcc.Store(id="users-refresh", data=0),
            html.Div(id="users-message"),
            section("People", grid("users-grid", [], COLUMNS, select=True, row_id="name",
                                   height=300)),
            section("Add or change (select a row to fill the name)", form, buttons),
        ]
    )  # fmt: skip


def register(app: Dash) -> None:
    app.callback(Output("users-grid", "rowData"), Input("users-refresh", "data"))(_load)
    app.callback(
        Output("users-name", "value"),
        Output("users-role", "value"),
        Input("users-grid", "selectedRows"),
        prevent_initial_call=True,
    )(_fill)
    app.callback(
        Output("users-message", "children"),
        Output("users-refresh", "data"),
        Output("users-password", "value"),
        *(Input(b, "n_clicks") for b in _BUTTONS),
        State("users-name", "value"),
        State("users-role", "value"),
        State("users-password", "value"),
        State("users-refresh", "data"),
        prevent_initial_call=True,
    )(_act)


def _load(_: Any) -> list[dict[str, Any]]:
    return user_rows(backends().users.list())


def _fill(selected: list[dict[str, Any]] | None) -> tuple[Any, Any]:
    if not selected:
        return "", "viewer"
    return selected[0]["name"], selected[0]["role"]


def _act(*values: Any) -> tuple[Any, int, str]:
    *_clicks, name, role, password, refresh = values
    name = (name or "").strip()
    action = str(ctx.triggered_id).removeprefix("users-").replace("-", "_")
    try:
        user = acting("edit_users", name)
    except PermissionDenied as exc:
        return message(Outcome("denied", str(exc))), refresh, ""
    result = _apply(user.name, action, name, role, password or "")
    # The password itself never reaches the audit trail or the log.
    backends().actions.record(user.name, f"user_{action}", result.outcome, name, result.message)
    return message(result), refresh + (1 if result.ok else 0), ""


def _apply(actor: str, action: str, name: str, role: str, password: str) -> Outcome:
    users = backends().users
    try:
        if action == "add":
            users.add(name, password, role)
            return outcome.ok(f"user {name} added as {role}")
        target = users.get(name)
        if action == "set_password":
            users.set_password(name, password)
            return outcome.ok(f"password of {name} changed; their sessions ended")
        active = {"disable": False, "enable": True}.get(action)
        new_role = role if action == "set_role" else None
        check_change(actor, target, new_role, active, users.count_admins())
        if new_role is not None:
            users.set_role(name, new_role)
            return outcome.ok(f"{name} is now {new_role}; their sessions ended")
        users.set_active(name, bool(active))
        return outcome.ok(f"{name} {'enabled' if active else 'disabled'}")
    except (UserExists, UserNotFound, ValueError) as exc:
        return outcome.refused(str(exc))
