"""Sign-in for the console: flask-login on the Dash server, a guard in front of every route.

- /login (a plain HTML form, so nothing of the app is sent before sign-in) and /logout;
- a before_request guard: every other route, Dash's own JSON routes included, needs a
  signed-in user; pages redirect to /login, Dash requests get 401;
- callbacks that act call `acting(action)`, which checks the role again on the server:
  hiding a button is a convenience, this is the control;
- sessions are permanent cookies that expire `session_minutes` after the last request;
  the user id in the session carries the user's session_epoch (users.py), so a password
  or role change, or a disabled account, ends that user's open sessions.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, redirect, render_template_string, request, session
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from admin_app.actions import ActionLog
from admin_app.context import Backends, backends
from admin_app.logic.roles import PermissionDenied, Role, at_least, can
from admin_app.security import CSRF_COOKIE, CSRF_HEADER, CSRF_SESSION_KEY, csrf_ok, new_csrf_token
from admin_app.users import UserRecord

log = logging.getLogger(__name__)

LOGIN_PATH = "/login"
_PUBLIC_PATHS = frozenset({LOGIN_PATH, "/_favicon.ico", "/favicon.ico"})
_PUBLIC_PREFIXES = ("/assets/",)
_LOGIN_FORM_KEY = "login_csrf"


class ConsoleUser(UserMixin):
    def __init__(self, record: UserRecord) -> None:
        self.record = record

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def role(self) -> Role:
        return self.record.role

    def get_id(self) -> str:
        return f"{self.record.name}|{self.record.session_epoch}"


def install_auth(server: Flask, b: Backends) -> None:
    """Configure sessions, flask-login, the login routes and the guard on `server`."""
    server.config.update(
        PERMANENT_SESSION_LIFETIME=b.settings.session_lifetime,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=b.settings.secure_cookies,
        SESSION_COOKIE_NAME="collectwise_console",
        MAX_CONTENT_LENGTH=b.settings.max_upload_mb * 1024 * 1024 * 2,
    )
    manager = LoginManager()
    manager.init_app(server)
    manager.user_loader(_load_user)
    server.add_url_rule(LOGIN_PATH, "login", _login, methods=["GET", "POST"])
    server.add_url_rule("/logout", "logout", _logout, methods=["GET", "POST"])
    server.before_request(_guard)
    server.after_request(_mirror_csrf_cookie)


def _load_user(user_id: str) -> ConsoleUser | None:
    name, _, epoch = user_id.rpartition("|")
    record = backends().users.find(name)
    if record is None or not record.active or str(record.session_epoch) != epoch:
        return None
    return ConsoleUser(record)


def _is_public(path: str) -> bool:
    return path in _PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIXES)


def _guard() -> Response | tuple[Response, int] | None:
    if _is_public(request.path):
        return None
    if not current_user.is_authenticated:
        if request.method != "GET" or request.path.startswith("/_"):
            return jsonify(error="not signed in or the session expired: reload the page"), 401
        return redirect(f"{LOGIN_PATH}?next={_safe_next(request.full_path)}")  # type: ignore[return-value]
    if request.method == "POST" and not csrf_ok(
        session.get(CSRF_SESSION_KEY), request.headers.get(CSRF_HEADER)
    ):
        return jsonify(error="missing or wrong CSRF token: reload the page"), 403
    return None


def _mirror_csrf_cookie(response: Response) -> Response:
    token = session.get(CSRF_SESSION_KEY)
    if token and request.cookies.get(CSRF_COOKIE) != token:
        # Readable by the page on purpose: the Dash renderer copies it into a header.
        response.set_cookie(
            CSRF_COOKIE, token, samesite="Strict", secure=request.is_secure, httponly=False
        )
    return response


def _safe_next(target: str | None) -> str:
    """Only a path on this site: an open redirect would make the login page a phishing aid."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target.rstrip("?") or "/"


