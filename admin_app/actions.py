"""The console's own audit trail: who did what, when, and how it ended.

Every action a person takes in the console (login, logout, promote, rollback, acknowledge,
resolve, rule and user edits, batch scoring) is one row, refused and failed attempts
included: a refused promotion is as much a part of the record as an accepted one. Rows
are append-only (triggers stop accidental updates and deletes); the scorer's hash-chained
log (serving.audit) stays the record of scores.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from admin_app.db import connect

Outcome = Literal["ok", "refused", "denied", "error"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "refused", "denied", "error")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS admin_actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        who TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        outcome TEXT NOT NULL,
        detail TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS admin_actions_who_at ON admin_actions (who, action, at)",
    """CREATE TRIGGER IF NOT EXISTS admin_actions_no_update BEFORE UPDATE ON admin_actions
       BEGIN SELECT RAISE(ABORT, 'the admin audit is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS admin_actions_no_delete BEFORE DELETE ON admin_actions
       BEGIN SELECT RAISE(ABORT, 'the admin audit is append-only'); END""",
)
_DETAIL_MAX = 4000


@dataclass(frozen=True)
class Action:
    id: int
    at: datetime
    who: str
    action: str
    target: str | None
    outcome: str
    detail: str | None


def _action(row: sqlite3.Row) -> Action:
    return Action(
        id=int(row["id"]),
        at=datetime.fromisoformat(row["at"]),
        who=row["who"],
        action=row["action"],
        target=row["target"],
        outcome=row["outcome"],
        detail=row["detail"],
    )


class ActionLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def record(
        self,
        who: str,
        action: str,
        outcome: Outcome,
        target: str | None = None,
        detail: str | None = None,
        at: datetime | None = None,
    ) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome: one of {list(OUTCOMES)}, got {outcome!r}")
        stamp = (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
        with connect(self.path, _SCHEMA) as conn, conn:
            conn.execute(
                "INSERT INTO admin_actions (at, who, action, target, outcome, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (stamp, who or "anonymous", action, target, outcome, (detail or "")[:_DETAIL_MAX]),
            )

    def recent(self, limit: int = 500) -> list[Action]:
        """Newest first."""
        with connect(self.path, _SCHEMA) as conn:
            rows = conn.execute(
                "SELECT * FROM admin_actions ORDER BY id DESC LIMIT ?", (int(limit),)
            ).fetchall()
        return [_action(r) for r in rows]

    def count_since(self, who: str, action: str, outcomes: Sequence[str], since: datetime) -> int:
        """How many `action` rows of `who` ended in one of `outcomes` since `since`."""
        marks = ", ".join("?" for _ in outcomes)
        with connect(self.path, _SCHEMA) as conn:
            row = conn.execute(
                "SELECT count(*) FROM admin_actions WHERE who = ? AND action = ? "
                f"AND outcome IN ({marks}) AND at >= ?",  # nosec B608  # only '?' placeholders are interpolated; values are bound
                (who, action, *outcomes, since.astimezone(UTC).isoformat(timespec="seconds")),
            ).fetchone()
        return int(row[0])

    def last(self, who: str, action: str, outcome: str) -> datetime | None:
        with connect(self.path, _SCHEMA) as conn:
            row = conn.execute(
                "SELECT at FROM admin_actions WHERE who = ? AND action = ? AND outcome = ? "
                "ORDER BY id DESC LIMIT 1",
                (who, action, outcome),
            ).fetchone()
        return None if row is None else datetime.fromisoformat(row["at"])
