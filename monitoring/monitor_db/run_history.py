"""Pipeline runs: when each stage started and how it ended, for system health."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from monitoring.monitor_db.base import (
    RecordNotFound,
    StoreBase,
    StoreInputError,
    inserted_id,
    required,
    utc_now,
)
from monitoring.monitor_db.schema import pipeline_runs

RUN_STATUSES = ("running", "succeeded", "failed")


@dataclass(frozen=True)
class PipelineRun:
    id: int
    stage: str
    started_at: datetime
    ended_at: datetime | None
    status: str
    rows: int | None
    message: str | None


@dataclass
class RunTracker:
    """Yielded by monitoring.pipeline_runs.recorded_run: set rows / message before the block
    ends."""

    id: int
    rows: int | None = None
    message: str | None = None


class RunHistory(StoreBase):
    """Read and write the pipeline_runs table."""

    def start_run(self, stage: str, at: datetime | None = None) -> int:
        stage = required("stage", stage)
        with self.engine.begin() as conn:
            result = conn.execute(
                pipeline_runs.insert().values(
                    stage=stage, started_at=at or utc_now(), status="running"
                )
            )
            return inserted_id(result)

    def finish_run(
        self,
        run_id: int,
        status: str,
        rows: int | None = None,
        message: str | None = None,
        at: datetime | None = None,
    ) -> None:
        if status not in RUN_STATUSES[1:]:
            raise StoreInputError(
                f"'status' must be one of {list(RUN_STATUSES[1:])}, got {status!r}"
            )
        with self.engine.begin() as conn:
            done = conn.execute(
                pipeline_runs.update()
                .where(pipeline_runs.c.id == run_id)
                .values(status=status, rows=rows, message=message, ended_at=at or utc_now())
            )
        if done.rowcount == 0:
            raise RecordNotFound(f"no pipeline run with id {run_id}")

    def list_runs(self, stage: str | None = None, limit: int = 50) -> list[PipelineRun]:
        """Newest first."""
        query = sa.select(pipeline_runs).order_by(
            pipeline_runs.c.started_at.desc(), pipeline_runs.c.id.desc()
        )
        if stage is not None:
            query = query.where(pipeline_runs.c.stage == stage)
        with self.engine.connect() as conn:
            return [
                PipelineRun(**{k: r[k] for k in PipelineRun.__dataclass_fields__})
                for r in conn.execute(query.limit(limit)).mappings()
            ]
