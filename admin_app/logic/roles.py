"""Roles and what each may do: the one table every page and callback asks.

Roles are ordered (viewer < operator < admin) and each action names the least role that
may do it, so "may this user do X" is one comparison and the table reads as a policy.
"""

from __future__ import annotations

import re
from typing import Final, Literal

from collectwise.errors import ForbiddenError, InvalidInputError

Role = Literal["viewer", "operator", "admin"]
ROLES: Final[tuple[Role, ...]] = ("viewer", "operator", "admin")
_RANK: Final[dict[str, int]] = {role: rank for rank, role in enumerate(ROLES)}

# Action -> the least role allowed to do it.
ACTIONS: Final[dict[str, Role]] = {
    "read": "viewer",
    "score_account": "viewer",
    "ack_alert": "operator",
    "resolve_alert": "operator",
    "batch_score": "operator",
    "promote": "admin",
    "rollback": "admin",
    "edit_rules": "admin",
    "edit_users": "admin",
}

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}$")
MIN_PASSWORD_LENGTH = 10


class PermissionDenied(ForbiddenError, PermissionError):  # noqa: N818 - reads as the condition
    """The signed-in user's role does not allow the action."""


def can(role: str | None, action: str) -> bool:
    """True when `role` may do `action`; unknown roles and actions may do nothing."""
    if role is None or role not in _RANK or action not in ACTIONS:
        return False
    return _RANK[role] >= _RANK[ACTIONS[action]]


def at_least(role: str | None, least: Role) -> bool:
    return role in _RANK and _RANK[str(role)] >= _RANK[least]


class UserInputError(InvalidInputError, ValueError):
    """A user name, password or role the console will not accept; the message says why."""


def check_username(name: str) -> str:
    """The name, stripped; ValueError says what a name may contain."""
    name = name.strip()
    if not USERNAME.match(name):
        raise UserInputError(
            "user name: 2-64 characters, letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str, name: str | None = None) -> str:
    """ValueError unless the password is long enough and not the user name."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserInputError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    if name and password.strip().lower() == name.strip().lower():
        raise UserInputError("password: may not be the user name")
    return password


def check_role(role: str) -> Role:
    if role not in _RANK:
        raise UserInputError(f"role: one of {', '.join(ROLES)}, got {role!r}")
    return ROLES[_RANK[role]]
