"""Sign-in, sessions, CSRF, roles, the console's stores and its file routes, through Flask's
test client (no browser, no Feast, no MLflow: nothing here reads a model)."""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from flask_login import login_user
from pydantic import SecretStr

from admin_app.actions import ActionLog
from admin_app.app import create_app
from admin_app.auth import ConsoleUser, acting
from admin_app.backends import Backends
from admin_app.background_jobs import BatchJobs, JobResult
from admin_app.logic.roles import PermissionDenied
from admin_app.security import CSRF_COOKIE, CSRF_HEADER, secret_key
from admin_app.server import ensure_demo_user
from admin_app.throttle import locked_out
from admin_app.user_store import UserExists, UserStore
from collectwise.settings import AdminSettings, Settings
from tests.console_env import console_settings

pytestmark = pytest.mark.unit

PASSWORD = "a-long-enough-password"


def _no_store() -> object:
    raise AssertionError("these tests must not open a feature store")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return console_settings(
        tmp_path,
        max_failed_logins_per_client=3,
        max_failed_logins=5,
        session_minutes=30,
    )


@pytest.fixture
def backends(settings: Settings) -> Iterator[Backends]:
    b = Backends(settings, store_factory=_no_store)  # type: ignore[arg-type]
    for name, role in (("alice", "admin"), ("olga", "operator"), ("victor", "viewer")):
        b.users.add(name, PASSWORD, role)
    yield b
    b.close()


@pytest.fixture
def client(settings: Settings, backends: Backends) -> FlaskClient:
    return create_app(backends).server.test_client()


def login(client: FlaskClient, name: str, password: str = PASSWORD, next_path: str = "/models"):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    form = {"username": name, "password": password, "csrf_token": token.group(1), "next": next_path}
    return client.post("/login", data=form)


def csrf_headers(client: FlaskClient) -> dict[str, str]:
    cookie = client.get_cookie(CSRF_COOKIE)
    assert cookie is not None
    return {CSRF_HEADER: cookie.value}


# --------------------------------------------------------------------------- the guard


def test_nothing_is_reachable_without_signing_in(client: FlaskClient) -> None:
    page = client.get("/audit")
    assert page.status_code == 302 and page.headers["Location"] == "/login?next=/audit"
    assert client.get("/_dash-layout").status_code == 401
    assert client.get("/_dash-dependencies").status_code == 401
    assert client.post("/_dash-update-component", json={}).status_code == 401
    assert client.get("/reports/drift/x.html").status_code == 302
    assert client.get("/batch/" + "0" * 32 + "/scores.csv").status_code == 302
    assert client.get("/login").status_code == 200
    assert client.get("/assets/bootstrap.min.css").status_code == 200


def test_sign_in_sets_a_hardened_expiring_session(client: FlaskClient, backends: Backends) -> None:
    response = login(client, "alice")
    assert response.status_code == 302 and response.headers["Location"] == "/models"
    cookies = response.headers.getlist("Set-Cookie")
    session = next(c for c in cookies if c.startswith("collectwise_console="))
    assert "HttpOnly" in session and "SameSite=Lax" in session and "Expires=" in session
    expires = re.search(r"Expires=([^;]+)", session)
    assert expires is not None
    left = datetime.strptime(expires.group(1), "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    assert timedelta(minutes=29) < left - datetime.now(UTC) <= timedelta(minutes=30)
    assert client.get("/models").status_code == 200
    assert client.get("/_dash-layout").status_code == 200
    assert [(a.who, a.action, a.outcome) for a in backends.actions.recent()] == [
        ("alice", "login", "ok")
    ]


def test_wrong_password_and_expired_form_are_refused(
    client: FlaskClient, backends: Backends
) -> None:
    assert "Wrong user name or password" in login(client, "alice", "nope").get_data(as_text=True)
    assert "Wrong user name or password" in login(client, "mallory").get_data(as_text=True)
    forged = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert "The form expired" in forged.get_data(as_text=True)
    assert client.get("/models").status_code == 302
    outcomes = [(a.who, a.outcome) for a in backends.actions.recent()]
    assert ("alice", "refused") in outcomes and ("mallory", "refused") in outcomes


def test_repeated_failures_throttle_the_client(client: FlaskClient, backends: Backends) -> None:
    for _ in range(3):
        login(client, "olga", "wrong password")
    throttled = login(client, "olga")
    assert throttled.status_code == 429
    assert "Too many failed sign-ins" in throttled.get_data(as_text=True)
    # The throttled attempt is not a failure of the account; one client alone stays under
    # the account's limit (test_admin_security.py has the rest).
    window = timedelta(minutes=15)
    assert locked_out(backends.actions, "olga", 3, window)
    assert not locked_out(backends.actions, "olga", 4, window)
    assert not locked_out(backends.actions, "alice", 1, window)


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "javascript:x"])
def test_next_never_leaves_the_site(client: FlaskClient, target: str) -> None:
    assert login(client, "alice", next_path=target).headers["Location"] == "/"


