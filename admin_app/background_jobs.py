"""Batch scoring jobs: a thread per upload, progress the page polls, a file to download.

A job runs `work(report)` on its own thread; `report(fraction, message)` moves its progress.
Results are files under <batch dir>/<job id>/, named by a random id, and only the person
who started a job (or an admin) may download them (auth.py checks the owner).
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
RESULT_FILE = "scores.csv"

Report = Callable[[float, str], None]
Work = Callable[[Report], "JobResult"]


@dataclass(frozen=True)
class JobResult:
    rows: int
    summary: str


@dataclass(frozen=True)
class Job:
    id: str
    owner: str
    name: str
    created: datetime
    status: str = "queued"
    progress: float = 0.0
    message: str = "waiting to start"
    rows: int | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")


class BatchJobs:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def workdir(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / job_id

    def result_path(self, job_id: str) -> Path:
        return self.workdir(job_id) / RESULT_FILE

    def new(self, owner: str, name: str) -> Job:
        job = Job(uuid.uuid4().hex, owner, name, datetime.now(UTC))
        self.workdir(job.id).mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._jobs[job.id] = job
        return job

    def start(self, job: Job, work: Work, on_end: Callable[[Job], None] | None = None) -> None:
        thread = threading.Thread(
            target=self._run, args=(job.id, work, on_end), name=f"batch-{job.id[:8]}", daemon=True
        )
        thread.start()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _set(self, job_id: str, **changes: object) -> Job:
        with self._lock:
            job = replace(self._jobs[job_id], **changes)  # type: ignore[arg-type]
            self._jobs[job_id] = job
            return job

    def _run(self, job_id: str, work: Work, on_end: Callable[[Job], None] | None) -> None:
        def report(fraction: float, message: str) -> None:
            self._set(job_id, progress=max(0.0, min(1.0, fraction)), message=message)

        running = self._set(job_id, status="running", message="started")
        try:
            result = work(report)
        except Exception as exc:
            # The message is shown to the person who uploaded: say what was wrong, not where.
            log.warning("batch job %s failed: %s", job_id, exc)
            final = replace(running, status="failed", message=str(exc) or type(exc).__name__)
        else:
            final = replace(
                running, status="done", progress=1.0, message=result.summary, rows=result.rows
            )
        # on_end (the audit row) runs before the end is published, so whoever sees the job
        # finished also finds it in the audit trail.
        if on_end is not None:
            try:
                on_end(final)
            except Exception:
                log.exception("recording the end of batch job %s failed", job_id)
        with self._lock:
            self._jobs[job_id] = final
