"""Server-side sessions: the signed cookie only names a session, this table says it lives.

A signed Flask cookie is valid until it expires whatever the server thinks, so a copy saved
before /logout would keep working. Each sign-in therefore opens a row here under a random
id (the cookie carries the id; the table keeps only its SHA-256, so a copy of the database
names no live session), the guard asks for the row on every request, and /logout deletes
it: a replayed cookie then names nothing and is refused.

A session also ends here after `idle` without a request, the same sliding expiry the
cookie has; `seen_at` is rewritten at most once a minute, not on every request.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from datetime import timedelta
from pathlib import Path

from admin_app.db import connect

log = logging.getLogger(__name__)

_TOUCH_EVERY_S = 60.0
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS sessions (
        id_hash TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        started_at REAL NOT NULL,
        seen_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS sessions_seen ON sessions (seen_at)",
)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    def __init__(self, path: Path, idle: timedelta) -> None:
        self.path = Path(path)
        self.idle_s = idle.total_seconds()

    def start(self, name: str) -> str:
        """A new session of `name`; the id returned goes into the cookie only."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        with connect(self.path, _SCHEMA) as conn, conn:
            # Sessions left to expire (never logged out) go here, not on every request.
            conn.execute("DELETE FROM sessions WHERE seen_at < ?", (now - self.idle_s,))
            conn.execute(
                "INSERT INTO sessions (id_hash, name, started_at, seen_at) VALUES (?, ?, ?, ?)",
                (_digest(session_id), name, now, now),
            )
        return session_id

    def alive(self, session_id: str, name: str) -> bool:
        """True when the session is open, belongs to `name` and has not idled out."""
        if not session_id:
            return False
        now, key = time.time(), _digest(session_id)
        with connect(self.path, _SCHEMA) as conn:
            row = conn.execute(
                "SELECT name, seen_at FROM sessions WHERE id_hash = ?", (key,)
            ).fetchone()
            if row is None or row["name"] != name or row["seen_at"] < now - self.idle_s:
                return False
            if row["seen_at"] < now - _TOUCH_EVERY_S:
                with conn:
                    conn.execute("UPDATE sessions SET seen_at = ? WHERE id_hash = ?", (now, key))
        return True

    def end(self, session_id: str) -> None:
        with connect(self.path, _SCHEMA) as conn, conn:
            conn.execute("DELETE FROM sessions WHERE id_hash = ?", (_digest(session_id),))

    def count(self, name: str) -> int:
        with connect(self.path, _SCHEMA) as conn:
            row = conn.execute("SELECT count(*) FROM sessions WHERE name = ?", (name,)).fetchone()
        return int(row[0])