def test_callbacks_need_the_csrf_header(client: FlaskClient) -> None:
    login(client, "alice")
    assert client.post("/_dash-update-component", json={}).status_code == 403
    wrong = client.post("/_dash-update-component", json={}, headers={CSRF_HEADER: "x"})
    assert wrong.status_code == 403
    right = client.post("/_dash-update-component", json={}, headers=csrf_headers(client))
    assert right.status_code != 403  # past the guard (Dash itself rejects the empty payload)


@pytest.mark.parametrize("change", ["password", "role", "disable"])
def test_account_changes_end_open_sessions(
    client: FlaskClient, backends: Backends, change: str
) -> None:
    login(client, "olga")
    assert client.get("/models").status_code == 200
    if change == "password":
        backends.users.set_password("olga", "another-long-password")
    elif change == "role":
        backends.users.set_role("olga", "viewer")
    else:
        backends.users.set_active("olga", False)
    assert client.get("/models").status_code == 302
    if change == "disable":
        assert "Wrong user name" in login(client, "olga").get_data(as_text=True)


def test_logout(client: FlaskClient, backends: Backends) -> None:
    login(client, "victor")
    assert client.get("/logout").headers["Location"] == "/login"
    assert client.get("/models").status_code == 302
    assert ("victor", "logout", "ok") in [
        (a.who, a.action, a.outcome) for a in backends.actions.recent()
    ]


def test_acting_checks_the_role_on_the_server(settings: Settings, backends: Backends) -> None:
    app = create_app(backends).server
    with app.test_request_context("/"):
        login_user(ConsoleUser(backends.users.get("victor"), "session-id"))
        with pytest.raises(PermissionDenied, match="viewer"):
            acting("promote", "v2")
        login_user(ConsoleUser(backends.users.get("alice"), "session-id"))
        assert acting("promote", "v2").name == "alice"
    denied = backends.actions.recent(1)[0]
    assert (denied.who, denied.action, denied.target, denied.outcome) == (
        "victor", "promote", "v2", "denied"
    )  # fmt: skip


# --------------------------------------------------------------------------- file routes


def test_reports_are_served_sandboxed_and_only_from_their_root(
    client: FlaskClient, settings: Settings
) -> None:
    folder = settings.paths.monitoring_reports_dir / "drift" / "s1"
    folder.mkdir(parents=True)
    (folder / "drift.html").write_text("<h1>drift</h1>")
    login(client, "victor")
    page = client.get("/reports/drift/s1/drift.html")
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"].startswith("sandbox allow-scripts;")
    assert client.get("/reports/%2e%2e/admin/users.db").status_code == 404
    assert client.get("/reports/drift/s1/missing.html").status_code == 404


