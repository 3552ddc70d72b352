"""The hash-chained audit log (tampering in every form shows) and the background recorder."""

from __future__ import annotations

import logging
import math
import multiprocessing
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from serving.audit import (
    GENESIS_HASH,
    AuditLog,
    decode_vector,
    encode_vector,
    row_hash,
)
from serving.events import ScoreEvent
from serving.recorder import Recorder
from serving.servedlog import ServedLogWriter, read_served

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


class BlockingAudit(AuditLog):
    """An audit log whose first append waits until released (a writer that fell behind)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.entered = threading.Event()
        self.release = threading.Event()

    def append(self, events):
        self.entered.set()
        assert self.release.wait(10)
        super().append(events)


class FlakyAudit(AuditLog):
    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures

    def append(self, events):
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        super().append(events)


class CountingAudit(AuditLog):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[int] = []

    def append(self, events):
        self.batches.append(len(events))
        super().append(events)


def test_the_recorder_writes_events_arriving_within_its_window_in_one_batch(tmp_path):
    # One transaction per request would cost every request CPU on the same cores.
    audit = CountingAudit(tmp_path / "audit.db")
    recorder = Recorder(audit, ServedLogWriter(tmp_path / "served"), 5.0, batch_seconds=2.0)
    recorder.start()
    for i in range(20):
        recorder.record([make_event(i)])  # one request at a time, as the routes call it
    recorder.close(timeout=30)
    assert audit.batches == [20]
    assert audit.verify().rows == 20


def test_the_recorder_drains_everything_on_close(tmp_path):
    audit = AuditLog(tmp_path / "audit.db")
    served = ServedLogWriter(tmp_path / "served", flush_rows=10_000)
    recorder = Recorder(audit, served, flush_seconds=0.05)
    recorder.start()
    for start in range(0, 600, 50):
        recorder.record([make_event(i) for i in range(start, start + 50)])
    recorder.close(timeout=30)
    stats = recorder.stats()
    assert (stats.written, stats.dropped, stats.queued, stats.running) == (600, 0, 0, False)
    assert (stats.served_rows, stats.served_buffered, stats.last_error) == (600, 0, None)
    assert audit.verify().rows == 600
    assert len(read_served(tmp_path / "served")) == 600


def test_the_recorder_counts_drops_when_the_queue_is_full(tmp_path, caplog):
    audit = BlockingAudit(tmp_path / "audit.db")
    recorder = Recorder(audit, ServedLogWriter(tmp_path / "served"), 0.05, max_queue=3)
    recorder.start()
    recorder.record([make_event(0)])
    assert audit.entered.wait(10)  # the thread holds event 0 and is stuck writing it
    with caplog.at_level(logging.WARNING, logger="serving.recorder"):
        recorder.record([make_event(i) for i in range(1, 6)])  # 3 fit, 2 do not
        recorder.record([make_event(i) for i in range(6, 8)])
    assert recorder.dropped == 4
    assert recorder.stats().queued == 3
    warnings = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 1  # at most one warning a minute
    audit.release.set()
    recorder.close(timeout=30)
    assert audit.verify().rows == 4
    assert recorder.stats().written == 4
    recorder.record([make_event(9)])
    assert recorder.dropped == 5  # after close: counted, never silently lost


def test_the_recorder_retries_a_failed_write_without_duplicates(tmp_path, caplog):
    audit = FlakyAudit(tmp_path / "audit.db", failures=2)
    recorder = Recorder(audit, ServedLogWriter(tmp_path / "served"), flush_seconds=0.01)
    recorder.start()
    with caplog.at_level(logging.ERROR, logger="serving.recorder"):
        recorder.record([make_event(i) for i in range(5)])
        recorder.close(timeout=30)
    stats = recorder.stats()
    assert (stats.written, stats.failures) == (5, 2)
    assert stats.last_error == "audit log: OperationalError: database is locked"
    assert any(r.exc_info for r in caplog.records)  # logged with the exception
    assert audit.verify().rows == 5
    assert len(read_served(tmp_path / "served")) == 5


def test_closing_a_recorder_that_never_started_still_drains(tmp_path):
    audit = AuditLog(tmp_path / "audit.db")
    recorder = Recorder(audit, ServedLogWriter(tmp_path / "served"), flush_seconds=0.01)
    recorder.record([make_event(1), make_event(2)])
    recorder.close(timeout=30)
    assert audit.verify().rows == 2
    with pytest.raises(RuntimeError, match="closed"):
        recorder.start()
