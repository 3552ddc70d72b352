"""The hash-chained audit log (tampering in every form shows) and the recorder: a score is
recorded before it is answered, and the served log gets every recorded row once."""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from serving.audit import (
    GENESIS_HASH,
    AuditLog,
    ChainWriter,
    Entry,
    decode_vector,
    encode_vector,
    event_content,
    row_hash,
)
from serving.events import ScoreEvent
from serving.recorder import AuditUnavailableError, OwnerLock, Recorder, lock_dir
from serving.servedlog import ServedLogWriter, read_served, served_payload

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_event(i: int, request_id: str | None = None, **changes: Any) -> ScoreEvent:
    values: dict[str, Any] = {
        "request_id": request_id or f"req-{i}",
        "scored_at": T0 + timedelta(seconds=i),
        "route": "/v1/score",
        "caller": "collections-app",
        "account_id": f"A{i:05d}",
        "customer_id": f"C{i:05d}",
        "scoring_time": T0 + timedelta(seconds=i),
        "reported_monthly_income": None,
        "features": {
            "account_payment_velocity__debt_amount": 1000.0 + i,
            "account_payment_velocity__payment_history": [10.0, None, math.nan],
            "account_contact_behavior__payment_channel_preference": "card",
        },
        "feature_timestamps": {"account_payment_velocity": T0 - timedelta(days=1)},
        "vector": [1000.0 + i, math.nan, 0.25],
        "model_name": "collection-risk",
        "model_version": 3,
        "model_alias": "champion",
        "probability": 0.1 + i / 10_000,
        "band": "low",
        "decision": False,
        "challenger_version": 4,
        "challenger_probability": 0.2,
        "degraded": False,
        "imputed": [],
        "latency_ms": 2.5,
    }
    values.update(changes)
    return ScoreEvent(**values)


def filled(path: Path, n: int = 5) -> AuditLog:
    audit = AuditLog(path)
    audit.append([make_event(1), make_event(2)])
    audit.append([make_event(i) for i in range(3, n + 1)])
    return audit


