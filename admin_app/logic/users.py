"""The users page: rows, and the changes that would lock everyone out."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def user_rows(records: Iterable[Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": r.name,
            "role": r.role,
            "active": r.active,
            "created_at": r.created_at,
            "last_login_at": r.last_login_at or "never",
        }
        for r in records
    ]


def check_change(
    actor: str, target: Any, role: str | None, active: bool | None, active_admins: int
) -> None:
    """ValueError when the change would leave no active admin or lock the actor out."""
    if target is None:
        raise ValueError("choose a user")
    losing_admin = (
        target.role == "admin"
        and target.active
        and ((role is not None and role != "admin") or active is False)
    )
    if losing_admin and active_admins <= 1:
        raise ValueError(f"{target.name} is the last active admin: add another admin first")
    if target.name == actor and active is False:
        raise ValueError("you cannot disable your own account")
