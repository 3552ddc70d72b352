"""The console's users: names, roles and scrypt password hashes in one SQLite file.

A user's `session_epoch` is part of the id kept in the session cookie (see auth.py): a new
password, a new role or a disabled account bumps it, so every session opened before ends
at its next request instead of living on until the cookie expires.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

from admin_app.db import connect
from admin_app.logic.roles import Role, check_password, check_role, check_username
from collectwise.errors import ConflictError, NotFoundError

log = logging.getLogger(__name__)

HASH_METHOD = "scrypt"


@cache
def _dummy_hash() -> str:
    """Checked against when a name is unknown, so a wrong name costs as long as a wrong
    password and the login page does not tell which names exist."""
    return generate_password_hash("not-a-real-password", method=HASH_METHOD)


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
        active INTEGER NOT NULL DEFAULT 1,
        session_epoch INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        last_login_at TEXT
    )""",
)
_COLUMNS = "name, role, active, session_epoch, created_at, updated_at, last_login_at"


class UserExists(ConflictError, ValueError):  # noqa: N818 - reads as the condition
    """A user with that name exists already."""


class UserNotFound(NotFoundError, LookupError):  # noqa: N818
    """No user has that name."""


@dataclass(frozen=True)
class UserRecord:
    name: str
    role: Role
    active: bool
    session_epoch: int
    created_at: str
    updated_at: str
    last_login_at: str | None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _record(row: sqlite3.Row) -> UserRecord:
    return UserRecord(
        name=row["name"],
        role=check_role(row["role"]),
        active=bool(row["active"]),
        session_epoch=int(row["session_epoch"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_login_at=row["last_login_at"],
    )


class UserStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def add(self, name: str, password: str, role: str) -> UserRecord:
        """A new active user; ValueError names the field that is wrong."""
        name = check_username(name)
        check_password(password, name)
        role = check_role(role)
        now = _now()
        digest = generate_password_hash(password, method=HASH_METHOD)
        with connect(self.path, _SCHEMA) as conn:
            try:
                with conn:
                    conn.execute(
                        "INSERT INTO users (name, password_hash, role, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (name, digest, role, now, now),
                    )
            except sqlite3.IntegrityError as exc:
                raise UserExists(f"user name: {name!r} exists already") from exc
        log.info("user %s added with role %s", name, role)
        return self.get(name)

    def get(self, name: str) -> UserRecord:
        with connect(self.path, _SCHEMA) as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM users WHERE name = ?", (name,)).fetchone()  # nosec B608  # _COLUMNS is a constant
        if row is None:
            raise UserNotFound(f"no user named {name!r}")
        return _record(row)

    def find(self, name: str) -> UserRecord | None:
        try:
            return self.get(name)
        except UserNotFound:
            return None

    def list(self) -> list[UserRecord]:
        with connect(self.path, _SCHEMA) as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM users ORDER BY name").fetchall()  # nosec B608  # _COLUMNS is a constant
        return [_record(r) for r in rows]

    def count_admins(self) -> int:
        with connect(self.path, _SCHEMA) as conn:
            row = conn.execute(
                "SELECT count(*) FROM users WHERE role = 'admin' AND active = 1"
            ).fetchone()
        return int(row[0])

    def authenticate(self, name: str, password: str) -> UserRecord | None:
        """The user when the name is active and the password matches, else None."""
        with connect(self.path, _SCHEMA) as conn:
            row = conn.execute(
                "SELECT password_hash, active FROM users WHERE name = ?", (name.strip(),)
            ).fetchone()
        if row is None:
            check_password_hash(_dummy_hash(), password)
            return None
        if not check_password_hash(row["password_hash"], password) or not row["active"]:
            return None
        self._update(name.strip(), "last_login_at = ?", (_now(),), bump=False)
        return self.get(name.strip())

    def set_password(self, name: str, password: str) -> UserRecord:
        check_password(password, name)
        digest = generate_password_hash(password, method=HASH_METHOD)
        return self._update(name, "password_hash = ?", (digest,))

    def set_role(self, name: str, role: str) -> UserRecord:
        return self._update(name, "role = ?", (check_role(role),))

    def set_active(self, name: str, active: bool) -> UserRecord:
        return self._update(name, "active = ?", (int(active),))

    def _update(
        self, name: str, assignment: str, values: tuple[object, ...], bump: bool = True
    ) -> UserRecord:
        # `assignment` is one of the constant fragments above, never user input.
        epoch = ", session_epoch = session_epoch + 1" if bump else ""
        with connect(self.path, _SCHEMA) as conn, conn:
            done = conn.execute(
                f"UPDATE users SET {assignment}, updated_at = ?{epoch} WHERE name = ?",  # nosec B608  # constant fragments; values are bound
                (*values, _now(), name),
            )
        if done.rowcount == 0:
            raise UserNotFound(f"no user named {name!r}")
        return self.get(name)
