"""Metric history: every metric of every monitoring job run, one row each, for trends and
windowed alert rules."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from monitoring.job_result import JobResult
from monitoring.monitor_db.base import StoreBase, finite_or_none, utc_now
from monitoring.monitor_db.schema import metric_points


class MetricHistory(StoreBase):
    """Write and read the metric_points table."""

    def record_metrics(self, result: JobResult, at: datetime | None = None) -> int:
        """Store every metric of a job run (one row each); returns the number written."""
        recorded = at or utc_now()
        rows = [
            {
                "job": result.job,
                "name": name,
                "value": finite_or_none(value),
                "window_start": result.window_start,
                "window_end": result.window_end,
                "recorded_at": recorded,
                "labels": dict(result.labels),
            }
            for name, value in result.metrics.items()
        ]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(metric_points.insert(), rows)
        return len(rows)

    def metric_series(
        self,
        name: str,
        since: datetime | None = None,
        *,
        limit: int | None = None,
        job: str | None = None,
    ) -> pd.DataFrame:
        """Points of one metric, oldest first (the newest `limit` when given)."""
        query = sa.select(metric_points).where(metric_points.c.name == name)
        if since is not None:
            query = query.where(metric_points.c.window_end >= since)
        if job is not None:
            query = query.where(metric_points.c.job == job)
        query = query.order_by(metric_points.c.window_end.desc(), metric_points.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        columns = [c.name for c in metric_points.columns if c.name != "id"]
        frame = pd.DataFrame(rows[::-1], columns=["id", *columns])
        return frame.drop(columns="id").reset_index(drop=True)

    def metric_names(self) -> list[str]:
        query = sa.select(metric_points.c.name).distinct().order_by(metric_points.c.name)
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())
