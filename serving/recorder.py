"""Records score events off the request path: a queue and one background writer thread.

`record()` only enqueues (never blocks a request); the thread appends what has queued to the
audit log and the served-features log in batches. Once an event arrives the thread collects
for `batch_seconds` (or up to `max_batch`) before it writes: one SQLite transaction per
event would cost each request milliseconds of CPU on the same cores. When the writers fall
behind and the queue fills, events are dropped, counted in `dropped` and warned about (at
most once a minute), never silently. A failed write is logged and retried with backoff;
while it keeps failing the thread takes nothing new, so memory stays bounded by the queue.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from serving.audit import AuditLog
from serving.events import ScoreEvent
from serving.servedlog import ServedLogWriter

log = logging.getLogger(__name__)

_DROP_WARNING_EVERY_S = 60.0
_MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class RecorderStats:
    """What /metrics shows: queue depth, events written (audit log) and dropped."""

    queued: int
    written: int
    dropped: int
    served_rows: int
    served_buffered: int
    failures: int
    last_error: str | None
    running: bool


class Recorder:
    """One per process; start() after the app starts, close() on shutdown (it drains)."""

    def __init__(
        self,
        audit: AuditLog,
        served: ServedLogWriter,
        flush_seconds: float = 1.0,
        max_queue: int = 100_000,
        max_batch: int = 250,
        batch_seconds: float = 0.25,
    ) -> None:
        self._audit = audit
        self._served = served
        self._flush_seconds = flush_seconds
        self._batch_seconds = min(batch_seconds, flush_seconds)
        self._max_batch = max_batch
        # None is the wake-up sentinel close() sends; it is never written.
        self._queue: queue.Queue[ScoreEvent | None] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._dropped = 0
        self._last_drop_warning = -_DROP_WARNING_EVERY_S
        self._written = 0
        self._failures = 0
        self._streak = 0
        self._last_error: str | None = None
        self._audit_pending: list[ScoreEvent] = []
        self._served_pending: list[ScoreEvent] = []
        self._served_unflushed = False

    # ------------------------------------------------------------------ request side

    def record(self, events: Sequence[ScoreEvent]) -> None:
        """Enqueue without blocking; what does not fit is counted as dropped."""
        if self._closed:
            self._drop(len(events), "the recorder is closed")
            return
        for index, event in enumerate(events):
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                self._drop(len(events) - index, "the queue is full")
                return

    def _drop(self, count: int, why: str) -> None:
        if count <= 0:
            return
        with self._lock:
            self._dropped += count
            total = self._dropped
            now = time.monotonic()
            warn = now - self._last_drop_warning >= _DROP_WARNING_EVERY_S
            if warn:
                self._last_drop_warning = now
        if warn:
            log.warning(
                "recorder dropped %d event(s): %s (%d dropped since start; the audit log "
                "misses them)",
                count,
                why,
                total,
            )

    @property
    def dropped(self) -> int:
        return self._dropped

    def stats(self) -> RecorderStats:
        return RecorderStats(
            queued=self._queue.qsize(),
            written=self._written,
            dropped=self._dropped,
            served_rows=self._served.rows_written,
            served_buffered=self._served.pending,
            failures=self._failures,
            last_error=self._last_error,
            running=self._thread is not None and self._thread.is_alive(),
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._closed:
            raise RuntimeError("a closed recorder cannot start again")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="collectwise-recorder", daemon=True
            )
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking events, write everything queued, flush the served log."""
        if self._thread is None:
            self.start()  # never started: the thread still drains, under the same timeout
        self._closed = True
        self._stop.set()
        # Wake the thread now rather than at its next poll; a full queue keeps it busy anyway.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        thread = self._thread
        if thread is None:  # start() above always sets it; this narrows the type
            return
        thread.join(timeout)
        if thread.is_alive():
            self._abandon.set()
            log.error(
                "recorder did not drain within %.1fs: %d queued and %d unwritten event(s) lost",
                timeout,
                self._queue.qsize(),
                len(self._audit_pending),
            )
            return
        # A request that raced close() may have enqueued after the thread's last look.
        self._drop(self._discard_queued(), "it arrived while the recorder was closing")

    def _discard_queued(self) -> int:
        count = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return count
            count += item is not None

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        while not self._abandon.is_set():
            if self._stop.is_set() and self._queue.empty() and self._settled():
                break
            self._cycle()
        self._final_flush()

    def _settled(self) -> bool:
        return not (self._audit_pending or self._served_pending or self._served_unflushed)

    def _cycle(self) -> None:
        if self._settled():
            batch = self._take()
            self._audit_pending, self._served_pending = batch, list(batch)
        if not self._settled() and not self._write_pending():
            self._abandon.wait(self._backoff())
            return
        try:
            self._served.flush_if_due()
        except Exception as exc:
            self._served_unflushed = True
            self._fail("served log", exc)

    def _take(self) -> list[ScoreEvent]:
        try:
            first = self._queue.get(timeout=self._flush_seconds)
        except queue.Empty:
            return []
        if first is None:
            return self._drain_now([])
        return self._collect([first], time.monotonic() + self._batch_seconds)

    def _collect(self, batch: list[ScoreEvent], until: float) -> list[ScoreEvent]:
        """Add what arrives before `until`; close()'s sentinel ends the wait early."""
        while len(batch) < self._max_batch and not self._stop.is_set():
            left = until - time.monotonic()
            if left <= 0:
                break
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if item is None:
                break
            batch.append(item)
        return self._drain_now(batch)

    def _drain_now(self, batch: list[ScoreEvent]) -> list[ScoreEvent]:
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                batch.append(item)
        return batch

    def _write_pending(self) -> bool:
        """Write what is pending to each sink; True when nothing is left failing."""
        ok = self._write_audit()
        if self._served_pending:
            # write() keeps the events buffered even when its flush fails, so a failure here
            # means "flush again", never "write these events again".
            events, self._served_pending = self._served_pending, []
            ok = self._served_call(lambda: self._served.write(events)) and ok
        elif self._served_unflushed:
            ok = self._served_call(self._served.flush) and ok
        if ok:
            self._streak = 0
        return ok

    def _write_audit(self) -> bool:
        if not self._audit_pending:
            return True
        try:
            self._audit.append(self._audit_pending)
        except Exception as exc:
            self._fail("audit log", exc)
            return False
        self._written += len(self._audit_pending)
        self._audit_pending = []
        return True

    def _served_call(self, call: Callable[[], object]) -> bool:
        try:
            call()
        except Exception as exc:
            self._served_unflushed = True
            self._fail("served log", exc)
            return False
        self._served_unflushed = False
        return True

    def _fail(self, sink: str, exc: Exception) -> None:
        self._failures += 1
        self._streak += 1
        self._last_error = f"{sink}: {type(exc).__name__}: {exc}"
        log.error(
            "recorder: writing the %s failed; retrying in %.1fs",
            sink,
            self._backoff(),
            exc_info=exc,
        )

    def _backoff(self) -> float:
        return min(self._flush_seconds * 2 ** max(self._streak - 1, 0), _MAX_BACKOFF_S)

    def _final_flush(self) -> None:
        try:
            self._served.flush()
            self._served_unflushed = False
        except Exception as exc:
            self._fail("served log", exc)
        if not self._settled():
            log.error(
                "recorder closed with %d event(s) not in the audit log and %d not in the "
                "served log",
                len(self._audit_pending),
                len(self._served_pending) + self._served.pending,
            )