def tamper(path: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    """What someone with write access to the file could do (the triggers are no barrier)."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    for sql, params in statements:
        conn.execute(sql, params)
    conn.commit()
    conn.close()


def stored(path: Path, seq: int) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM audit_log WHERE seq = ?", (seq,)).fetchone())
    conn.close()
    return row


def content_of(row: dict[str, Any]) -> dict[str, Any]:
    skip = {"seq", "prev_hash", "row_hash"}
    out = {k: v for k, v in row.items() if k not in skip}
    out["decision"], out["degraded"] = bool(out["decision"]), bool(out["degraded"])
    return out


# --------------------------------------------------------------------------- the chain


def test_an_untouched_chain_verifies_and_rows_round_trip(tmp_path):
    audit = filled(tmp_path / "audit.db")
    audit.append([make_event(9, "batch-1", account_id="X1"), make_event(10, "batch-1")])
    result = audit.verify()
    assert (result.ok, result.rows, result.first_bad_seq, result.problem) == (True, 7, None, None)
    assert result.summary() == "audit chain holds: 7 rows"

    batch = audit.rows("batch-1")
    assert [r.account_id for r in batch] == ["X1", "A00010"]
    assert [r.seq for r in audit.rows("batch-1", "A00010")] == [7]
    row = batch[0]
    assert row.intact and row.seq == 6 and row.scored_at == T0 + timedelta(seconds=9)
    assert row.vector[0] == 1009.0 and math.isnan(row.vector[1]) and row.vector[2] == 0.25
    assert (row.probability, row.band, row.decision, row.degraded) == (0.1009, "low", False, False)
    assert (row.challenger_version, row.challenger_probability) == (4, 0.2)
    assert [r.seq for r in audit.recent(3)] == [7, 6, 5]
    assert audit.rows("nope") == []
    assert audit.rows("x'; DROP TABLE audit_log; --") == []
    assert audit.verify().ok

    first = stored(tmp_path / "audit.db", 1)
    assert first["prev_hash"] == GENESIS_HASH
    assert first["row_hash"] == row_hash(1, content_of(first), GENESIS_HASH)


def test_an_empty_log_verifies(tmp_path):
    assert AuditLog(tmp_path / "audit.db").verify().ok


def test_vectors_round_trip_exactly():
    vector = [0.1, 1 / 3, -0.0, 1e-300, math.nan, math.inf, -math.inf, 123456789.123456789]
    back = decode_vector(encode_vector(vector))
    assert math.isnan(back[4])
    assert [v for i, v in enumerate(back) if i != 4] == [v for i, v in enumerate(vector) if i != 4]


def test_the_log_refuses_updates_and_deletes(tmp_path):
    filled(tmp_path / "audit.db")
    conn = sqlite3.connect(tmp_path / "audit.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_log SET probability = 0.9 WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_log WHERE seq = 2")
    conn.close()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("probability", 0.9),
        ("band", "high"),
        ("decision", 1),
        ("caller", "someone-else"),
        ("model_version", 2),
        ("vector_json", "[1.0,null,0.3]"),
        ("challenger_probability", None),
    ],
)
def test_an_edited_column_names_its_seq(tmp_path, column, value):
    path = tmp_path / "audit.db"
    audit = filled(path)
    # The column name comes from the parameter list above, never from input.
    tamper(path, (f"UPDATE audit_log SET {column} = ? WHERE seq = 3", (value,)))
    result = audit.verify()
    assert (result.ok, result.first_bad_seq, result.rows) == (False, 3, 2)
    assert "seq 3 was changed" in (result.problem or "")
    assert "broken at seq 3" in result.summary()
    assert not audit.rows("req-3")[0].intact


def test_a_rewritten_and_rehashed_row_breaks_the_next_link(tmp_path):
    path = tmp_path / "audit.db"
    audit = filled(path)
    row = stored(path, 3)
    row["probability"] = 0.99
    forged = row_hash(3, content_of(row), row["prev_hash"])
    tamper(
        path,
        ("UPDATE audit_log SET probability = ?, row_hash = ? WHERE seq = 3", (0.99, forged)),
    )
    result = audit.verify()
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "does not link to seq 3" in (result.problem or "")


def test_a_deleted_middle_row_names_the_missing_seq(tmp_path):
    path = tmp_path / "audit.db"
    audit = filled(path)
    tamper(path, ("DELETE FROM audit_log WHERE seq = ?", (3,)))
    result = audit.verify()
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert "seq 3 is missing" in (result.problem or "")


def test_a_deleted_first_row_shows(tmp_path):
    path = tmp_path / "audit.db"
    audit = filled(path)
    tamper(path, ("DELETE FROM audit_log WHERE seq = ?", (1,)))
    assert (audit.verify().ok, audit.verify().first_bad_seq) == (False, 1)


def test_a_deleted_tail_shows_through_the_head_record(tmp_path):
    path = tmp_path / "audit.db"
    audit = filled(path)
    tamper(path, ("DELETE FROM audit_log WHERE seq >= ?", (4,)))
    result = audit.verify()
    assert (result.ok, result.rows, result.first_bad_seq) == (False, 3, 4)
    assert "rows after seq 3 were deleted" in (result.problem or "")
    tamper(path, ("DELETE FROM audit_head", ()))
    assert audit.verify().problem == (
        "the head record is missing, so a deleted tail cannot be ruled out"
    )


def test_a_forged_row_at_the_tail_shows_through_the_head_record(tmp_path):
    path = tmp_path / "audit.db"
    audit = filled(path)
    last = stored(path, 5)
    row = {**last, "seq": 6, "account_id": "FORGED", "prev_hash": last["row_hash"]}
    row["row_hash"] = row_hash(6, content_of(row), last["row_hash"])
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    tamper(path, (f"INSERT INTO audit_log ({columns}) VALUES ({marks})", tuple(row.values())))
    result = audit.verify()
    assert (result.ok, result.first_bad_seq) == (False, 6)
    assert "beyond the head record" in (result.problem or "")


def test_a_row_inserted_in_the_middle_shows(tmp_path):
    """Renumber the tail, slip in a well-formed row 3, even move the head: the old 3 breaks."""
    path = tmp_path / "audit.db"
    audit = filled(path)
    row2 = stored(path, 2)
    forged = {**stored(path, 3), "seq": 3, "account_id": "FORGED", "prev_hash": row2["row_hash"]}
    forged["row_hash"] = row_hash(3, content_of(forged), row2["row_hash"])
    columns = ", ".join(forged)
    marks = ", ".join("?" for _ in forged)
    last = stored(path, 5)
    tamper(
        path,
        ("UPDATE audit_log SET seq = seq + 1000 WHERE seq >= ?", (3,)),
        ("UPDATE audit_log SET seq = seq - 999 WHERE seq >= ?", (1000,)),
        (f"INSERT INTO audit_log ({columns}) VALUES ({marks})", tuple(forged.values())),
        ("UPDATE audit_head SET seq = ?, row_hash = ?", (6, last["row_hash"])),
    )
    result = audit.verify()
    assert (result.ok, result.first_bad_seq) == (False, 4)


def test_appends_continue_the_chain_after_reopening(tmp_path):
    filled(tmp_path / "audit.db")
    again = AuditLog(tmp_path / "audit.db")
    again.append([make_event(6)])
    assert again.verify().rows == 6
    assert again.rows("req-6")[0].prev_hash == stored(tmp_path / "audit.db", 5)["row_hash"]


def _append_many(path: str, worker: int, start: Any) -> None:
    start.wait(10)
    audit = AuditLog(Path(path))
    for batch in range(40):
        audit.append([make_event(i, f"w{worker}-b{batch}") for i in range(3)])


@pytest.mark.slow
def test_concurrent_appends_from_two_processes_form_one_chain(tmp_path):
    path = tmp_path / "audit.db"  # created by the workers themselves, racing
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [context.Process(target=_append_many, args=(str(path), w, start)) for w in range(2)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    audit = AuditLog(path)
    result = audit.verify()
    assert result.ok, result.problem
    assert result.rows == 2 * 40 * 3
    conn = sqlite3.connect(path)
    seqs = [s for (s,) in conn.execute("SELECT seq FROM audit_log ORDER BY seq")]
    conn.close()
    assert seqs == list(range(1, 241))
    assert len(audit.rows("w0-b39")) == len(audit.rows("w1-b39")) == 3


# --------------------------------------------------------------------------- recorder


@contextmanager
def running(tmp_path: Path, **options: Any) -> Iterator[Recorder]:
    recorder = Recorder(
        AuditLog(tmp_path / "audit.db", timeout=options.pop("timeout", 5.0)),
        ServedLogWriter(tmp_path / "served"),
        synchronous="normal",  # the unit tests test the logic; fsync is the integration tier's
        flush_seconds=options.pop("flush_seconds", 3600.0),
        **options,
    )
    recorder.start()
    try:
        yield recorder
    finally:
        recorder.close()


@contextmanager
def write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another writer holding the log's write lock (a stuck worker, a long backup)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def outbox_rows(path: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT seq, owner FROM served_outbox ORDER BY seq").fetchall()
    conn.close()
    return rows


def _eventually(check: Any, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


def test_a_record_is_committed_before_record_returns(tmp_path):
    path = tmp_path / "audit.db"
    with running(tmp_path) as recorder:
        recorder.record([make_event(1), make_event(2, "req-1")])
        # A second connection, as a process started after a SIGKILL would read it.
        assert [r.seq for r in AuditLog(path).rows("req-1")] == [1, 2]
        assert outbox_rows(path) == [(1, recorder.owner), (2, recorder.owner)]
        stats = recorder.stats()
        assert (stats.written, stats.commits, stats.outbox, stats.refused) == (2, 1, 2, 0)
    # Closing moved the outbox into the parquet log, each row with its audit seq.
    assert outbox_rows(path) == []
    served = read_served(tmp_path / "served")
    assert list(zip(served["audit_seq"], served["account_id"], strict=True)) == [
        (1, "A00001"),
        (2, "A00002"),
    ]
    assert AuditLog(path).verify().rows == 2


def test_concurrent_requests_share_one_commit(tmp_path):
    path = tmp_path / "audit.db"
    with running(tmp_path) as recorder:
        recorder.record([make_event(0)])
        threads = [
            threading.Thread(target=recorder.record, args=([make_event(i)],)) for i in range(1, 17)
        ]
        with write_lock(path):
            # The first request leads and waits on the lock; the other 15 queue behind it.
            for thread in threads:
                thread.start()
            assert _eventually(lambda: recorder.stats().waiting == 15)
        for thread in threads:
            thread.join(30)
        stats = recorder.stats()
        assert (stats.written, stats.commits, stats.refused) == (17, 3, 0)
    assert AuditLog(path).verify().rows == 17
    assert len(read_served(tmp_path / "served")) == 17


def test_a_request_that_cannot_be_recorded_is_refused(tmp_path, caplog):
    path = tmp_path / "audit.db"
    with running(tmp_path, timeout=0.3) as recorder:
        recorder.record([make_event(0)])
        locked = pytest.raises(AuditUnavailableError, match="database is locked")
        with (
            write_lock(path),
            caplog.at_level(logging.ERROR, "serving.recorder"),
            locked as refused,
        ):
            recorder.record([make_event(1)])
        assert refused.value.http_status == 503 and refused.value.kind == "audit_unavailable"
        assert any(r.exc_info for r in caplog.records)  # logged with the exception
        recorder.record([make_event(2)])  # the lock is gone: recording works again
        stats = recorder.stats()
        assert (stats.written, stats.refused, stats.failures) == (2, 1, 1)
        assert "database is locked" in (stats.last_error or "")
    assert [r.account_id for r in AuditLog(path).recent()] == ["A00002", "A00000"]
    assert sorted(read_served(tmp_path / "served")["account_id"]) == ["A00000", "A00002"]


def test_a_vanished_log_refuses_every_score_and_is_not_recreated(tmp_path):
    path = tmp_path / "audit.db"
    with running(tmp_path) as recorder:
        recorder.record([make_event(0)])
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        for i in (1, 2):
            with pytest.raises(AuditUnavailableError, match="no audit log at"):
                recorder.record([make_event(i)])
        assert not path.exists()  # a new chain beside the lost one would hide the loss
        assert recorder.dropped == 2


def test_scorer_processes_take_turns_to_commit(tmp_path):
    log_ = AuditLog(tmp_path / "audit.db")
    first, second = log_.writer("normal"), ChainWriter(tmp_path / "audit.db", "normal", 0.2)
    entry = [Entry(event_content(make_event(0)))]
    waits = pytest.raises(sqlite3.OperationalError, match="holds the commit turn")
    with first._my_turn(), waits:  # another worker is in the middle of its commit
        second.append(entry, None)
    assert second.append(entry, None) == [1]  # its turn came
    assert first.append(entry, None) == [2]
    first.close()
    second.close()
    assert log_.verify().rows == 2


def test_a_recorder_takes_nothing_before_start_or_after_close(tmp_path):
    recorder = Recorder(AuditLog(tmp_path / "audit.db"), ServedLogWriter(tmp_path / "served"))
    with pytest.raises(AuditUnavailableError, match="recorder is new"):
        recorder.record([make_event(0)])
    recorder.start()
    recorder.close()
    with pytest.raises(AuditUnavailableError, match="recorder is closed"):
        recorder.record([make_event(1)])
    with pytest.raises(RuntimeError, match="closed"):
        recorder.start()
    assert AuditLog(tmp_path / "audit.db").verify().rows == 0


def test_served_rows_are_written_and_released_while_running(tmp_path):
    path = tmp_path / "audit.db"
    with running(tmp_path, flush_seconds=0.05) as recorder:
        for start in range(0, 120, 40):
            recorder.record([make_event(i, f"b{start}") for i in range(start, start + 40)])
        assert _eventually(lambda: not outbox_rows(path))
        assert recorder.stats().served_rows == 120
    assert sorted(read_served(tmp_path / "served")["audit_seq"]) == list(range(1, 121))


def test_a_backlog_over_its_bound_is_read_back_from_the_outbox(tmp_path, caplog):
    # Memory holds at most 4 unwritten events; the rest are decoded from the outbox, once.
    with (
        caplog.at_level(logging.WARNING, "serving.recorder"),
        running(tmp_path, max_backlog=4) as recorder,
    ):
        for i in range(10):
            recorder.record([make_event(i)])
    assert any("read back from the outbox" in r.getMessage() for r in caplog.records)
    served = read_served(tmp_path / "served")
    assert sorted(served["audit_seq"]) == list(range(1, 11))
    assert sorted(served["account_id"]) == [f"A{i:05d}" for i in range(10)]
    assert outbox_rows(tmp_path / "audit.db") == []


def test_rows_of_a_dead_process_land_in_the_served_log_once(tmp_path, caplog):
    """A process died after writing one part but before releasing it from the outbox, and
    left more rows unwritten; a process that is alive keeps its rows."""
    path = tmp_path / "audit.db"
    writer = AuditLog(path).writer("normal")
    events = [make_event(i) for i in range(6)]
    writer.append([Entry(event_content(e), served_payload(e)) for e in events], "deadbeef")
    alive = OwnerLock(lock_dir(path), "cafe")
    alive.acquire()
    other = make_event(9)
    writer.append([Entry(event_content(other), served_payload(other))], "cafe")
    writer.close()
    early = ServedLogWriter(tmp_path / "served")
    early.write(events[:2], [1, 2])  # the part the dead process wrote, then it was killed
    early.flush()
    try:
        with caplog.at_level(logging.WARNING, logger="serving.recorder"), running(tmp_path):
            pass
        served = read_served(tmp_path / "served")
        assert sorted(served["audit_seq"]) == [1, 2, 3, 4, 5, 6]
        assert served.set_index("audit_seq").loc[4, "account_id"] == "A00003"
        assert outbox_rows(path) == [(7, "cafe")]
        assert any("took over 6 served-log row(s)" in r.getMessage() for r in caplog.records)
    finally:
        alive.release()


def _record_then_die(home: str, ready: Any) -> None:
    recorder = Recorder(AuditLog(Path(home) / "audit.db"), ServedLogWriter(Path(home) / "served"))
    recorder.start()
    recorder.record([make_event(i, "before-kill") for i in range(5)])
    ready.set()
    time.sleep(60)  # killed long before


@pytest.mark.slow
def test_a_sigkilled_recorder_loses_nothing_it_acknowledged(tmp_path):
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    process = context.Process(target=_record_then_die, args=(str(tmp_path), ready))
    process.start()
    assert ready.wait(60)
    os.kill(process.pid, signal.SIGKILL)
    process.join(30)
    assert process.exitcode == -signal.SIGKILL
    path = tmp_path / "audit.db"
    assert len(AuditLog(path).rows("before-kill")) == 5
    assert len(outbox_rows(path)) == 5  # the served log was not written yet
    with running(tmp_path):
        pass
    assert sorted(read_served(tmp_path / "served")["audit_seq"]) == [1, 2, 3, 4, 5]
    assert outbox_rows(path) == [] and AuditLog(path).verify().ok
    assert not list(lock_dir(path).glob("*.lock"))  # the dead owner's lock file went too
