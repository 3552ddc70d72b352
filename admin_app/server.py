"""Serving the console: a threaded WSGI server, and the demo login `make demo` prints."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from werkzeug.serving import BaseWSGIServer, make_server

from admin_app.user_store import UserStore

log = logging.getLogger(__name__)

DEMO_USER = "demo"


def wsgi_server(app: object, host: str, port: int) -> BaseWSGIServer:
    """A threaded server: a long callback (a SHAP sample) must not hold up other pages."""
    return make_server(host, port, app, threaded=True)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DemoLogin:
    name: str
    password: str
    created: bool


def ensure_demo_user(users: UserStore, credentials: Path) -> DemoLogin:
    """The demo admin, with a random password kept in `credentials` (git-ignored .run/).

    An existing credentials file that still works is reused; otherwise the password is
    (re)set, so the file and the database always agree.
    """
    if credentials.exists():
        lines = dict(
            line.split("=", 1) for line in credentials.read_text().splitlines() if "=" in line
        )
        name, password = lines.get("user", ""), lines.get("password", "")
        if name and password and users.authenticate(name, password) is not None:
            return DemoLogin(name, password, created=False)
    password = secrets.token_urlsafe(12)
    existing = users.find(DEMO_USER)
    if existing is None:
        users.add(DEMO_USER, password, "admin")
    else:
        users.set_password(DEMO_USER, password)
        users.set_active(DEMO_USER, True)
    credentials.parent.mkdir(parents=True, exist_ok=True)
    credentials.write_text(f"user={DEMO_USER}\npassword={password}\n")
    credentials.chmod(0o600)
    log.info("demo user %r ready; its password is in %s", DEMO_USER, credentials)
    return DemoLogin(DEMO_USER, password, created=existing is None)
