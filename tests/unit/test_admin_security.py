"""The pen-test findings on the console, each held by a test through the real Flask/Dash
server (Flask's test client) and a real SQLite users database; nothing reads a model.

1. callbacks check the role on the server;  2. logout ends the session on the server;
3. security headers;  4. an unknown callback is a 4xx;  5. failed logins are throttled per
client;  6. the console's databases are private files.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dash import Dash, Input, Output
from flask.testing import FlaskClient
from pydantic import ValidationError

from admin_app.actions import ActionLog
from admin_app.app import create_app
from admin_app.backends import Backends
from admin_app.db import connect
from admin_app.server import ensure_demo_user
from admin_app.throttle import locked_out
from admin_app.user_store import UserStore
from collectwise.settings import AdminSettings, Settings
from tests.console_env import console_settings
from tests.unit.test_admin_auth import PASSWORD, csrf_headers, login

pytestmark = pytest.mark.unit

SESSION_COOKIE = "collectwise_console"
DISPATCH = "/_dash-update-component"
PER_CLIENT, PER_ACCOUNT = 3, 5


def _no_store() -> object:
    raise AssertionError("these tests must not open a feature store")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return console_settings(
        tmp_path,
        max_failed_logins_per_client=PER_CLIENT,
        max_failed_logins=PER_ACCOUNT,
    )


@pytest.fixture
def backends(settings: Settings) -> Iterator[Backends]:
    b = Backends(settings, store_factory=_no_store)  # type: ignore[arg-type]
    for name, role in (("alice", "admin"), ("olga", "operator"), ("victor", "viewer")):
        b.users.add(name, PASSWORD, role)
    yield b
    b.close()


@pytest.fixture
def app(settings: Settings, backends: Backends) -> Dash:
    return create_app(backends)


@pytest.fixture
def client(app: Dash) -> FlaskClient:
    return app.server.test_client()


def signed_in(client: FlaskClient, name: str) -> dict[str, str]:
    """Sign in, open a page (Dash sets itself up), and return the callback headers."""
    assert login(client, name).status_code == 302
    assert client.get("/models").status_code == 200
    return csrf_headers(client)


def callback(output: str, inputs: list[tuple[str, str, Any]]) -> dict[str, Any]:
    """The body the Dash renderer posts for the callback whose key is `output`."""
    several = output.startswith("..")
    parts = output[2:-2].split("...") if several else [output]
    outputs = [dict(zip(("id", "property"), p.rsplit(".", 1), strict=True)) for p in parts]
    return {
        "output": output,
        "outputs": outputs if several else outputs[0],
        "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
        "state": [],
        "changedPropIds": [],
    }


def key_with(app: Dash, fragment: str) -> str:
    (key,) = [k for k in app.callback_map if fragment in k]
    return key


USERS_GRID = callback("users-grid.rowData", [("users-refresh", "data", 0)])
USERS_FILL = callback(
    "..users-name.value...users-role.value..",
    [("users-grid", "selectedRows", [{"name": "alice", "role": "admin"}])],
)
AUDIT_ACTIONS = callback("audit-actions.rowData", [("audit-action-search", "value", None)])


# --------------------------------------------------------------------------- 1. roles on callbacks


def test_a_viewer_gets_no_admin_data_from_a_callback(
    client: FlaskClient, backends: Backends
) -> None:
    headers = signed_in(client, "victor")
    for body in (USERS_GRID, USERS_FILL):
        refused = client.post(DISPATCH, json=body, headers=headers)
        assert refused.status_code == 403, body["output"]
        text = refused.get_data(as_text=True)
        assert "needs admin" in text and "alice" not in text and "last_login" not in text
    denied = backends.actions.recent(2)
    assert {(a.who, a.action, a.outcome) for a in denied} == {("victor", "callback", "denied")}
    assert {a.target for a in denied} == {USERS_GRID["output"], USERS_FILL["output"]}


def test_an_operator_is_refused_too_and_an_admin_gets_the_data(client: FlaskClient) -> None:
    headers = signed_in(client, "olga")
    assert client.post(DISPATCH, json=USERS_GRID, headers=headers).status_code == 403
    client.get("/logout")
    headers = signed_in(client, "alice")
    answer = client.post(DISPATCH, json=USERS_GRID, headers=headers)
    assert answer.status_code == 200
    rows = answer.get_json()["response"]["users-grid"]["rowData"]
    assert {r["name"]: r["role"] for r in rows} == {
        "alice": "admin", "olga": "operator", "victor": "viewer"
    }  # fmt: skip


def test_a_viewer_still_runs_the_callbacks_of_a_viewer_page(client: FlaskClient) -> None:
    headers = signed_in(client, "victor")
    answer = client.post(DISPATCH, json=AUDIT_ACTIONS, headers=headers)
    assert answer.status_code == 200
    rows = answer.get_json()["response"]["audit-actions"]["rowData"]
    assert ("victor", "login") in {(r["who"], r["action"]) for r in rows}


def test_a_viewer_may_not_poll_an_operators_batch_job(
    app: Dash, client: FlaskClient, backends: Backends
) -> None:
    job = backends.jobs.new("olga", "accounts.csv")
    poll = callback(key_with(app, "batch-progress.label"), [("batch-poll", "n_intervals", 1)])
    poll["state"] = [{"id": "batch-job", "property": "data", "value": job.id}]
    headers = signed_in(client, "victor")
    refused = client.post(DISPATCH, json=poll, headers=headers)
    assert refused.status_code == 403 and job.id not in refused.get_data(as_text=True)


def test_a_callback_registered_without_a_role_is_refused_for_everyone(
    app: Dash, client: FlaskClient
) -> None:
    app.callback(Output("stray", "children"), Input("stray-input", "value"))(lambda _: "secret")
    headers = signed_in(client, "alice")
    stray = client.post(DISPATCH, json=callback("stray.children", [("stray-input", "value", 1)]),
                        headers=headers)  # fmt: skip
    assert stray.status_code == 403 and "secret" not in stray.get_data(as_text=True)
    assert "no role" in stray.get_json()["error"]


def test_every_server_callback_of_the_pages_has_a_role(app: Dash, client: FlaskClient) -> None:
    signed_in(client, "victor")  # the first request adds Dash's page router
    roles = app.server.extensions["collectwise_admin_callbacks"]
    server_side = [k for k, v in app.callback_map.items() if "callback" in v]
    assert len(server_side) > 20
    assert {k: roles.least_role(k) for k in server_side if roles.least_role(k) is None} == {}
    assert roles.least_role(USERS_GRID["output"]) == "admin"
    assert roles.least_role(key_with(app, "batch-job.data")) == "operator"
    assert roles.least_role(AUDIT_ACTIONS["output"]) == "viewer"


# --------------------------------------------------------------------------- 2. logout


def test_a_cookie_saved_before_logout_is_refused_after_it(app: Dash, client: FlaskClient) -> None:
    headers = signed_in(client, "victor")
    saved = client.get_cookie(SESSION_COOKIE)
    assert saved is not None
    assert client.get("/_dash-layout").status_code == 200
    assert client.post(DISPATCH, json=AUDIT_ACTIONS, headers=headers).status_code == 200
    other = app.server.test_client()  # the same user signed in elsewhere
    signed_in(other, "victor")

    client.get("/logout")
    replay = app.server.test_client()
    replay.set_cookie(SESSION_COOKIE, saved.value)
    page = replay.get("/models")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    assert replay.get("/_dash-layout").status_code == 401
    assert replay.post(DISPATCH, json=AUDIT_ACTIONS, headers=headers).status_code == 401
    # Only the session that logged out ended.
    assert other.get("/_dash-layout").status_code == 200


def test_a_session_id_is_kept_hashed(client: FlaskClient, settings: Settings) -> None:
    signed_in(client, "victor")
    with sqlite3.connect(settings.paths.users_db) as conn:
        (stored,) = conn.execute("SELECT id_hash FROM sessions WHERE name = 'victor'").fetchone()
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie is not None and re.fullmatch(r"[0-9a-f]{64}", stored)
    assert stored not in cookie.value


# --------------------------------------------------------------------------- 3. headers


def _inline_scripts(page: str) -> list[str]:
    """The inline scripts a browser runs: not a JSON data block, not one in a comment
    (Dash's <!--[if IE]> warning)."""
    live = re.sub(r"<!--.*?-->", "", page, flags=re.DOTALL)
    found = re.findall(r"<script(?P<attrs>[^>]*)>(?P<body>.*?)</script>", live, flags=re.DOTALL)
    return [body for attrs, body in found if "src=" not in attrs and "json" not in attrs]


def _sha256(script: str) -> str:
    return base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


def _assert_hardened(response: Any) -> dict[str, str]:
    headers = response.headers
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    policy = dict(
        [*d.strip().split(" ", 1), ""][:2] for d in headers["Content-Security-Policy"].split(";")
    )
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    return policy


@pytest.mark.parametrize(
    "path", ["/login", "/models", "/audit", "/assets/bootstrap.min.css", "/_dash-layout"]
)
def test_every_response_has_the_security_headers(client: FlaskClient, path: str) -> None:
    anonymous = client.get(path)
    _assert_hardened(anonymous)
    signed_in(client, "alice")
    _assert_hardened(client.get(path))


def test_refusals_have_the_security_headers_too(client: FlaskClient) -> None:
    _assert_hardened(client.post(DISPATCH, json=USERS_GRID))  # 401
    headers = signed_in(client, "victor")
    _assert_hardened(client.post(DISPATCH, json=USERS_GRID, headers=headers))  # 403


def test_the_policy_allows_exactly_dashs_inline_scripts(client: FlaskClient) -> None:
    signed_in(client, "alice")
    page = client.get("/models")
    policy = _assert_hardened(page)
    scripts = _inline_scripts(page.get_data(as_text=True))
    assert any("DashRenderer" in s for s in scripts)
    allowed = policy["script-src"].split()
    assert all(f"'sha256-{_sha256(s)}'" in allowed for s in scripts)
    assert set(allowed) == {"'self'"} | {f"'sha256-{_sha256(s)}'" for s in scripts}


def test_reports_may_be_framed_by_the_console_only(client: FlaskClient, settings: Settings) -> None:
    folder = settings.paths.monitoring_reports_dir / "drift" / "s1"
    folder.mkdir(parents=True)
    (folder / "drift.html").write_text("<h1>drift</h1>")
    signed_in(client, "victor")
    report = client.get("/reports/drift/s1/drift.html")
    assert report.status_code == 200
    assert report.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert report.headers["Content-Security-Policy"] == (
        "sandbox allow-scripts; frame-ancestors 'self'"
    )
    assert report.headers["X-Content-Type-Options"] == "nosniff"


def test_hsts_only_behind_tls(settings: Settings, backends: Backends) -> None:
    assert "Strict-Transport-Security" not in create_app(backends).server.test_client(
    ).get("/login").headers  # fmt: skip
    admin = settings.admin.model_copy(update={"secure_cookies": True})
    tls = Backends(settings.model_copy(update={"admin": admin}), store_factory=_no_store)  # type: ignore[arg-type]
    served = create_app(tls).server.test_client().get("/login")
    assert served.headers["Strict-Transport-Security"].startswith("max-age=")


# --------------------------------------------------------------------------- 4. unknown callbacks


def test_an_unknown_callback_is_a_404_that_says_so(client: FlaskClient) -> None:
    headers = signed_in(client, "alice")
    unknown = client.post(DISPATCH, json=callback("nope.children", []), headers=headers)
    assert unknown.status_code == 404
    assert unknown.get_json() == {"error": "no server callback has the output 'nope.children'"}
    # The page title callback runs in the browser: nothing to run here either.
    title = callback("_pages_dummy.children", [("_pages_store", "data", {})])
    assert client.post(DISPATCH, json=title, headers=headers).status_code == 404


@pytest.mark.parametrize("body", [[], {"inputs": []}, {"output": 3}, "not json"])
def test_a_malformed_callback_request_is_a_400(client: FlaskClient, body: Any) -> None:
    headers = signed_in(client, "alice")
    sent = (
        client.post(DISPATCH, data=body, headers=headers)
        if isinstance(body, str)
        else client.post(DISPATCH, json=body, headers=headers)
    )
    assert sent.status_code == 400
    assert "names no output" in sent.get_json()["error"]


# --------------------------------------------------------------------------- 5. login throttle


def _from(app: Dash, address: str) -> FlaskClient:
    client = app.server.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_one_client_failing_is_throttled_while_another_signs_in_as_demo(
    app: Dash, backends: Backends, tmp_path: Path
) -> None:
    demo = ensure_demo_user(backends.users, tmp_path / ".run" / "demo.txt")
    attacker, colleague = _from(app, "10.0.0.66"), _from(app, "10.0.0.7")
    for _ in range(PER_CLIENT):
        assert login(attacker, "demo", "wrong password!").status_code == 200
    for password in ("wrong password!", "wrong again!!", demo.password):
        throttled = login(attacker, "demo", password)
        assert throttled.status_code == 429
        assert "from your address" in throttled.get_data(as_text=True)
        assert 0 < int(throttled.headers["Retry-After"]) <= 15 * 60
    assert login(attacker, "alice").status_code == 429  # every name, from that address
    assert not locked_out(backends.actions, "demo", PER_ACCOUNT, backends.throttle.window)
    assert login(colleague, "demo", demo.password).headers["Location"] == "/models"
    assert colleague.get("/models").status_code == 200
    denied = [a for a in backends.actions.recent() if a.outcome == "denied"]
    assert len(denied) == 4 and all("10.0.0.66" in (a.detail or "") for a in denied)


def test_an_account_locks_only_on_failures_from_more_than_one_client(
    app: Dash, backends: Backends
) -> None:
    first, second, owner = _from(app, "10.0.1.1"), _from(app, "10.0.1.2"), _from(app, "10.0.1.3")
    for _ in range(PER_CLIENT):
        login(first, "olga", "wrong password!")
    assert not locked_out(backends.actions, "olga", PER_ACCOUNT, backends.throttle.window)
    for _ in range(PER_ACCOUNT - PER_CLIENT):
        assert login(second, "olga", "wrong password!").status_code == 200
    locked = login(owner, "olga")
    assert locked.status_code == 429 and "for this account" in locked.get_data(as_text=True)
    assert login(owner, "alice").headers["Location"] == "/models"  # other names are unaffected


def test_the_throttle_lifts_once_failures_age_out(
    app: Dash, backends: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _from(app, "10.0.2.1")
    real = backends.throttle.clock
    monkeypatch.setattr(backends.throttle, "clock", lambda: real() - 16 * 60)
    for _ in range(PER_CLIENT):
        login(client, "victor", "wrong password!")
    assert login(client, "victor").status_code == 429  # throttled, 16 minutes ago
    monkeypatch.setattr(backends.throttle, "clock", real)
    assert login(client, "victor").headers["Location"] == "/models"


def test_settings_refuse_an_account_limit_one_client_could_reach(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="one client alone"):
        AdminSettings(max_failed_logins_per_client=5, max_failed_logins=5)


# --------------------------------------------------------------------------- 6. file modes


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # what makes files 0644 unless the code says otherwise
    yield
    os.umask(previous)


@pytest.mark.usefixtures("usual_umask")
def test_users_and_audit_databases_are_created_private(tmp_path: Path) -> None:
    users_db, audit_db = tmp_path / "admin" / "users.db", tmp_path / "admin" / "audit.db"
    UserStore(users_db).add("ann", PASSWORD, "admin")
    ActionLog(audit_db).record("ann", "login", "ok")
    assert _mode(users_db) == 0o600 and _mode(audit_db) == 0o600
    assert _mode(tmp_path / "admin") == 0o700
    with connect(audit_db, ()) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        assert _mode(audit_db.with_name("audit.db-wal")) == 0o600


@pytest.mark.usefixtures("usual_umask")
def test_a_world_readable_database_is_narrowed_on_open(tmp_path: Path) -> None:
    legacy = tmp_path / "users.db"
    UserStore(legacy).add("ann", PASSWORD, "admin")
    legacy.chmod(0o644)
    assert UserStore(legacy).get("ann").role == "admin"
    assert _mode(legacy) == 0o600


@pytest.mark.usefixtures("usual_umask")
def test_the_consoles_own_database_is_private(client: FlaskClient, settings: Settings) -> None:
    signed_in(client, "victor")
    assert _mode(settings.paths.users_db) == 0o600
