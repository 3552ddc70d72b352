"""No scored decision without its audit record: the scorer's recorder.

`record(events)` returns only once the events are committed to the hash-chained audit log
(serving.audit), with their served-log rows queued in the same transaction (the outbox). A
request whose events cannot be committed within `timeout` gets AuditUnavailableError (HTTP
503): the scorer never answers a score that has no record. A commit that ends after its
request gave up leaves a record of a score nobody received; that is the safe side.

Group commit: concurrent requests share one transaction. A request that finds no commit under
way leads: it takes what is waiting (up to `max_batch` events), commits it, and wakes the
others; requests that arrive meanwhile wait, and the next of them leads the next group. One
fsync then covers a whole group, so the cost per request falls as the load rises, and a lone
request commits on its own thread without waiting for another.

The served-features log stays asynchronous but loses nothing that was answered: a background
thread writes this process's committed events into parquet parts every `flush_seconds`, and
deletes their rows from the outbox once the part is on disk. It takes the events from memory
(decoding the outbox costs as much again as writing it); only when that backlog outgrows
`max_backlog` events, or a write failed, does it read them back from the outbox.

A process that dies before writing its part leaves its rows in the outbox. Each recorder
holds a lock file named by its owner id (flock: the kernel drops it when the process dies,
SIGKILL included), and every cycle takes over the rows of owners whose lock nobody holds. A
part written just before a crash, but not yet released from the outbox, would be written
twice: the served log carries each row's audit seq, and rows taken over are checked against
the parts first, so each lands once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from collectwise.errors import UnavailableError
from serving.audit import AuditLog, ChainWriter, Entry, OutboxRow, Synchronous, event_content
from serving.events import ScoreEvent
from serving.servedlog import ServedLogWriter, event_from_payload, logged_seqs, served_payload

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 30.0
_ERROR_LOG_EVERY_S = 60.0
# Outbox rows decoded and converted to Arrow at a time: a few thousand at once would hold the
# GIL for tens of milliseconds and stall the requests of the same process.
_CONVERT_ROWS = 250
# A part cannot hold a row scored after the part was written; this margin covers clock steps.
_CLOCK_SLACK = timedelta(minutes=10)
# Events committed but not yet written to parquet that are kept in memory; beyond this the
# background thread reads them back from the outbox instead.
_MAX_BACKLOG = 50_000
# Between two served-log flushes, committed events are handed to the parquet writer this often.
_HAND_SECONDS = 0.25
# Rows taken over from a dead owner are kept under "<owner>.<this suffix>": still covered by
# this process's lock, and apart from its own rows (only these need the duplicate check).
_TAKEN = "taken"


class AuditUnavailableError(UnavailableError):
    """The score's audit record could not be committed, so the score is not returned (503)."""

    kind = "audit_unavailable"


@dataclass(frozen=True)
class RecorderStats:
    """What /metrics and the tests read."""

    waiting: int  # requests waiting for a group commit
    written: int  # events committed to the audit log by this process
    commits: int  # transactions those took (written / commits = mean group size)
    refused: int  # events whose request got 503 because they could not be committed
    served_rows: int  # rows this process wrote to the parquet log
    outbox: int  # rows of this process committed and not yet released from the outbox
    failures: int  # failed commits and failed background steps
    last_error: str | None
    running: bool


class _Ticket:
    """One request's events on their way into a group commit."""

    __slots__ = ("done", "entries", "error", "events")

    def __init__(self, events: Sequence[ScoreEvent]) -> None:
        self.events = events
        self.entries = [Entry(event_content(e), served_payload(e)) for e in events]
        self.done = False
        self.error: BaseException | None = None


# --------------------------------------------------------------------------- owner locks


def lock_dir(audit_path: Path) -> Path:
    """Where the recorders writing to one audit log keep their lock files."""
    return audit_path.parent / f"{audit_path.name}-writers"


def _lock_path(directory: Path, owner: str) -> Path:
    return directory / f"{owner.split('.', maxsplit=1)[0]}.lock"


