"""What an action in the console ended in, for the message shown and the audit row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["success", "warning", "danger", "info"]
_LEVELS: dict[str, Level] = {"ok": "success", "refused": "warning", "denied": "danger"}


@dataclass(frozen=True)
class Outcome:
    outcome: Literal["ok", "refused", "denied", "error"]
    message: str

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def level(self) -> Level:
        """The Bootstrap colour of the message."""
        return _LEVELS.get(self.outcome, "danger")


def ok(message: str) -> Outcome:
    return Outcome("ok", message)


def refused(message: str) -> Outcome:
    return Outcome("refused", message)


def error(message: str) -> Outcome:
    return Outcome("error", message)