def _login() -> Response | str:
    b = backends()
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(_safe_next(request.args.get("next")))  # type: ignore[return-value]
        return _login_page(error=None)
    form_token = request.form.get("csrf_token")
    if not csrf_ok(session.get(_LOGIN_FORM_KEY), form_token):
        return _login_page(error="The form expired. Please try again.")
    name = request.form.get("username", "").strip()[:64]
    password = request.form.get("password", "")
    if locked_out(b.actions, name, b.settings.max_failed_logins, b.settings.lockout_minutes):
        b.actions.record(name, "login", "denied", detail="too many failed attempts")
        return _login_page(error="Too many failed attempts. Try again later.")
    record = b.users.authenticate(name, password)
    if record is None:
        b.actions.record(name or "anonymous", "login", "refused", detail="wrong name or password")
        return _login_page(error="Wrong user name or password.")
    _start_session(record)
    b.actions.record(record.name, "login", "ok", detail=f"role {record.role}")
    return redirect(_safe_next(request.form.get("next")))  # type: ignore[return-value]


def _start_session(record: UserRecord) -> None:
    # A fresh session at sign-in: nothing set before it (fixation) carries over.
    session.clear()
    login_user(ConsoleUser(record), remember=False)
    session.permanent = True
    session[CSRF_SESSION_KEY] = new_csrf_token()


def _logout() -> Response:
    if current_user.is_authenticated:
        backends().actions.record(current_user.name, "logout", "ok")
    logout_user()
    session.clear()
    response: Response = redirect(LOGIN_PATH)  # type: ignore[assignment]
    response.delete_cookie(CSRF_COOKIE)
    return response


def locked_out(actions: ActionLog, name: str, limit: int, minutes: int) -> bool:
    """Too many refused logins of `name` since the window began or its last good login."""
    if not name:
        return False
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    last_ok = actions.last(name, "login", "ok")
    if last_ok is not None and last_ok > since:
        since = last_ok
    return actions.count_since(name, "login", ("refused",), since) >= limit


def _login_page(error: str | None) -> str:
    token = session.get(_LOGIN_FORM_KEY) or new_csrf_token()
    session[_LOGIN_FORM_KEY] = token
    next_path = _safe_next(request.values.get("next"))
    return render_template_string(_LOGIN_TEMPLATE, error=error, token=token, next_path=next_path)


# --------------------------------------------------------------------------- in callbacks


def signed_in() -> ConsoleUser | None:
    """The user object itself, not flask-login's request-bound proxy (safe in threads)."""
    if not current_user.is_authenticated:
        return None
    user: ConsoleUser = current_user._get_current_object()
    return user


def current_role() -> Role | None:
    user = signed_in()
    return None if user is None else user.role


def may(action: str) -> bool:
    return can(current_role(), action)


def acting(action: str, target: str | None = None) -> ConsoleUser:
    """The signed-in user if their role allows `action`; else the denial is audited and
    PermissionDenied raised (the callback shows its message)."""
    user = signed_in()
    if user is None or not can(user.role, action):
        who = user.name if user is not None else "anonymous"
        backends().actions.record(who, action, "denied", target, "role does not allow it")
        raise PermissionDenied(f"your role ({current_role() or 'none'}) may not {action}")
    return user


def has_role(least: Role) -> bool:
    return at_least(current_role(), least)


_LOGIN_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · Collectwise console</title>
<link rel="stylesheet" href="/assets/bootstrap.min.css">
<link rel="icon" href="data:,">
</head>
<body class="bg-light">
<main class="container" style="max-width: 420px; margin-top: 12vh">
  <div class="card shadow-sm">
    <div class="card-body p-4">
      <h1 class="h4 mb-1">Collectwise console</h1>
      <p class="text-muted mb-4">Sign in to continue.</p>
      {% if error %}<div class="alert alert-danger" id="login-error">{{ error }}</div>{% endif %}
      <form method="post" action="/login" autocomplete="off">
        <input type="hidden" name="csrf_token" value="{{ token }}">
        <input type="hidden" name="next" value="{{ next_path }}">
        <div class="mb-3">
          <label class="form-label" for="username">User name</label>
          <input class="form-control" id="username" name="username" required autofocus>
        </div>
        <div class="mb-3">
          <label class="form-label" for="password">Password</label>
          <input class="form-control" id="password" name="password" type="password" required>
        </div>
        <button class="btn btn-primary w-100" id="login-button" type="submit">Sign in</button>
      </form>
    </div>
  </div>
</main>
</body>
</html>
"""
