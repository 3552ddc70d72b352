"""Retraining requests: what an alert asked to retrain, the command run and how it ended."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from monitoring.monitor_db.base import (
    RecordNotFound,
    StoreBase,
    StoreInputError,
    inserted_id,
    utc_now,
)
from monitoring.monitor_db.schema import retrain_requests


@dataclass(frozen=True)
class RetrainRequest:
    id: int
    alert_id: int | None
    reason: str
    command: list[str]
    started_at: datetime
    ended_at: datetime | None
    status: str
    exit_code: int | None
    registered_version: int | None
    log_tail: str | None


class RetrainHistory(StoreBase):
    """Read and write the retrain_requests table."""

    def start_retrain(self, alert_id: int | None, reason: str, command: Sequence[str]) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                retrain_requests.insert().values(
                    alert_id=alert_id,
                    reason=reason,
                    command=json.dumps(list(command)),
                    started_at=utc_now(),
                    status="running",
                )
            )
            return inserted_id(result)

    def finish_retrain(self, request_id: int, **values: Any) -> None:
        """Set status, exit_code, registered_version, log_tail; ended_at is now."""
        allowed = {"status", "exit_code", "registered_version", "log_tail"}
        if set(values) - allowed:
            raise StoreInputError(f"unknown retrain fields: {sorted(set(values) - allowed)}")
        with self.engine.begin() as conn:
            conn.execute(
                retrain_requests.update()
                .where(retrain_requests.c.id == request_id)
                .values(**values, ended_at=utc_now())
            )

    def list_retrains(self, limit: int = 50, status: str | None = None) -> list[RetrainRequest]:
        """Newest first."""
        query = sa.select(retrain_requests).order_by(retrain_requests.c.id.desc())
        if status is not None:
            query = query.where(retrain_requests.c.status == status)
        with self.engine.connect() as conn:
            return [_retrain(r) for r in conn.execute(query.limit(limit)).mappings()]

    def get_retrain(self, request_id: int) -> RetrainRequest:
        query = sa.select(retrain_requests).where(retrain_requests.c.id == request_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise RecordNotFound(f"no retrain request with id {request_id}")
        return _retrain(row)


def _retrain(row: RowMapping) -> RetrainRequest:
    values = {k: row[k] for k in RetrainRequest.__dataclass_fields__}
    values["command"] = json.loads(values["command"])
    return RetrainRequest(**values)
