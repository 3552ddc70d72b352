"""The append-only, hash-chained audit log of every scored account (SQLite).

Each row carries the hash of the row before it, and its own hash covers its seq, its content
and that link, so changing, inserting or deleting a row breaks the chain where it happened.
A one-row `audit_head` table, written in the same transaction as the rows, records the last
seq and hash, so a deleted tail shows too. What this cannot catch is someone who rewrites the
rows, every later hash and the head together: anchoring the head elsewhere (e.g. copying
`verify` output to a write-once store) closes that gap.

Several uvicorn workers may append at once: BEGIN IMMEDIATE takes SQLite's write lock before
the head is read, so appends serialise into one chain. Rows hold ids and scores, never
personal data, and the caller is an API key's name, never the key.

The scorer appends through a `ChainWriter` (one long-lived connection, synchronous=FULL by
default, so a commit is on disk before the request that waits for it answers; see
serving.recorder). In the same transaction it may put each event's served-log row into
`served_outbox`, keyed by the row's seq and the writing process (its owner): the outbox is a
queue, not part of the chain, that the owner empties into the parquet served log and that
another process takes over when the owner died (serving.recorder).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from serving.events import ScoreEvent, as_utc

log = logging.getLogger(__name__)

# prev_hash of seq 1: a fixed value, so the first row is chained like every other.
GENESIS_HASH = "0" * 64
# Seconds a writer waits for another process's write lock before failing (then retried).
_BUSY_TIMEOUT_S = 30.0
# SQLite's synchronous setting of the scorer's writer, by the name the settings use.
Synchronous = Literal["full", "normal"]
SYNCHRONOUS: dict[str, str] = {"full": "FULL", "normal": "NORMAL"}


def _text(value: Any) -> str:
    return str(value)


def _int(value: Any) -> int:
    return int(value)


def _flag(value: Any) -> bool:
    return bool(value)


def _real(value: Any) -> float | None:
    # SQLite stores NaN as NULL and JSON has no NaN, so non-finite scores are stored and
    # hashed as NULL: what is hashed is exactly what a later read returns.
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


# Content columns in table order, each with the normaliser that makes a value read back from
# SQLite hash the same as the value written (e.g. decision: True is stored as 1).
_CONTENT: dict[str, Callable[[Any], Any]] = {
    "request_id": _text,
    "account_id": _text,
    "scored_at": _text,
    "caller": _text,
    "route": _text,
    "model_name": _text,
    "model_version": _int,
    "model_alias": _text,
    "probability": _real,
    "band": _text,
    "decision": _flag,
    "challenger_version": _optional_int,
    "challenger_probability": _real,
    "degraded": _flag,
    "vector_json": _text,
}
_COLUMNS = ("seq", *_CONTENT, "prev_hash", "row_hash")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM audit_log"  # nosec B608  # constant column names only

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS audit_log (
        seq INTEGER PRIMARY KEY,
        request_id TEXT NOT NULL,
        account_id TEXT NOT NULL,
        scored_at TEXT NOT NULL,
        caller TEXT NOT NULL,
        route TEXT NOT NULL,
        model_name TEXT NOT NULL,
        model_version INTEGER NOT NULL,
        model_alias TEXT NOT NULL,
        probability REAL,
        band TEXT NOT NULL,
        decision INTEGER NOT NULL,
        challenger_version INTEGER,
        challenger_probability REAL,
        degraded INTEGER NOT NULL,
        vector_json TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        row_hash TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS audit_log_request ON audit_log (request_id, account_id)",
    """CREATE TABLE IF NOT EXISTS audit_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        row_hash TEXT NOT NULL
    )""",
    # Guards against accidents, not attackers (who can drop them): verify() is the check.
    """CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    # Served-log rows not yet in the parquet log (serving.recorder empties it).
    """CREATE TABLE IF NOT EXISTS served_outbox (
        seq INTEGER PRIMARY KEY,
        owner TEXT NOT NULL,
        scored_at TEXT NOT NULL,
        payload TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS served_outbox_owner ON served_outbox (owner, seq)",
)
_INSERT = (
    f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"  # nosec B608  # constant column names only
)
_READ_HEAD = "SELECT seq, row_hash FROM audit_head WHERE id = 1"
_LAST_ROW = "SELECT seq, row_hash FROM audit_log ORDER BY seq DESC LIMIT 1"
_SET_HEAD = (
    "INSERT INTO audit_head (id, seq, row_hash) VALUES (1, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, row_hash = excluded.row_hash"
)
_BY_REQUEST = f"{_SELECT} WHERE request_id = ? ORDER BY seq"
_BY_REQUEST_ACCOUNT = f"{_SELECT} WHERE request_id = ? AND account_id = ? ORDER BY seq"
_RECENT = f"{_SELECT} ORDER BY seq DESC LIMIT ?"
_ALL_ROWS = f"{_SELECT} ORDER BY seq"
_OUTBOX_INSERT = "INSERT INTO served_outbox (seq, owner, scored_at, payload) VALUES (?, ?, ?, ?)"
_OUTBOX_OWNERS = "SELECT DISTINCT owner FROM served_outbox"
_OUTBOX_CLAIM = "UPDATE served_outbox SET owner = ? WHERE owner = ? RETURNING seq, scored_at"
_OUTBOX_ROWS = (
    "SELECT seq, scored_at, payload FROM served_outbox WHERE owner = ? AND seq > ? "
    "ORDER BY seq LIMIT ?"
)
_OUTBOX_COUNT = "SELECT count(*) FROM served_outbox WHERE owner = ?"
_OUTBOX_RELEASE = "DELETE FROM served_outbox WHERE owner = ? AND seq <= ?"


# --------------------------------------------------------------------------- encoding


def encode_vector(vector: Iterable[float]) -> str:
    """JSON of the model row: NaN as null, infinities as strings, so it round-trips exactly."""
    if isinstance(vector, list) and all(type(v) is float for v in vector):
        # The usual row: plain finite floats encode as they are (the same text as below).
        try:
            return json.dumps(vector, separators=(",", ":"), allow_nan=False)
        except ValueError:
            pass  # NaN or an infinity: spelled out below
    out: list[float | str | None] = []
    for value in vector:
        number = float(value)
        if math.isnan(number):
            out.append(None)
        elif math.isinf(number):
            out.append("inf" if number > 0 else "-inf")
        else:
            out.append(number)
    return json.dumps(out, separators=(",", ":"), allow_nan=False)


def decode_vector(text: str) -> list[float]:
    return [math.nan if v is None else float(v) for v in json.loads(text)]


def _canonical(seq: int, content: Mapping[str, Any], prev_hash: str) -> bytes:
    payload = {"seq": seq, **content, "prev_hash": prev_hash}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def row_hash(seq: int, content: Mapping[str, Any], prev_hash: str) -> str:
    """sha256 of the canonical JSON of seq, the content columns and the previous hash."""
    return hashlib.sha256(_canonical(seq, content, prev_hash)).hexdigest()


def event_content(event: ScoreEvent) -> dict[str, Any]:
    """The chained columns of one event, normalised as a read-back from SQLite gives them."""
    raw: dict[str, Any] = {
        "request_id": event.request_id,
        "account_id": event.account_id,
        "scored_at": as_utc(event.scored_at).isoformat(timespec="microseconds"),
        "caller": event.caller,
        "route": event.route,
        "model_name": event.model_name,
        "model_version": event.model_version,
        "model_alias": event.model_alias,
        "probability": event.probability,
        "band": event.band,
        "decision": event.decision,
        "challenger_version": event.challenger_version,
        "challenger_probability": event.challenger_probability,
        "degraded": event.degraded,
        "vector_json": encode_vector(event.vector),
    }
    return {name: normalise(raw[name]) for name, normalise in _CONTENT.items()}


def _stored_content(row: sqlite3.Row) -> dict[str, Any]:
    return {name: normalise(row[name]) for name, normalise in _CONTENT.items()}


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class AuditRow:
    """One logged account score; `intact` says whether its content still matches its hash."""

    seq: int
    request_id: str
    account_id: str
    scored_at: datetime
    caller: str
    route: str
    model_name: str
    model_version: int
    model_alias: str
    probability: float
    band: str
    decision: bool
    challenger_version: int | None
    challenger_probability: float | None
    degraded: bool
    vector: list[float]
    prev_hash: str
    row_hash: str
    intact: bool


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows: int
    first_bad_seq: int | None = None
    problem: str | None = None

    def summary(self) -> str:
        if self.ok:
            return f"audit chain holds: {self.rows} rows"
        where = f"seq {self.first_bad_seq}" if self.first_bad_seq is not None else "the head"
        return f"audit chain broken at {where} ({self.rows} rows checked): {self.problem}"


def _audit_row(row: sqlite3.Row) -> AuditRow:
    content = _stored_content(row)
    probability = content["probability"]
    return AuditRow(
        seq=int(row["seq"]),
        request_id=content["request_id"],
        account_id=content["account_id"],
        scored_at=datetime.fromisoformat(content["scored_at"]),
        caller=content["caller"],
        route=content["route"],
        model_name=content["model_name"],
        model_version=content["model_version"],
        model_alias=content["model_alias"],
        probability=math.nan if probability is None else probability,
        band=content["band"],
        decision=content["decision"],
        challenger_version=content["challenger_version"],
        challenger_probability=content["challenger_probability"],
        degraded=content["degraded"],
        vector=decode_vector(content["vector_json"]),
        prev_hash=str(row["prev_hash"]),
        row_hash=str(row["row_hash"]),
        intact=row_hash(int(row["seq"]), content, str(row["prev_hash"])) == row["row_hash"],
    )


# --------------------------------------------------------------------------- the log


def _owner_only(path: Path) -> None:
    """Create the log readable by its owner alone (it names callers and decisions), and
    tighten one made before. SQLite gives its -wal and -shm files the database's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    os.chmod(path, 0o600)


