"""The served-features log: what the scorer saw and said, as parquet that monitoring reads.

One row per scored account with the raw online feature values (full Feast names), the
feature views' event timestamps (`ts__<view>`) and the scores. Parts land under
`<dir>/date=YYYY-MM-DD/part-<utc stamp>-<pid>-<uuid8>.parquet`, one writer per process, each
written under a hidden temporary name and renamed into place, so a reader never sees half a
file. Column types come from `feature_types` when given (see feature_types_from_service),
otherwise from the first value seen, and are then kept for every later part so drift and
skew jobs read one schema.

`audit_seq` is the row's seq in the audit log (serving.audit), null in parts written before
it existed: it joins a served row to its audit record, and lets the recorder tell which rows
a part already holds when it writes what a killed scorer left in the outbox (logged_seqs).
The outbox keeps each row as JSON text (served_payload / event_from_payload).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from serving.events import ScoreEvent, as_utc

if TYPE_CHECKING:
    from feast import FeatureService

log = logging.getLogger(__name__)

TS_PREFIX = "ts__"
FeatureKind = Literal["double", "list<double>", "string", "timestamp"]
TIMESTAMP = pa.timestamp("us", tz="UTC")
_ARROW_TYPES: dict[str, pa.DataType] = {
    "double": pa.float64(),
    "list<double>": pa.list_(pa.float64()),
    "string": pa.string(),
    "timestamp": TIMESTAMP,
}
BASE_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("scored_at", TIMESTAMP),
        ("route", pa.string()),
        ("caller", pa.string()),
        ("account_id", pa.string()),
        ("customer_id", pa.string()),
        ("scoring_time", TIMESTAMP),
        ("reported_monthly_income", pa.float64()),
        ("model_name", pa.string()),
        ("model_version", pa.int64()),
        ("model_alias", pa.string()),
        ("probability", pa.float64()),
        ("band", pa.string()),
        ("decision", pa.bool_()),
        ("challenger_version", pa.int64()),
        ("challenger_probability", pa.float64()),
        ("degraded", pa.bool_()),
        ("imputed", pa.list_(pa.string())),
        ("latency_ms", pa.float64()),
        ("audit_seq", pa.int64()),
    ]
)
# Every field of ScoreEvent but the model row (`vector`): that is the audit log's.
_PAYLOAD_FIELDS = tuple(f.name for f in fields(ScoreEvent) if f.name != "vector")
_TIME_TAG = "$t"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


# --------------------------------------------------------------------------- types


def feature_types_from_service(service: FeatureService) -> dict[str, FeatureKind]:
    """The log column kind of every feature of a Feast service, by full name."""
    from feast.types import Array, String, UnixTimestamp  # noqa: PLC0415 - Feast is heavy

    kinds: dict[str, FeatureKind] = {}
    for projection in service.feature_view_projections:
        for field in projection.features:
            kind: FeatureKind = "double"
            if isinstance(field.dtype, Array):
                kind = "list<double>"
            elif field.dtype == String:
                kind = "string"
            elif field.dtype == UnixTimestamp:
                kind = "timestamp"
            kinds[f"{projection.name_to_use()}__{field.name}"] = kind
    return kinds


def infer_kind(value: Any) -> FeatureKind | None:
    """The column kind a raw online value suggests; None says nothing (a missing value)."""
    if value is None:
        return None
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "timestamp"
    if isinstance(value, Real):
        return "double"
    if isinstance(value, Iterable):
        return "list<double>"
    return "string"


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _coerce(kind: str, value: Any) -> Any:
    """The value as the column stores it; raises TypeError / ValueError when it cannot be."""
    if value is None:
        return None
    if kind == "double":
        if not isinstance(value, Real):
            raise TypeError(f"not a number: {type(value).__name__}")
        return float(value)
    if kind == "list<double>":
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise TypeError(f"not an array: {type(value).__name__}")
        return [_float(v) for v in value]
    if kind == "timestamp":
        if not isinstance(value, datetime):
            raise TypeError(f"not a datetime: {type(value).__name__}")
        return as_utc(value)
    return str(value)


# --------------------------------------------------------------------------- writer


class ServedLogWriter:
    """Buffers events and writes them as parquet parts; thread-safe, one per process.

    Events become Arrow tables as they are written (a few hundred at a time, from the
    recorder's thread), and a flush only joins and encodes them: converting thousands of
    rows at once would hold the GIL for tens of milliseconds and stall the requests of the
    same process. A part is written when `flush_rows` rows wait or on flush() / close();
    `flush_if_due()` is the time-based flush the recorder calls, after `flush_seconds`.
    A failed flush keeps the rows buffered (nothing is lost) and raises.
    """

    def __init__(
        self,
        directory: Path,
        flush_rows: int = 5000,
        flush_seconds: float = 5.0,
        feature_types: Mapping[str, FeatureKind] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.flush_rows = max(1, int(flush_rows))
        self.flush_seconds = flush_seconds
        self.rows_written = 0
        self.parts_written = 0
        self._kinds: dict[str, str] = dict(feature_types or {})
        self._views: set[str] = set()
        self._chunks: list[tuple[date, pa.Table]] = []
        self._pending = 0
        self._oldest: float | None = None
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return self._pending

    def write(self, events: Sequence[ScoreEvent], seqs: Sequence[int] | None = None) -> None:
        """Buffer `events`, with their audit seqs when known (one per event)."""
        if seqs is not None and len(seqs) != len(events):
            raise ValueError(f"{len(events)} events but {len(seqs)} audit seqs")
        with self._lock:
            if events and not self._chunks:
                self._oldest = time.monotonic()
            by_day: dict[date, list[tuple[ScoreEvent, int | None]]] = {}
            known: Sequence[int | None] = [None] * len(events) if seqs is None else seqs
            for event, seq in zip(events, known, strict=True):
                by_day.setdefault(as_utc(event.scored_at).date(), []).append((event, seq))
            for day, pairs in by_day.items():
                day_events = [e for e, _ in pairs]
                self._chunks.append((day, self.table(day_events, [q for _, q in pairs])))
                self._pending += len(day_events)
            if self._pending >= self.flush_rows:
                self._flush_locked()

    def due(self) -> bool:
        """Rows have waited flush_seconds or longer."""
        oldest = self._oldest
        return (
            bool(self._chunks)
            and oldest is not None
            and (time.monotonic() - oldest >= self.flush_seconds)
        )

    def flush_if_due(self) -> int:
        return self.flush() if self.due() else 0

    def flush(self) -> int:
        """Write every buffered row; returns how many."""
        with self._lock:
            return self._flush_locked()

    def close(self) -> None:
        self.flush()

    def _flush_locked(self) -> int:
        written = 0
        for day in sorted({d for d, _ in self._chunks}):
            tables = [t for d, t in self._chunks if d == day]
            for table in _joined(tables):
                self._write_part(day, table)
            rows = sum(t.num_rows for t in tables)
            # Drop a day only once its part is on disk, so a failure loses nothing.
            self._chunks = [(d, t) for d, t in self._chunks if d != day]
            self._pending -= rows
            written += rows
        self._oldest = time.monotonic() if self._chunks else None
        self.rows_written += written
        return written

    def _write_part(self, day: date, table: pa.Table) -> Path:
        partition = self.directory / f"date={day.isoformat()}"
        partition.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"part-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        # A leading dot hides the temporary file from pyarrow datasets and part-*.parquet globs.
        temporary = partition / f".{name}.tmp"
        try:
            pq.write_table(table, temporary)
            os.replace(temporary, partition / name)
        finally:
            temporary.unlink(missing_ok=True)
        self.parts_written += 1
        return partition / name

    def table(
        self, events: Sequence[ScoreEvent], seqs: Sequence[int | None] | None = None
    ) -> pa.Table:
        """The events as one arrow table: base columns, features, view timestamps."""
        columns: dict[str, pa.Array] = {
            f.name: pa.array([_base_value(e, f.name) for e in events], type=f.type)
            for f in BASE_SCHEMA
            if f.name != "audit_seq"
        }
        columns["audit_seq"] = pa.array(seqs or [None] * len(events), type=pa.int64())
        for name in self._feature_names(events):
            kind = self._kind(name, events)
            values = [self._value(name, kind, e.features.get(name)) for e in events]
            columns[name] = pa.array(values, type=_ARROW_TYPES[kind])
        self._views.update(v for e in events for v in e.feature_timestamps)
        for view in sorted(self._views):
            stamps = [e.feature_timestamps.get(view) for e in events]
            columns[f"{TS_PREFIX}{view}"] = pa.array(
                [None if s is None else as_utc(s) for s in stamps], type=TIMESTAMP
            )
        return pa.table(columns)

    def _feature_names(self, events: Sequence[ScoreEvent]) -> list[str]:
        names = set(self._kinds)
        for event in events:
            names.update(event.features)
        return sorted(names)

    def _kind(self, name: str, events: Sequence[ScoreEvent]) -> str:
        if name in self._kinds:
            return self._kinds[name]
        for event in events:
            kind = infer_kind(event.features.get(name))
            if kind is not None:
                self._kinds[name] = kind  # kept, so later parts share the schema
                return kind
        return "double"  # all missing so far: not remembered, a later value decides

    def _value(self, name: str, kind: str, value: Any) -> Any:
        try:
            return _coerce(kind, value)
        except (TypeError, ValueError) as exc:
            # Never fail a whole part over one odd value: log it as missing, once per column.
            if name not in self._warned:
                self._warned.add(name)
                log.warning("served log: %s is not %s (%s); logged as null", name, kind, exc)
            return None


def _joined(tables: list[pa.Table]) -> list[pa.Table]:
    """One table of the chunks (a view first seen in a later chunk is null before it), or
    the chunks as they are when their types cannot be unified (each becomes its own part)."""
    if len(tables) == 1:
        return tables
    try:
        return [pa.concat_tables(tables, promote_options="default").combine_chunks()]
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return tables


def _base_value(event: ScoreEvent, name: str) -> Any:
    value = getattr(event, name)
    return as_utc(value) if isinstance(value, datetime) else value


# --------------------------------------------------------------------------- outbox payload


def served_payload(event: ScoreEvent) -> str:
    """The event's served-log row as JSON text: datetimes tagged, NaN kept as NaN."""
    values = {name: getattr(event, name) for name in _PAYLOAD_FIELDS}
    return json.dumps(values, default=_encode_value, separators=(",", ":"))


def event_from_payload(text: str) -> ScoreEvent:
    """The event served_payload encoded (without its model row, which the audit log keeps)."""
    return ScoreEvent(vector=[], **json.loads(text, object_hook=_decode_object))


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        # Whole microseconds since the epoch: exact, and a fraction of isoformat's cost.
        return {_TIME_TAG: (as_utc(value) - _EPOCH) // _MICROSECOND}
    if hasattr(value, "tolist"):  # NumPy scalars and arrays
        return value.tolist()
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return list(value)
    return str(value)  # the writer logs a value of the wrong kind as null, once per column


def _decode_object(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _TIME_TAG in obj:
        return _EPOCH + timedelta(microseconds=obj[_TIME_TAG])
    return obj


def logged_seqs(directory: Path, seqs: Collection[int], since: datetime) -> set[int]:
    """Which of `seqs` the parts written since `since` hold (their audit_seq column).

    Only parts of the days from `since` on, modified since then, are opened: a row scored
    after `since` lands in its own day's partition, in a part written after it was scored.
    """
    wanted, found = set(seqs), set()
    since = as_utc(since)
    for partition in sorted(Path(directory).glob("date=*")):
        day = _day_of(partition)
        if day is None or day < since.date():
            continue
        for part in partition.glob("part-*.parquet"):
            with suppress(FileNotFoundError):
                if part.stat().st_mtime < since.timestamp():
                    continue
                if "audit_seq" not in pq.read_schema(part).names:
                    continue
                column = pq.read_table(part, columns=["audit_seq"]).column(0)
                found |= wanted.intersection(column.to_pylist())
    return found


# --------------------------------------------------------------------------- reader


def _day_of(partition: Path) -> date | None:
    try:
        return date.fromisoformat(partition.name.removeprefix("date="))
    except ValueError:
        return None


def _part_files(directory: Path, start: datetime | None, end: datetime | None) -> list[Path]:
    """Parts whose day partition can hold rows in [start, end)."""
    files: list[Path] = []
    for partition in sorted(directory.glob("date=*")):
        day = _day_of(partition)
        if day is None:
            continue
        if start is not None and day < as_utc(start).date():
            continue
        if end is not None and day > as_utc(end).date():
            continue
        files.extend(sorted(partition.glob("part-*.parquet")))
    return files


def _window(start: datetime | None, end: datetime | None) -> pc.Expression | None:
    conditions = []
    if start is not None:
        conditions.append(pc.field("scored_at") >= pa.scalar(as_utc(start), type=TIMESTAMP))
    if end is not None:
        conditions.append(pc.field("scored_at") < pa.scalar(as_utc(end), type=TIMESTAMP))
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else conditions[0] & conditions[1]


def read_served(
    directory: Path, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """Every logged row with start <= scored_at < end, oldest first.

    Parts written before a feature was added simply lack it (null); with nothing in the
    window the frame is empty but has the base columns.
    """
    files = _part_files(Path(directory), start, end)
    if not files:
        return BASE_SCHEMA.empty_table().to_pandas()
    schemas = [pq.read_schema(f) for f in files]
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    dataset = ds.dataset([str(f) for f in files], schema=schema, format="parquet")
    table = dataset.to_table(filter=_window(start, end)).sort_by("scored_at")
    return table.to_pandas()