def test_batch_results_go_to_their_owner_or_an_admin(
    client: FlaskClient, backends: Backends
) -> None:
    job = backends.jobs.new("olga", "accounts.csv")
    backends.jobs.result_path(job.id).write_text("account_id,probability\nA1,0.2\n")
    url = f"/batch/{job.id}/scores.csv"
    login(client, "victor")
    assert client.get(url).status_code == 403
    client.get("/logout")
    login(client, "olga")
    download = client.get(url)
    assert download.status_code == 200 and download.get_data(as_text=True).startswith("account_id")
    assert client.get("/batch/not-a-job/scores.csv").status_code == 404


# --------------------------------------------------------------------------- stores and helpers


def test_user_store(tmp_path: Path) -> None:
    users = UserStore(tmp_path / "users.db")
    record = users.add("ann", PASSWORD, "operator")
    assert (record.role, record.active, record.session_epoch) == ("operator", True, 0)
    with pytest.raises(UserExists):
        users.add("ann", PASSWORD, "viewer")
    assert users.authenticate("ann", PASSWORD) is not None
    assert users.authenticate("ann", "wrong-password") is None
    assert users.authenticate("nobody", PASSWORD) is None
    assert users.set_role("ann", "admin").session_epoch == 1
    assert users.count_admins() == 1
    raw = (tmp_path / "users.db").read_bytes()
    assert PASSWORD.encode() not in raw and b"scrypt:" in raw


def test_action_log_is_append_only(tmp_path: Path) -> None:
    import sqlite3

    log = ActionLog(tmp_path / "a.db")
    log.record("alice", "promote", "ok", "v2", "gain +0.05")
    with pytest.raises(ValueError, match="outcome"):
        log.record("alice", "promote", "maybe")  # type: ignore[arg-type]
    conn = sqlite3.connect(tmp_path / "a.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM admin_actions")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE admin_actions SET outcome = 'error'")
    conn.close()
    assert (
        log.count_since("alice", "promote", ("ok",), datetime.now(UTC) - timedelta(minutes=1)) == 1
    )


def test_secret_key_from_env_else_a_private_file(tmp_path: Path) -> None:
    settings = AdminSettings()
    key = secret_key(settings, tmp_path / "k")
    assert len(key) == 64 and secret_key(settings, tmp_path / "k") == key
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    given = AdminSettings(secret_key=SecretStr("from-the-environment"))
    assert secret_key(given, tmp_path / "k2") == "from-the-environment"
    assert not (tmp_path / "k2").exists()


def test_demo_user_is_made_once_and_repaired(tmp_path: Path) -> None:
    users, credentials = UserStore(tmp_path / "u.db"), tmp_path / ".run" / "admin-demo.txt"
    first = ensure_demo_user(users, credentials)
    assert first.created and users.get("demo").role == "admin"
    assert f"password={first.password}" in credentials.read_text()
    again = ensure_demo_user(users, credentials)
    assert (again.password, again.created) == (first.password, False)
    credentials.write_text("user=demo\npassword=stale\n")
    repaired = ensure_demo_user(users, credentials)
    assert repaired.password != "stale" and users.authenticate("demo", repaired.password)


def test_batch_jobs_report_progress_and_failures(tmp_path: Path) -> None:
    jobs = BatchJobs(tmp_path)
    ended: list[str] = []

    def work(report):
        report(0.5, "half way")
        return JobResult(3, "3 scored")

    def broken(report):
        raise ValueError("line 4: bad account id")

    good, bad = jobs.new("olga", "a.csv"), jobs.new("olga", "b.csv")
    jobs.start(good, work, lambda j: ended.append(j.status))
    jobs.start(bad, broken, lambda j: ended.append(j.status))
    deadline = time.monotonic() + 10
    while len(ended) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    done, failed = jobs.get(good.id), jobs.get(bad.id)
    assert done is not None and (done.status, done.progress, done.rows) == ("done", 1.0, 3)
    assert failed is not None and (failed.status, failed.message) == (
        "failed",
        "line 4: bad account id",
    )
    with pytest.raises(ValueError, match="job id"):
        jobs.workdir("../../etc")