@dataclass(frozen=True)
class Entry:
    """One event ready to chain: its content (event_content) and, for the outbox, its
    served-log row encoded as text (None: the audit log only)."""

    content: dict[str, Any]
    payload: str | None = None


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    scored_at: str
    payload: str


class AuditLog:
    """The audit log in one SQLite file; safe to share across threads and processes.

    Every call opens its own short-lived connection, so an instance carries no connection
    across threads or a fork (uvicorn workers, the recorder thread, the admin console).
    The scorer's hot path appends through `writer()` instead.
    """

    def __init__(self, path: Path, timeout: float = _BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._schema_ready = False

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self._schema_ready:
            _owner_only(self.path)
        # isolation_level=None: we issue BEGIN ourselves (the sqlite3 module would otherwise
        # open a deferred transaction, which cannot serialise the read of the head).
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            if not self._schema_ready:
                _create_schema(conn)
                self._schema_ready = True
            yield conn
        finally:
            conn.close()

    def append(self, events: Sequence[ScoreEvent]) -> list[int]:
        """Chain and write `events` in one transaction: all of them or none; their seqs."""
        if not events:
            return []
        entries = [Entry(event_content(e)) for e in events]  # encode before taking the lock
        with self._connect() as conn, _transaction(conn, "BEGIN IMMEDIATE"):
            return _append(conn, entries, None)

    def writer(self, synchronous: Synchronous = "full") -> ChainWriter:
        """A writer with its own long-lived connection, over a log created here if new."""
        with self._connect():
            pass
        return ChainWriter(self.path, synchronous, self.timeout)

    def verify(self) -> VerifyResult:
        """Walk the whole chain in one read snapshot, then check the head record."""
        with self._connect() as conn, _transaction(conn, "BEGIN"):
            checker = _ChainCheck()
            cursor = conn.execute(_ALL_ROWS)
            try:
                for row in cursor:
                    if not checker.accept(row):
                        break
            finally:
                cursor.close()
            if checker.result is not None:
                return checker.result
            return checker.check_head(conn.execute(_READ_HEAD).fetchone())

    def rows(self, request_id: str, account_id: str | None = None) -> list[AuditRow]:
        """The rows of one request (one per account), or of one account in it."""
        with self._connect() as conn:
            if account_id is None:
                cursor = conn.execute(_BY_REQUEST, (request_id,))
            else:
                cursor = conn.execute(_BY_REQUEST_ACCOUNT, (request_id, account_id))
            return [_audit_row(r) for r in cursor]

    def recent(self, limit: int = 100) -> list[AuditRow]:
        """The newest rows first (the admin console's audit page)."""
        with self._connect() as conn:
            return [_audit_row(r) for r in conn.execute(_RECENT, (int(limit),))]

    # ------------------------------------------------------------------ the outbox

    def outbox_owners(self) -> set[str]:
        with self._connect() as conn:
            return {str(owner) for (owner,) in conn.execute(_OUTBOX_OWNERS)}

    def claim_outbox(self, dead: str, owner: str) -> list[tuple[int, str]]:
        """Move a dead owner's rows to `owner` at once (two claimants cannot both get them);
        the seq and scored_at of each row moved."""
        with self._connect() as conn, _transaction(conn, "BEGIN IMMEDIATE"):
            return [(int(seq), str(at)) for seq, at in conn.execute(_OUTBOX_CLAIM, (owner, dead))]

    def outbox(self, owner: str, limit: int, after: int = 0) -> list[OutboxRow]:
        """The owner's oldest rows after seq `after`, in seq order."""
        with self._connect() as conn:
            cursor = conn.execute(_OUTBOX_ROWS, (owner, int(after), int(limit)))
            return [OutboxRow(int(seq), str(at), str(payload)) for seq, at, payload in cursor]

    def outbox_count(self, owner: str) -> int:
        with self._connect() as conn:
            return int(conn.execute(_OUTBOX_COUNT, (owner,)).fetchone()[0])

    def release_outbox(self, owner: str, upto: int) -> None:
        """Drop the owner's rows up to seq `upto`: they are in the parquet log."""
        with self._connect() as conn, _transaction(conn, "BEGIN IMMEDIATE"):
            conn.execute(_OUTBOX_RELEASE, (owner, int(upto)))

    def checkpoint(self) -> None:
        """Copy the WAL into the database as far as readers allow (never waits on them).
        The scorer's writer leaves this to its background thread (see ChainWriter)."""
        with self._connect() as conn:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")


class ChainWriter:
    """The scorer's appender: one connection kept open (opening one per commit would cost
    every request), not shared between threads at once (serving.recorder lets one committing
    thread use it at a time).

    It reopens after a failure, and when the file at `path` is no longer the one it holds
    (deleted, moved or replaced), and it never creates a missing log: a scorer whose log
    vanished must fail its requests, not start a new chain beside the lost one, nor keep
    appending to a deleted file. synchronous=full makes each commit fsync the WAL (a record
    survives a power loss); normal survives a crash of the process (SIGKILL) but not of the
    machine. Automatic checkpoints are off on this connection: a checkpoint inside a commit
    would stall the requests of that group; AuditLog.checkpoint() runs them off the path.

    Scorer processes (uvicorn workers) take turns through a file lock next to the log before
    SQLite's own: a writer that finds SQLite's lock taken sleeps 1, 2, 5, 10... ms before it
    tries again, and two workers committing at once then waited up to ~25 ms at p99; the
    file lock is polled every 0.1 to 1 ms instead. Other writers (tools) still meet SQLite's.
    """

    def __init__(self, path: Path, synchronous: Synchronous, timeout: float) -> None:
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS)}, not {synchronous}")
        self.path = Path(path).resolve()
        self.synchronous = synchronous
        self.timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._turn: int | None = None

    def append(self, entries: Sequence[Entry], owner: str | None) -> list[int]:
        """Chain `entries` in one durable transaction; their seqs. Queues the payloads in the
        outbox under `owner` (None: none)."""
        if not entries:
            return []
        conn = self._open()
        try:
            with self._my_turn(), _transaction(conn, "BEGIN IMMEDIATE"):
                return _append(conn, entries, owner)
        except BaseException:
            self.close()  # the next append starts from a fresh connection
            raise

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn, self._identity = self._conn, None, None
            conn.close()
        if self._turn is not None:
            turn, self._turn = self._turn, None
            os.close(turn)

    @contextmanager
    def _my_turn(self) -> Iterator[None]:
        if self._turn is None:
            self._turn = os.open(f"{self.path}-commit.lock", os.O_CREAT | os.O_RDWR, 0o600)
        deadline, pause = time.monotonic() + self.timeout, 0.0001
        while True:
            try:
                fcntl.flock(self._turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise sqlite3.OperationalError(
                        "database is locked: another scorer process holds the commit turn"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.001)
        try:
            yield
        finally:
            fcntl.flock(self._turn, fcntl.LOCK_UN)

    def _open(self) -> sqlite3.Connection:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self.close()
            raise FileNotFoundError(
                f"no audit log at {self.path} (deleted or moved while the scorer ran)"
            ) from None
        identity = (stat.st_dev, stat.st_ino)
        if self._conn is not None and identity == self._identity:
            return self._conn
        self.close()
        conn = sqlite3.connect(
            f"{self.path.as_uri()}?mode=rw",
            uri=True,
            timeout=self.timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute(f"PRAGMA synchronous={SYNCHRONOUS[self.synchronous]}")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        self._conn, self._identity = conn, identity
        return conn


def _append(conn: sqlite3.Connection, entries: Sequence[Entry], owner: str | None) -> list[int]:
    """Inside a write transaction: the entries chained onto the head, and the head moved."""
    seq, prev = _last_link(conn)
    rows: list[tuple[Any, ...]] = []
    outbox: list[tuple[Any, ...]] = []
    for entry in entries:
        seq += 1
        digest = row_hash(seq, entry.content, prev)
        rows.append((seq, *entry.content.values(), prev, digest))
        if owner is not None and entry.payload is not None:
            outbox.append((seq, owner, entry.content["scored_at"], entry.payload))
        prev = digest
    conn.executemany(_INSERT, rows)
    if outbox:
        conn.executemany(_OUTBOX_INSERT, outbox)
    conn.execute(_SET_HEAD, (seq, prev))
    return list(range(seq - len(rows) + 1, seq + 1))


def _create_schema(conn: sqlite3.Connection) -> None:
    # WAL lets readers (verify, the console) run beside the writers; it persists in the file.
    _retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
    with _transaction(conn, "BEGIN IMMEDIATE"):
        for statement in _SCHEMA:
            conn.execute(statement)


def _retry_locked(statement: Callable[[], object]) -> None:
    """Run `statement`, retrying while another process holds the lock: switching the
    journal mode can fail at once with "database is locked" instead of waiting on the busy
    timeout (two workers opening a new log together)."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def _transaction(conn: sqlite3.Connection, begin: str) -> Iterator[None]:
    conn.execute(begin)
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _last_link(conn: sqlite3.Connection) -> tuple[int, str]:
    """The seq and hash to chain onto: the head record, else the last row, else genesis."""
    found = conn.execute(_READ_HEAD).fetchone() or conn.execute(_LAST_ROW).fetchone()
    if found is None:
        return 0, GENESIS_HASH
    return int(found[0]), str(found[1])


class _ChainCheck:
    """Accepts rows in seq order; `result` is set at the first broken one."""

    def __init__(self) -> None:
        self.rows = 0
        self.last_seq = 0
        self.last_hash = GENESIS_HASH
        self.result: VerifyResult | None = None

    def _fail(self, seq: int | None, problem: str) -> bool:
        self.result = VerifyResult(False, self.rows, seq, problem)
        return False

    def accept(self, row: sqlite3.Row) -> bool:
        seq, expected = int(row["seq"]), self.last_seq + 1
        if seq < expected:  # only a first row numbered 0 or below can get here
            return self._fail(seq, f"seq {seq} precedes seq 1: it was added outside the log")
        if seq > expected:
            return self._fail(
                expected,
                f"seq {expected} is missing: the log jumps from seq {self.last_seq} to {seq}",
            )
        if row["prev_hash"] != self.last_hash:
            return self._fail(
                seq,
                f"seq {seq} does not link to seq {self.last_seq}: its prev_hash is not that "
                "row's hash (one of the two was rewritten)",
            )
        if row_hash(seq, _stored_content(row), self.last_hash) != row["row_hash"]:
            return self._fail(seq, f"seq {seq} was changed: its content does not match its hash")
        self.rows, self.last_seq, self.last_hash = self.rows + 1, seq, str(row["row_hash"])
        return True

    def check_head(self, head: sqlite3.Row | None) -> VerifyResult:
        if head is None:
            if self.rows == 0:
                return VerifyResult(True, 0)
            self._fail(None, "the head record is missing, so a deleted tail cannot be ruled out")
        elif int(head["seq"]) > self.last_seq:
            self._fail(
                self.last_seq + 1,
                f"rows after seq {self.last_seq} were deleted: the head records seq {head['seq']}",
            )
        elif int(head["seq"]) < self.last_seq:
            self._fail(
                int(head["seq"]) + 1,
                f"seq {int(head['seq']) + 1} lies beyond the head record (seq {head['seq']}): "
                "rows were added outside the log",
            )
        elif head["row_hash"] != self.last_hash:
            self._fail(self.last_seq, f"seq {self.last_seq} does not match the head record")
        return self.result or VerifyResult(True, self.rows)
