"""Pipeline runs recorded around CLI stages, so system health can show what ran and how.

Recording is best effort: a pipeline stage must never fail because the monitoring database
is unreachable, so problems with the store are logged and the stage runs on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from monitoring.monitor_db.run_history import RunTracker

if TYPE_CHECKING:
    from monitoring.monitor_db import MonitoringStore

log = logging.getLogger(__name__)


@contextmanager
def recorded_run(stage: str, store: MonitoringStore | None = None) -> Iterator[RunTracker]:
    """Record `stage` as running, then succeeded or failed by how the block ends; the block
    may set the tracker's rows and message. Without a store, the settings' database is used.

    Typer ends a command with SystemExit (code 0 on success), so the exit code decides.
    """
    store, run_id = _start(stage, store)
    tracker = RunTracker(run_id if run_id is not None else -1)
    status = "failed"
    try:
        yield tracker
        status = "succeeded"
    except SystemExit as exc:
        status = "succeeded" if exc.code in (0, None) else "failed"
        tracker.message = None if status == "succeeded" else f"exit code {exc.code}"
        raise
    except BaseException as exc:
        tracker.message = f"{type(exc).__name__}: {exc}"[:2000]
        raise
    finally:
        if store is not None and run_id is not None:
            try:
                store.finish_run(run_id, status, tracker.rows, tracker.message)
            except Exception:
                log.warning("could not record the end of the %s run", stage, exc_info=True)


def _start(stage: str, store: MonitoringStore | None) -> tuple[MonitoringStore | None, int | None]:
    try:
        if store is None:
            from collectwise.settings import get_settings  # noqa: PLC0415
            from monitoring.monitor_db import MonitoringStore  # noqa: PLC0415

            store = MonitoringStore(get_settings().monitoring.database_url)
        return store, store.start_run(stage)
    except Exception:
        log.warning("could not record the start of the %s run", stage, exc_info=True)
        return None, None
