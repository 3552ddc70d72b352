"""Sign-in for the console: flask-login on the Dash server, a guard in front of every route.

- /login (a plain HTML form, so nothing of the app is sent before sign-in) and /logout;
  failed sign-ins are throttled per client address first, and an account is locked only
  past what one client can reach (throttle.py);
- a before_request guard: every other route, Dash's own JSON routes included, needs a
  signed-in user; pages redirect to /login, Dash requests get 401;
- the guard also checks every callback request against the callback's least role
  (callbacks.py), so a viewer cannot read an admin page's data by posting to Dash;
- callbacks that act call `acting(action)`, which checks the role again on the server:
  hiding a button is a convenience, this is the control;
- sessions are permanent cookies that expire `session_minutes` after the last request.
  The user id in the session carries the user's session_epoch (user_store.py), so a password
  or role change, or a disabled account, ends that user's open sessions; and it carries a
  server-side session id (sessions.py) that /logout deletes, so a copy of the cookie saved
  before logging out is refused afterwards.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Flask,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template_string,
    request,
    session,
)
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from admin_app.backends import Backends, backends
from admin_app.callbacks import DISPATCH, CallbackRoles
from admin_app.logic.roles import PermissionDenied, Role, at_least, can
from admin_app.security import CSRF_COOKIE, CSRF_HEADER, CSRF_SESSION_KEY, csrf_ok, new_csrf_token
from admin_app.user_store import UserRecord

log = logging.getLogger(__name__)

LOGIN_PATH = "/login"
_PUBLIC_PATHS = frozenset({LOGIN_PATH, "/_favicon.ico", "/favicon.ico"})
_PUBLIC_PREFIXES = ("/assets/",)
_LOGIN_FORM_KEY = "login_csrf"
CALLBACKS_KEY = "collectwise_admin_callbacks"
_TOO_MANY = 429


class ConsoleUser(UserMixin):
    def __init__(self, record: UserRecord, session_id: str) -> None:
        self.record = record
        self.session_id = session_id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def role(self) -> Role:
        return self.record.role

    def get_id(self) -> str:
        return f"{self.record.name}|{self.record.session_epoch}|{self.session_id}"


def install_auth(server: Flask, b: Backends) -> None:
    """Configure sessions, flask-login, the login routes and the guard on `server`.

    The guard refuses every callback until `install_callback_roles` has run.
    """
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


def install_callback_roles(server: Flask, roles: CallbackRoles) -> None:
    server.extensions[CALLBACKS_KEY] = roles


def _load_user(user_id: str) -> ConsoleUser | None:
    name, epoch, session_id = [*user_id.split("|"), "", ""][:3]
    b = backends()
    record = b.users.find(name)
    if record is None or not record.active or str(record.session_epoch) != epoch:
        return None
    if not b.sessions.alive(session_id, name):
        return None
    return ConsoleUser(record, session_id)


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
    return _callback_refusal()


def _callback_refusal() -> tuple[Response, int] | None:
    """Why the signed-in user's role may not run this callback (callbacks.py), or None."""
    if request.method != "POST" or not request.path.endswith(f"/{DISPATCH}"):
        return None
    roles: CallbackRoles | None = current_app.extensions.get(CALLBACKS_KEY)
    if roles is None or request.path != roles.dispatch_path:
        return jsonify(error="callbacks are not set up on this path: refused"), 403
    body: Any = request.get_json(silent=True)
    refusal = roles.check(body, current_role())
    if refusal is None:
        return None
    user = signed_in()
    if refusal.status == 403 and user is not None:
        target = str(body.get("output"))[:200]
        backends().actions.record(user.name, "callback", "denied", target, refusal.message)
    return jsonify(error=refusal.message), refusal.status


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


def _login() -> Response | str | tuple[str, int, dict[str, str]]:
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
    client = request.remote_addr or "unknown"
    refusal = b.throttle.refusal(client, name)
    if refusal is not None:
        b.actions.record(name, "login", "denied", detail=f"{refusal.reason} (from {client})")
        retry = {"Retry-After": str(refusal.retry_after_s)}
        return _login_page(error=refusal.message), _TOO_MANY, retry
    record = b.users.authenticate(name, password)
    if record is None:
        b.throttle.failed(client, name)
        detail = f"wrong name or password (from {client})"
        b.actions.record(name or "anonymous", "login", "refused", detail=detail)
        return _login_page(error="Wrong user name or password.")
    _start_session(b, record)
    b.actions.record(record.name, "login", "ok", detail=f"role {record.role} (from {client})")
    return redirect(_safe_next(request.form.get("next")))  # type: ignore[return-value]


def _start_session(b: Backends, record: UserRecord) -> None:
    # A fresh session at sign-in: nothing set before it (fixation) carries over.
    session.clear()
    login_user(ConsoleUser(record, b.sessions.start(record.name)), remember=False)
    session.permanent = True
    session[CSRF_SESSION_KEY] = new_csrf_token()


def _logout() -> Response:
    user = signed_in()
    if user is not None:
        # Ended on the server: a saved copy of this cookie names a session that is gone.
        backends().sessions.end(user.session_id)
        backends().actions.record(user.name, "logout", "ok")
    logout_user()
    session.clear()
    response: Response = redirect(LOGIN_PATH)  # type: ignore[assignment]
    response.delete_cookie(CSRF_COOKIE)
    return response


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