class OwnerLock:
    """A recorder's claim on its outbox rows: a lock file held with flock while it lives."""

    def __init__(self, directory: Path, owner: str) -> None:
        self.path = _lock_path(directory, owner)
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Locked before it gets its name, so no other process ever finds the name unlocked.
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(temporary, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(temporary, self.path)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def owner_alive(directory: Path, owner: str) -> bool:
    """Whether a live process holds `owner`'s lock; a dead owner's lock file is removed."""
    path = _lock_path(directory, owner)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        path.unlink(missing_ok=True)
        return False
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the recorder


class Recorder:
    """One per process: start() before the first request, close() on shutdown."""

    def __init__(
        self,
        audit: AuditLog,
        served: ServedLogWriter,
        *,
        synchronous: Synchronous = "full",
        timeout: float = 5.0,
        group_wait: float = 0.0,
        max_batch: int = 1000,
        flush_seconds: float = 5.0,
        flush_rows: int = 5000,
        max_backlog: int = _MAX_BACKLOG,
    ) -> None:
        self._audit = audit
        self._served = served
        self._synchronous: Synchronous = synchronous
        self._timeout = timeout
        self._group_wait = group_wait
        self._max_batch = max_batch
        self._flush_seconds = flush_seconds
        self._flush_rows = flush_rows
        self._max_backlog = max_backlog
        self.owner = uuid.uuid4().hex[:16]
        self._locks = lock_dir(audit.path)
        self._lock = OwnerLock(self._locks, self.owner)
        self._writer: ChainWriter | None = None
        self._cond = threading.Condition()
        self._waiting: deque[_Ticket] = deque()
        self._leading = False
        self._state = "new"
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        # Committed (seq, event) pairs for the served log; `_resync`: read the outbox instead.
        self._fresh: list[tuple[int, ScoreEvent]] = []
        self._resync = False
        # Background bookkeeping: own rows handed to the parquet writer / released up to.
        self._handed = 0
        self._released = 0
        self._released_rows = 0
        self._handed_rows = 0
        self._written = 0
        self._commits = 0
        self._refused = 0
        self._failures = 0
        self._streak = 0
        self._last_error: str | None = None
        self._last_error_log = -_ERROR_LOG_EVERY_S

    # ------------------------------------------------------------------ request side

    def record(self, events: Sequence[ScoreEvent]) -> None:
        """Return once `events` are committed; raise AuditUnavailableError if they are not."""
        if not events:
            return
        ticket = _Ticket(events)
        deadline = time.monotonic() + self._timeout
        with self._cond:
            if self._state != "running":
                ticket.error = RuntimeError(f"the recorder is {self._state}, not running")
                ticket.done = True
            else:
                self._waiting.append(ticket)
            while not ticket.done:
                if not self._leading:
                    self._lead()
                else:
                    self._wait(ticket, deadline)
            if ticket.error is not None:
                self._refused += len(events)
        if ticket.error is not None:
            raise AuditUnavailableError(
                f"the audit log could not record the score, so it is not returned: "
                f"{type(ticket.error).__name__}: {ticket.error}"
            ) from ticket.error

    def _wait(self, ticket: _Ticket, deadline: float) -> None:
        """Wait for the group under way (lock held); give up once the deadline has passed."""
        now = time.monotonic()
        if now < deadline:
            self._cond.wait(deadline - now)
        elif ticket in self._waiting:
            # No group has taken it yet: withdraw it, so it is never committed.
            self._waiting.remove(ticket)
            ticket.done = True
            ticket.error = TimeoutError(f"no commit within {self._timeout:g}s")
        elif now < deadline + self._timeout:
            # Its group is being committed: that ends within the writer's busy timeout.
            self._cond.wait(deadline + self._timeout - now)
        else:
            ticket.done = True
            ticket.error = TimeoutError(f"its commit did not end within {2 * self._timeout:g}s")

    def _lead(self) -> None:
        """Commit one group (lock held on entry and exit; released while committing)."""
        self._leading = True
        group: list[_Ticket] = []
        error: BaseException | None = RuntimeError("the commit was interrupted")
        try:
            if self._group_wait > 0:
                self._cond.wait(self._group_wait)  # others join the queue meanwhile
            group = self._take()
            self._cond.release()
            try:
                self._commit(group)
                error = None
            except Exception as exc:
                error = exc
                self._fail("committing to the audit log", exc)
            finally:
                self._cond.acquire()
        finally:
            for ticket in group:
                ticket.done, ticket.error = True, error
            self._leading = False
            self._cond.notify_all()

    def _take(self) -> list[_Ticket]:
        group: list[_Ticket] = []
        size = 0
        while self._waiting:
            entries = len(self._waiting[0].entries)
            if group and size + entries > self._max_batch:
                break
            group.append(self._waiting.popleft())
            size += entries
        return group

    def _commit(self, group: list[_Ticket]) -> None:
        """Called by the leader without the lock held."""
        if self._writer is None:
            raise RuntimeError("the recorder was not started")
        entries = [entry for ticket in group for entry in ticket.entries]
        seqs = self._writer.append(entries, self.owner)
        self._written += len(entries)
        self._commits += 1
        events = [event for ticket in group for event in ticket.events]
        with self._cond:
            self._remember(list(zip(seqs, events, strict=True)))

    def _remember(self, pairs: list[tuple[int, ScoreEvent]]) -> None:
        """Keep committed events for the served log (lock held), up to the backlog bound."""
        if self._resync:
            return
        if len(self._fresh) + len(pairs) > self._max_backlog:
            log.warning(
                "the served log is %d events behind: they are read back from the outbox",
                len(self._fresh) + len(pairs),
            )
            self._fresh, self._resync = [], True
            return
        self._fresh.extend(pairs)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Create the log if new, take this process's lock, start the background thread."""
        with self._cond:
            if self._state == "closed":
                raise RuntimeError("a closed recorder cannot start again")
            if self._state == "running":
                return
            self._writer = self._audit.writer(self._synchronous)
            self._lock.acquire()
            self._state = "running"
        self._thread = threading.Thread(target=self._run, name="collectwise-recorder", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Refuse new records, finish the commit under way, move the outbox into parquet."""
        with self._cond:
            self._state = "closed"
            # uvicorn lets requests finish before shutdown, so none should wait here; any
            # that still does is refused rather than committed behind the closing writer.
            while self._waiting:
                ticket = self._waiting.popleft()
                ticket.done, ticket.error = True, RuntimeError("the scorer is shutting down")
            self._cond.notify_all()
            while self._leading:
                self._cond.wait()
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                # Keep the lock: no one may take these rows over while the thread may still
                # write them. The kernel releases it when the process exits.
                log.error(
                    "recorder did not finish within %.1fs; its outbox rows are written by the "
                    "next scorer to start",
                    timeout,
                )
                return
        if self._writer is not None:
            self._writer.close()
        self._lock.release()

    @property
    def dropped(self) -> int:
        """Events not recorded: their requests got 503 instead of a score."""
        return self._refused

    def stats(self) -> RecorderStats:
        with self._cond:
            waiting = len(self._waiting)
        return RecorderStats(
            waiting=waiting,
            written=self._written,
            commits=self._commits,
            refused=self._refused,
            served_rows=self._served.rows_written,
            outbox=self._written - self._released_rows,
            failures=self._failures,
            last_error=self._last_error,
            running=self._thread is not None and self._thread.is_alive(),
        )

    # ------------------------------------------------------------------ background thread

    def _run(self) -> None:
        # The first cycle runs at once: a restarted scorer writes what its predecessor left.
        next_cycle = 0.0
        while True:
            stopping = self._stop.is_set()
            if stopping or time.monotonic() >= next_cycle:
                ok = self._step(self._cycle)
                next_cycle = time.monotonic() + (self._flush_seconds if ok else self._backoff())
            else:
                # Events become Arrow rows a few at a time between the cycles: all of a
                # cycle's at once held the GIL long enough to stall a batch request by
                # hundreds of milliseconds.
                self._step(self._hand_fresh)
            if stopping:
                return
            self._stop.wait(max(0.0, min(_HAND_SECONDS, next_cycle - time.monotonic())))

    def _cycle(self) -> None:
        # What was handed to the parquet writer before is on disk first (a failed flush is
        # retried here), so no row is ever handed twice.
        self._served.flush()
        self._release_handed()
        self._take_over()
        self._write_taken()
        self._hand_fresh()
        self._served.flush()
        self._release_handed()
        self._audit.checkpoint()

    def _release_handed(self) -> None:
        if self._handed > self._released:
            self._audit.release_outbox(self.owner, self._handed)
            self._released = self._handed
            self._released_rows = self._handed_rows

    def _take_over(self) -> None:
        """Claim the outbox rows of every owner whose process is gone."""
        mine = {self.owner, f"{self.owner}.{_TAKEN}"}
        for owner in sorted(self._audit.outbox_owners() - mine):
            if owner_alive(self._locks, owner):
                continue
            claimed = self._audit.claim_outbox(owner, f"{self.owner}.{_TAKEN}")
            if claimed:
                log.warning(
                    "took over %d served-log row(s) of scorer process %s, which ended without "
                    "writing them",
                    len(claimed),
                    owner,
                )

    def _hand_fresh(self) -> None:
        """Hand this process's newly committed events to the parquet writer."""
        with self._cond:
            resync, self._resync = self._resync, False
            fresh, self._fresh = self._fresh, []
        try:
            if resync:
                self._drain_outbox()
            self._hand_own([(seq, event) for seq, event in fresh if seq > self._handed])
        except Exception:
            with self._cond:  # what was not handed over is read back from the outbox
                self._fresh, self._resync = [], True
            raise

    def _drain_outbox(self) -> None:
        while True:
            rows = self._audit.outbox(self.owner, self._flush_rows, after=self._handed)
            if not rows:
                return
            for start in range(0, len(rows), _CONVERT_ROWS):
                chunk = rows[start : start + _CONVERT_ROWS]
                self._hand_own([(r.seq, event_from_payload(r.payload)) for r in chunk])
            self._served.flush()
            self._release_handed()

    def _hand_own(self, pairs: Sequence[tuple[int, ScoreEvent]]) -> None:
        """Into the parquet writer in small chunks, the GIL given up between them; `_handed`
        moves with each chunk, so a failure never hands a row twice."""
        for start in range(0, len(pairs), _CONVERT_ROWS):
            chunk = pairs[start : start + _CONVERT_ROWS]
            self._served.write([event for _, event in chunk], [seq for seq, _ in chunk])
            self._handed, self._handed_rows = chunk[-1][0], self._handed_rows + len(chunk)
            time.sleep(0)

    def _write_taken(self) -> None:
        """Write the rows taken over from dead processes to parquet and release them,
        skipping those a part already holds (the dead process wrote it, or this one did
        before a failed release)."""
        owner = f"{self.owner}.{_TAKEN}"
        while True:
            rows = self._audit.outbox(owner, self._flush_rows)
            if not rows:
                return
            since = min(datetime.fromisoformat(r.scored_at) for r in rows) - _CLOCK_SLACK
            present = logged_seqs(self._served.directory, {r.seq for r in rows}, since)
            self._hand([r for r in rows if r.seq not in present])
            self._served.flush()
            self._audit.release_outbox(owner, rows[-1].seq)

    def _hand(self, rows: Sequence[OutboxRow]) -> None:
        for start in range(0, len(rows), _CONVERT_ROWS):
            chunk = rows[start : start + _CONVERT_ROWS]
            self._served.write(
                [event_from_payload(r.payload) for r in chunk], [r.seq for r in chunk]
            )
            time.sleep(0)

    def _step(self, step: Callable[[], None]) -> bool:
        try:
            step()
        except Exception as exc:
            self._streak += 1
            self._fail("writing the served log", exc)
            return False
        self._streak = 0
        return True

    def _fail(self, what: str, exc: Exception) -> None:
        """Counted and kept for /metrics; logged at once, then at most once a minute."""
        self._failures += 1
        self._last_error = f"{what}: {type(exc).__name__}: {exc}"
        now = time.monotonic()
        if now - self._last_error_log >= _ERROR_LOG_EVERY_S:
            self._last_error_log = now
            log.error(
                "recorder: %s failed (%d failures so far)", what, self._failures, exc_info=exc
            )

    def _backoff(self) -> float:
        return min(self._flush_seconds * 2 ** max(self._streak - 1, 0), _MAX_BACKOFF_S)
