"""What every part of the monitoring store shares: its engine, its input errors and the
small conversions between Python values and rows."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import CursorResult, Engine

from collectwise.errors import InvalidInputError, NotFoundError


class StoreInputError(InvalidInputError, ValueError):
    """A value the alert store will not keep; the message names the field."""


class RecordNotFound(NotFoundError, LookupError):  # noqa: N818 - reads as the condition
    """No pipeline run or retrain request with that id."""


class StoreBase:
    """The engine each table group's methods run on (MonitoringStore creates it)."""

    engine: Engine


def utc_now() -> datetime:
    return datetime.now(UTC)


def required(field: str, value: str | None) -> str:
    """The stripped value, or StoreInputError when it is missing or blank."""
    if value is None or not value.strip():
        raise StoreInputError(f"'{field}' is required and may not be blank")
    return value.strip()


def finite_or_none(value: float) -> float | None:
    """NaN and infinities are stored as null: a value the job could not compute."""
    number = float(value)
    return number if math.isfinite(number) else None


def inserted_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    if key is None:  # pragma: no cover - every table has an autoincrement key
        raise RuntimeError("the database returned no primary key")
    return int(key[0])
