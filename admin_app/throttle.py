"""Failed sign-ins: a per-client throttle first, an account lockout only past what one client
can reach.

The lockout used to count failures per user name only, so anyone could lock `demo` out by
failing its password five times. Now:

- Per client. A client address (the socket's peer, or the address `trusted_proxies`
  reverse proxies put in X-Forwarded-For) with `max_failed_logins_per_client` failures
  within `lockout_minutes` is refused with 429 for every name, before any password is
  checked, until its failures age out of the window. This is the control against guessing
  from one place, and it locks nobody else out.
- Per account. A name is locked for everyone after `max_failed_logins` refused sign-ins of
  it within the window (counted since its last good sign-in). Settings require that number
  to exceed the per-client limit, and a throttled client's attempts are refused before the
  password check and not counted as failures, so within any window one client adds at most
  its own limit: it alone can never lock another person's account. Locking then takes
  failures from several addresses, a distributed guess at one account, where locking it for
  a while is the lesser harm.

Per-client failures live in the users database (table login_failures), so a restart does
not reset them and every worker sees the same counts; rows a day old are pruned. The audit
trail (actions.py) keeps the permanent record of every attempt, with its address.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from admin_app.actions import ActionLog
from admin_app.db import connect
from collectwise.settings import AdminSettings

log = logging.getLogger(__name__)

_KEEP_S = 24 * 3600.0
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS login_failures (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        client TEXT NOT NULL,
        name TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS login_failures_client_at ON login_failures (client, at)",
)


@dataclass(frozen=True)
class Refusal:
    message: str
    retry_after_s: int
    reason: str


class LoginThrottle:
    def __init__(self, path: Path, actions: ActionLog, settings: AdminSettings) -> None:
        self.path = Path(path)
        self.actions = actions
        self.per_client = settings.max_failed_logins_per_client
        self.per_account = settings.max_failed_logins
        self.window = timedelta(minutes=settings.lockout_minutes)
        # Seconds since the epoch; tests move it to age failures out of the window.
        self.clock: Callable[[], float] = time.time

    def refusal(self, client: str, name: str) -> Refusal | None:
        """Why this attempt is refused before its password is checked, or None."""
        now = self.clock()
        oldest = self._oldest_of_last(client, self.per_client, now - self.window.total_seconds())
        if oldest is not None:
            wait = max(1, math.ceil(oldest + self.window.total_seconds() - now))
            minutes = math.ceil(wait / 60)
            return Refusal(
                f"Too many failed sign-ins from your address. Try again in {minutes} min.",
                wait,
                f"client {client} throttled",
            )
        if locked_out(self.actions, name, self.per_account, self.window):
            return Refusal(
                "Too many failed sign-ins for this account. Try again later.",
                int(self.window.total_seconds()),
                "account locked: too many failed attempts",
            )
        return None

    def failed(self, client: str, name: str) -> None:
        now = self.clock()
        with connect(self.path, _SCHEMA) as conn, conn:
            conn.execute("DELETE FROM login_failures WHERE at < ?", (now - _KEEP_S,))
            conn.execute(
                "INSERT INTO login_failures (at, client, name) VALUES (?, ?, ?)",
                (now, client, name[:64]),
            )

    def _oldest_of_last(self, client: str, limit: int, since: float) -> float | None:
        """When the client has `limit` failures since `since`: the time of the oldest of
        its last `limit`, which is when the throttle lifts (minus the window)."""
        with connect(self.path, _SCHEMA) as conn:
            rows = conn.execute(
                "SELECT at FROM login_failures WHERE client = ? AND at >= ? "
                "ORDER BY at DESC LIMIT ?",
                (client, since, limit),
            ).fetchall()
        return float(rows[-1]["at"]) if len(rows) >= limit else None


def locked_out(actions: ActionLog, name: str, limit: int, window: timedelta) -> bool:
    """Too many refused logins of `name` since the window began or its last good login."""
    if not name:
        return False
    since = datetime.now(UTC) - window
    last_ok = actions.last(name, "login", "ok")
    if last_ok is not None and last_ok > since:
        since = last_ok
    return actions.count_since(name, "login", ("refused",), since) >= limit
