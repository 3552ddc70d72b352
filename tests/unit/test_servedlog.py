"""The served-features log: parquet parts that round-trip, keep one schema and filter by time."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_repo.definitions import build_definitions
from serving.servedlog import (
    BASE_SCHEMA,
    ServedLogWriter,
    event_from_payload,
    feature_types_from_service,
    infer_kind,
    logged_seqs,
    read_served,
    served_payload,
)
from tests.unit.test_audit import T0, make_event

pytestmark = pytest.mark.unit

DEBT = "account_payment_velocity__debt_amount"
HISTORY = "account_payment_velocity__payment_history"
CHANNEL = "account_contact_behavior__payment_channel_preference"
OVERDUE = "account_payment_velocity__overdue_since"


def parts(directory):
    return sorted(directory.glob("date=*/*"))


def test_rows_round_trip_with_arrays_nulls_and_nans(tmp_path):
    writer = ServedLogWriter(tmp_path, flush_rows=3)
    odd = make_event(
        1,
        features={DEBT: math.nan, HISTORY: None, CHANNEL: None, OVERDUE: T0},
        feature_timestamps={"account_payment_velocity": None, "account_contact_behavior": T0},
        reported_monthly_income=2500.0,
        imputed=[DEBT, CHANNEL],
        customer_id=None,
        challenger_version=None,
        challenger_probability=None,
    )
    writer.write([make_event(0), odd])
    assert parts(tmp_path) == [] and writer.pending == 2  # below flush_rows: still buffered
    writer.write([make_event(2, features={DEBT: 7, HISTORY: (1, 2.5), CHANNEL: "cash"})])
    assert writer.pending == 0 and writer.rows_written == 3

    frame = read_served(tmp_path)
    assert list(frame["account_id"]) == ["A00000", "A00001", "A00002"]
    assert list(frame.columns[: len(BASE_SCHEMA)]) == BASE_SCHEMA.names
    first, second, third = (frame.iloc[i] for i in range(3))
    assert first[DEBT] == 1000.0 and list(first[HISTORY][:1]) == [10.0]
    assert math.isnan(first[HISTORY][1]) and math.isnan(first[HISTORY][2])
    assert first[CHANNEL] == "card" and first["ts__account_payment_velocity"] == T0 - timedelta(1)
    assert math.isnan(second[DEBT]) and second[HISTORY] is None and second[CHANNEL] is None
    assert second[OVERDUE] == T0 and second["ts__account_contact_behavior"] == T0
    assert second["customer_id"] is None and list(second["imputed"]) == [DEBT, CHANNEL]
    assert second["reported_monthly_income"] == 2500.0
    assert third[DEBT] == 7.0 and list(third[HISTORY]) == [1.0, 2.5]
    assert str(frame["scored_at"].dtype) == "datetime64[us, UTC]"
    assert first["scored_at"] == T0 and first["probability"] == 0.1
    assert bool(first["decision"]) is False and first["model_version"] == 3

    # NaN stays NaN and a missing value stays null in the file itself.
    table = pq.read_table(parts(tmp_path)[0])
    assert table.column(DEBT).null_count == 0
    assert table.column(HISTORY).null_count == 1
    assert table.schema.field("scored_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field(HISTORY).type == pa.list_(pa.float64())


def test_parts_are_per_day_named_and_atomic(tmp_path):
    writer = ServedLogWriter(tmp_path, flush_rows=100)
    late = make_event(9, scored_at=datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC))
    writer.write([make_event(0), late, make_event(1)])
    assert writer.flush() == 3
    files = parts(tmp_path)
    assert [f.parent.name for f in files] == ["date=2026-03-01", "date=2026-03-02"]
    assert all(f.name.startswith("part-") and f.suffix == ".parquet" for f in files)
    assert not list(tmp_path.rglob(".*"))  # no temporary file left behind
    assert writer.flush() == 0 and writer.parts_written == 2


def test_the_window_filter_and_an_empty_log(tmp_path):
    empty = read_served(tmp_path / "nothing")
    assert empty.empty and list(empty.columns) == BASE_SCHEMA.names
    writer = ServedLogWriter(tmp_path)
    days = [make_event(d, scored_at=T0 + timedelta(days=d)) for d in range(5)]
    writer.write(days)
    writer.close()
    window = read_served(tmp_path, T0 + timedelta(days=1), T0 + timedelta(days=3))
    assert list(window["account_id"]) == ["A00001", "A00002"]  # end excluded
    assert len(read_served(tmp_path, start=T0 + timedelta(days=4))) == 1
    assert len(read_served(tmp_path, end=T0 + timedelta(seconds=1))) == 1
    naive = datetime(2026, 3, 3, 12, 0)  # naive means UTC
    assert list(read_served(tmp_path, start=naive)["account_id"]) == ["A00002", "A00003", "A00004"]
    outside = read_served(tmp_path, T0 + timedelta(days=30))
    assert outside.empty and list(outside.columns) == BASE_SCHEMA.names


def test_the_schema_stays_stable_across_parts(tmp_path):
    writer = ServedLogWriter(tmp_path, feature_types={"v__declared": "string"})
    writer.write([make_event(0)])
    writer.flush()
    # A part where every value is missing keeps the types the first part established.
    blank = {DEBT: None, HISTORY: None, CHANNEL: None}
    writer.write([make_event(1, features=blank, feature_timestamps={})])
    writer.flush()
    first, second = (pq.read_schema(p) for p in parts(tmp_path))
    assert first == second
    assert second.field(CHANNEL).type == pa.string()
    assert second.field("v__declared").type == pa.string()
    assert "ts__account_payment_velocity" in second.names
    frame = read_served(tmp_path)
    assert len(frame) == 2 and frame[CHANNEL].tolist() == ["card", None]


def test_a_value_of_the_wrong_type_is_logged_as_null(tmp_path, caplog):
    writer = ServedLogWriter(tmp_path, feature_types={DEBT: "double", HISTORY: "list<double>"})
    bad = make_event(0, features={DEBT: "lots", HISTORY: 3.0, CHANNEL: "card"})
    with caplog.at_level(logging.WARNING, logger="serving.servedlog"):
        writer.write([bad, bad])
        writer.flush()
    frame = read_served(tmp_path)
    assert frame[DEBT].isna().all() and frame[HISTORY].isna().all()
    assert sum("logged as null" in r.getMessage() for r in caplog.records) == 2  # once a column


def test_a_failed_flush_keeps_the_rows(tmp_path):
    blocker = tmp_path / "served"
    blocker.write_text("a file where the directory should be")
    writer = ServedLogWriter(blocker)
    writer.write([make_event(0), make_event(1)])
    with pytest.raises(OSError):
        writer.flush()
    assert writer.pending == 2
    blocker.unlink()
    assert writer.flush() == 2 and len(read_served(blocker)) == 2


def test_time_based_flush_is_due_after_flush_seconds(tmp_path):
    writer = ServedLogWriter(tmp_path, flush_seconds=0.0)
    assert not writer.due() and writer.flush_if_due() == 0
    writer.write([make_event(0)])
    assert writer.due() and writer.flush_if_due() == 1
    patient = ServedLogWriter(tmp_path, flush_seconds=3600)
    patient.write([make_event(1)])
    assert not patient.due()


def test_kinds_come_from_the_feast_service(tmp_path):
    service = build_definitions(tmp_path).services[0]
    kinds = feature_types_from_service(service)
    assert kinds[HISTORY] == "list<double>"
    assert kinds[CHANNEL] == "string"
    assert kinds[OVERDUE] == "timestamp"
    assert kinds[DEBT] == "double"
    assert kinds["account_payment_velocity__days_overdue"] == "double"
    assert kinds["request_time_features__days_overdue_at_request"] == "double"


def test_value_kinds_are_inferred():
    assert [infer_kind(v) for v in (None, 1, 2.5, True, "x", [1.0], (1,), T0)] == [
        None,
        "double",
        "double",
        "double",
        "string",
        "list<double>",
        "list<double>",
        "timestamp",
    ]


def test_the_outbox_payload_round_trips_every_served_column(tmp_path):
    odd = make_event(
        3,
        features={DEBT: math.nan, HISTORY: (1, None, math.inf), CHANNEL: None, OVERDUE: T0},
        feature_timestamps={"account_payment_velocity": None, "account_contact_behavior": T0},
        reported_monthly_income=2500.0,
        imputed=[DEBT],
        challenger_probability=None,
    )
    back = event_from_payload(served_payload(odd))
    assert back.vector == []  # the model row is the audit log's, not the served log's
    assert math.isnan(back.features[DEBT]) and back.features[HISTORY] == [1, None, math.inf]
    assert back.features[OVERDUE] == T0 and back.feature_timestamps == odd.feature_timestamps
    same = {k: v for k, v in vars(odd).items() if k not in {"vector", "features"}}
    assert {k: getattr(back, k) for k in same} == same
    writer = ServedLogWriter(tmp_path)
    writer.write([back, event_from_payload(served_payload(make_event(4)))], [41, 42])
    writer.flush()
    frame = read_served(tmp_path)
    assert list(frame["audit_seq"]) == [41, 42] and frame.iloc[0][OVERDUE] == T0


def test_logged_seqs_finds_what_recent_parts_hold(tmp_path):
    writer = ServedLogWriter(tmp_path)
    writer.write([make_event(0), make_event(1)], [7, 8])
    writer.write([make_event(2)])  # a row without a seq (a part of an older scorer)
    writer.flush()
    since = T0 - timedelta(days=1)
    assert logged_seqs(tmp_path, {6, 7, 8, 9}, since) == {7, 8}
    # A part older than `since` cannot hold a row scored after it: not even opened.
    assert logged_seqs(tmp_path, {7, 8}, datetime.now(UTC) + timedelta(hours=1)) == set()
    assert logged_seqs(tmp_path / "nothing", {7}, since) == set()
