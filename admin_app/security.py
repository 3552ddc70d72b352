"""The secret that signs session cookies, and the CSRF token the Dash renderer sends back.

The key comes from COLLECTWISE_ADMIN__SECRET_KEY, else from a file of random bytes under the
data directory (git-ignored) made on first start, so a restart keeps people signed in and
no key is ever committed.

CSRF: the session cookie is SameSite=Lax already; on top, a random token is kept in the
session and mirrored in a readable cookie. The Dash renderer copies that cookie into the
X-CSRFToken header of every callback request (its csrf_token_name / csrf_header_name), and
the server refuses a callback whose header does not match the session's token.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from pathlib import Path

from collectwise.settings import AdminSettings

log = logging.getLogger(__name__)

CSRF_COOKIE = "_csrf_token"
CSRF_HEADER = "X-CSRFToken"
CSRF_SESSION_KEY = "csrf"


def secret_key(settings: AdminSettings, key_file: Path) -> str:
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value()
    return _key_from_file(key_file)


def _key_from_file(path: Path) -> str:
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    # O_EXCL: two consoles starting at once must not each write (and use) a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    log.info("generated the console's session key in %s", path)
    return key


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(expected: str | None, sent: str | None) -> bool:
    return bool(expected and sent and hmac.compare_digest(expected, sent))
