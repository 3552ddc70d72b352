"""Heartbeats of the scheduled jobs: each job beats when a run succeeds, and the watchdog
compares the last beat with the interval the job's cron promises (a dead man's switch).

A job is watched from the moment it is scheduled as it is now (`registered_at`): one that
never beat is overdue an interval and the grace after that, like one that stopped beating.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from monitoring.monitor_db.base import StoreBase, required, utc_now
from monitoring.monitor_db.schema import heartbeats


@dataclass(frozen=True)
class Heartbeat:
    job: str
    cron: str
    interval_seconds: float
    active: bool
    registered_at: datetime
    last_beat_at: datetime | None
    last_run_id: int | None

    def deadline(self, grace: timedelta) -> datetime:
        """When the next beat is due at the latest: an interval and the grace after the last
        beat (or after the job was scheduled, if it beat before that or never)."""
        since = max(self.registered_at, self.last_beat_at or self.registered_at)
        return since + timedelta(seconds=self.interval_seconds) + grace

    def overdue_seconds(self, now: datetime, grace: timedelta) -> float:
        """Seconds past the deadline: positive when the job missed its window."""
        return (now - self.deadline(grace)).total_seconds()


@dataclass(frozen=True)
class Watch:
    """What the schedule expects of one job."""

    job: str
    cron: str
    interval_seconds: float


class HeartbeatBook(StoreBase):
    """Read and write the heartbeats table."""

    def watch(self, expected: Iterable[Watch], at: datetime | None = None) -> None:
        """Watch exactly these jobs: new ones, a changed cron or a job back on the schedule
        start their watch now; every other job stops being watched (its history stays)."""
        at = at or utc_now()
        wanted = {w.job: w for w in expected}
        current = {h.job: h for h in self.list_heartbeats()}
        with self.engine.begin() as conn:
            for job, watch in wanted.items():
                held = current.get(job)
                if held is None:
                    self._insert(conn, watch, at)
                    continue
                values: dict[str, object] = {
                    "cron": watch.cron,
                    "interval_seconds": watch.interval_seconds,
                    "active": True,
                }
                if not held.active or held.cron != watch.cron:
                    values["registered_at"] = at
                conn.execute(heartbeats.update().where(heartbeats.c.job == job).values(**values))
            gone = [job for job, held in current.items() if held.active and job not in wanted]
            if gone:
                conn.execute(
                    heartbeats.update().where(heartbeats.c.job.in_(gone)).values(active=False)
                )

    @staticmethod
    def _insert(conn: sa.Connection, watch: Watch, at: datetime) -> None:
        conn.execute(
            heartbeats.insert().values(
                job=required("job", watch.job),
                cron=watch.cron,
                interval_seconds=watch.interval_seconds,
                active=True,
                registered_at=at,
            )
        )

    def beat(self, watch: Watch, run_id: int | None = None, at: datetime | None = None) -> None:
        """A run of the job succeeded. A job beating before anything watched it (a run-once
        with no scheduler yet) gets its row, watched from now."""
        at = at or utc_now()
        values = {"last_beat_at": at, "last_run_id": run_id}
        update = heartbeats.update().where(heartbeats.c.job == watch.job).values(**values)
        with self.engine.begin() as conn:
            if conn.execute(update).rowcount:
                return
        try:
            with self.engine.begin() as conn:
                self._insert(conn, watch, at)
                conn.execute(update)
        except IntegrityError:  # a concurrent first beat inserted it; beat on that row
            with self.engine.begin() as conn:
                conn.execute(update)

    def list_heartbeats(self, active_only: bool = False) -> list[Heartbeat]:
        query = sa.select(heartbeats).order_by(heartbeats.c.job)
        if active_only:
            query = query.where(heartbeats.c.active.is_(sa.true()))
        with self.engine.connect() as conn:
            return [
                Heartbeat(**{k: r[k] for k in Heartbeat.__dataclass_fields__})
                for r in conn.execute(query).mappings()
            ]
