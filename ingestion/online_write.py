"""Materialisation's write path beside Feast's: the same keys and bytes, without the protos.

Feast's `store.materialize` reads each view's newest rows, turns every value of every row
into a ValueProto in Python and has the online store serialise each one again; that
per-value work, not the store, is where its time goes (benchmarks/bench_materialize.py).
This module does the same load with the work per column instead of per value:

1. read: DuckDB over the view's parquet source, the newest row per entity whose event time
   is in [start, end] (both ends included, as Feast's offline read), newest event time
   first, then newest created time (Feast's dedup);
2. encode: ingestion.value_encoding gives, column by column, the bytes Feast's own
   conversion gives for each value and entity key;
3. write: SQLite rows or Redis hashes laid out exactly as Feast's online stores write them
   (same table and column values, same hash key, field names and `_ts:<view>` stamp, and
   for Redis the same rule that a row never replaces a newer one), then the registry's
   materialisation interval, as `store.materialize` records it.

Feast stays the contract: tests/integration/test_online_write.py writes the same snapshot
both ways and compares the stores byte for byte, then reads it back through
get_online_features. Whatever this path does not reproduce (another online store, a view
with a field mapping or several join keys, Feast's online view versioning, vector or
value_num columns) is loaded by Feast itself: `supports()` says which.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingestion.duckdb_text import ident
from ingestion.value_encoding import encode_column, entity_key_bytes

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView
    from feast.value_type import ValueType

log = logging.getLogger(__name__)

# Entities written per SQLite executemany / Redis pipeline: bounds the bytes held at once.
CHUNK_ROWS = 50_000
# The stored `_ts:<view>` stamps of many keys in one command: a pipelined HGET per key cost
# as much client time as the writes themselves. A missing one is false in Lua, nil here.
READ_STAMPS = """
local stamps = {}
for i, key in ipairs(KEYS) do
  stamps[i] = redis.call('HGET', key, ARGV[1])
end
return stamps
"""
STAMP_READ_KEYS = 10_000


@dataclass(frozen=True)
class ViewLoad:
    """What one view's load wrote."""

    view: str
    entities: int
    skipped: int  # Redis rows not written because the store held a newer one
    seconds: float


def supports(store: FeatureStore, views: list[FeatureView]) -> str | None:
    """None when this path can load these views into this store exactly as Feast would;
    otherwise the reason it cannot (Feast then loads them)."""
    config = store.config
    online = config.online_store
    if config.registry.enable_online_feature_view_versioning:
        return "online feature view versioning is on"
    if online.type == "sqlite":
        if getattr(online, "vector_enabled", False) or getattr(
            online, "enable_openai_compatible_store", False
        ):
            return "the SQLite store has vector or value_num columns"
    elif online.type == "redis":
        if str(getattr(online.redis_type, "value", online.redis_type)) != "redis":
            return f"redis_type {online.redis_type} (only a single Redis is written directly)"
    else:
        return f"online store type {online.type}"
    for view in views:
        reason = _view_unsupported(view)
        if reason:
            return f"view {view.name}: {reason}"
    return None


def _view_unsupported(view: FeatureView) -> str | None:
    source = _source(view)
    path = getattr(source, "path", None)
    if path is None or not str(path).endswith(".parquet"):
        return "its source is not a parquet file"
    if source.field_mapping:
        return "its source has a field mapping"
    if len(view.entity_columns) != 1 or view.entity_columns[0].dtype.to_value_type().name != (
        "STRING"
    ):
        return "it is not keyed by one string join key"
    return None


def write_views(
    store: FeatureStore, views: list[FeatureView], start: datetime, end: datetime
) -> list[ViewLoad]:
    """Load the newest row per entity in [start, end] of each view, then record the
    interval in the registry; callers check `supports` first.

    The next chunk is read and encoded on a second thread while this one is written: the
    DuckDB read and the store's I/O release the GIL, so the two overlap.
    """
    writer = _writer(store)
    loads: list[ViewLoad] = []
    counts = {view.name: [0, 0] for view in views}
    began = time.perf_counter()
    try:
        for view, batch in _prefetched(_chunks(store, views, start, end)):
            if batch is not None:
                done, kept = writer.write(view, batch)
                counts[view.name][0] += done
                counts[view.name][1] += kept
                continue
            # The view's last chunk is written: record its interval, as Feast does.
            store.registry.apply_materialization(view, store.project, start, end)
            written, kept = counts[view.name]
            loads.append(ViewLoad(view.name, written, kept, time.perf_counter() - began))
            log.info("%s: %d entities written, %d kept newer rows", view.name, written, kept)
            began = time.perf_counter()
    finally:
        writer.close()
    return loads


def _chunks(
    store: FeatureStore, views: list[FeatureView], start: datetime, end: datetime
) -> Iterator[tuple[FeatureView, _Batch | None]]:
    """Every view's encoded chunks, each view closed by (view, None)."""
    for view in views:
        for batch in _newest_rows(store, view, start, end):
            yield view, batch
        yield view, None


_END = object()


def _prefetched(items: Iterator[Any], ahead: int = 2) -> Iterator[Any]:
    """items, with the next `ahead` computed on a worker thread while the caller uses this
    one. The pool's one thread runs the next() calls in order, one at a time, so the
    generator is never entered twice at once. Two ahead, because a view's end marker
    follows its last chunk: one ahead would let the worker idle on the marker."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="materialise-read") as pool:
        upcoming = deque(pool.submit(next, items, _END) for _ in range(ahead))
        while (item := upcoming.popleft().result()) is not _END:
            upcoming.append(pool.submit(next, items, _END))
            yield item


# --- read ----------------------------------------------------------------------------------


def _newest_rows(
    store: FeatureStore, view: FeatureView, start: datetime, end: datetime
) -> Iterator[_Batch]:
    """The view's newest row per entity in [start, end], encoded, CHUNK_ROWS at a time."""
    features = [(field.name, field.dtype.to_value_type()) for field in view.features]
    table = _read_newest(store, view, start, end)
    for offset in range(0, table.num_rows, CHUNK_ROWS):
        yield _encode(table.slice(offset, CHUNK_ROWS), table, view, features)


def _read_newest(
    store: FeatureStore, view: FeatureView, start: datetime, end: datetime
) -> pa.Table:
    import duckdb  # noqa: PLC0415

    source = _source(view)
    event, created = source.timestamp_field, source.created_timestamp_column
    join_key = view.entity_columns[0].name
    features = [field.name for field in view.features]
    columns = [join_key, *features, event] + ([created] if created else [])
    order = f"{ident(event)} DESC" + (f", {ident(created)} DESC" if created else "")
    query = (
        f"SELECT {', '.join(map(ident, columns))} FROM read_parquet(?) "  # nosec B608  # identifiers quoted (ident), values bound
        f"WHERE CAST({ident(event)} AS TIMESTAMP) BETWEEN ? AND ? "
        f"QUALIFY row_number() OVER (PARTITION BY {ident(join_key)} ORDER BY {order}) = 1"
    )
    path = _source_path(store, source.path)
    with duckdb.connect() as con:
        # Feast compares naive UTC times; so must the cast above.
        con.execute("SET TimeZone = 'UTC'")
        bounds = [_naive_utc(start), _naive_utc(end)]
        table: pa.Table = con.sql(query, params=[path, *bounds]).to_arrow_table()
    return table.combine_chunks()


def _source(view: FeatureView) -> Any:
    """The view's batch source; `supports` made sure it is a parquet FileSource."""
    return view.batch_source


def _source_path(store: FeatureStore, path: str) -> str:
    resolved = Path(path)
    if not resolved.is_absolute() and store.config.repo_path is not None:
        resolved = Path(store.config.repo_path) / resolved
    return str(resolved)


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


# --- encode --------------------------------------------------------------------------------


@dataclass
class _Batch:
    keys: list[bytes]  # serialised entity keys
    values: dict[str, list[bytes]]  # feature -> serialised ValueProto per row
    columns: dict[str, tuple[pa.Array, ValueType]]  # feature -> the values, as Feast sees them
    event: _Times
    created: _Times | None


@dataclass
class _Times:
    """A timestamp column as the stores write it: its distinct values (naive UTC) and each
    row's index into them, so that every conversion runs once per distinct time."""

    distinct: list[datetime]
    rows: list[int]

    def sqlite(self) -> list[int]:
        # Feast's SQLite adapter for datetime is int(value.timestamp()) of the naive UTC
        # value (the last of its register_adapter calls wins): the same call.
        seconds = [int(moment.timestamp()) for moment in self.distinct]
        return [seconds[row] for row in self.rows]

    def redis(self) -> tuple[list[bytes], list[int]]:
        """Per row, Feast's Timestamp proto bytes for the time and its nanoseconds."""
        from google.protobuf.timestamp_pb2 import Timestamp  # noqa: PLC0415

        made = []
        for moment in self.distinct:
            stamp = Timestamp()
            stamp.FromDatetime(moment.replace(tzinfo=UTC))
            made.append((stamp.SerializeToString(), stamp.seconds * 1_000_000_000 + stamp.nanos))
        return [made[row][0] for row in self.rows], [made[row][1] for row in self.rows]


def _encode(
    rows: pa.Table, whole: pa.Table, view: FeatureView, features: list[tuple[str, ValueType]]
) -> _Batch:
    source = _source(view)
    join_key = view.entity_columns[0].name
    values, columns = {}, {}
    for name, value_type in features:
        column = _as_feast_sees(rows.column(name), whole.column(name), value_type)
        values[name] = encode_column(column, value_type)
        columns[name] = (column, value_type)
    created = source.created_timestamp_column
    return _Batch(
        keys=entity_key_bytes(rows.column(join_key).to_pylist(), join_key),
        values=values,
        columns=columns,
        event=_times(rows.column(source.timestamp_field)),
        created=_times(rows.column(created)) if created else None,
    )


def _as_feast_sees(part: pa.ChunkedArray, whole: pa.ChunkedArray, value_type: ValueType) -> Any:
    """The chunk as Feast's conversion would see it. Feast converts a view's rows in one
    batch, after a round trip through pandas that makes an int64 column holding a null
    anywhere a float64 one; a chunk of such a column must be encoded as float64 too."""
    array = part.combine_chunks()
    if value_type.name == "INT64" and pa.types.is_integer(array.type) and whole.null_count:
        return pc.cast(array, pa.float64(), safe=False)
    return array


def _value_texts(column: pa.Array, value_type: ValueType) -> list[Any]:
    """Feast's SQLite value_text: str() of a string, int64 or double value, else NULL.
    A double NaN is no value at all in Feast's proto (NULL); an INT64 held as float is
    int()-truncated first, as Feast's conversion does."""
    kind = value_type.name
    if kind == "STRING":
        return column.to_pylist()
    if kind not in ("DOUBLE", "INT64"):
        return [None] * len(column)
    if pa.types.is_integer(column.type):
        if not column.null_count:
            return [str(value) for value in column.to_pylist()]
        # Feast sees an int64 array holding a null as float64 (value_encoding's INT64 note).
        column = pc.cast(column, pa.float64(), safe=False)
    floats = column.to_numpy(zero_copy_only=False).astype(np.float64)
    present = ~np.isnan(floats)
    cast = (lambda x: str(int(x))) if kind == "INT64" else repr
    return [
        cast(value) if ok else None
        for value, ok in zip(floats.tolist(), present.tolist(), strict=True)
    ]


def _times(column: pa.ChunkedArray) -> _Times:
    encoded = pc.dictionary_encode(column.combine_chunks())
    distinct = [_naive_utc(moment) for moment in encoded.dictionary.to_pylist()]
    return _Times(distinct, encoded.indices.to_numpy(zero_copy_only=False).tolist())


# --- write ---------------------------------------------------------------------------------


class _Writer:
    def write(self, view: FeatureView, batch: _Batch) -> tuple[int, int]:
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to release by default."""


def _writer(store: FeatureStore) -> _Writer:
    if store.config.online_store.type == "sqlite":
        return _SqliteWriter(store)
    return _RedisWriter(store)


class _SqliteWriter(_Writer):
    """Rows (entity_key, feature_name, value, value_text, event_ts, created_ts) upserted
    into Feast's table for the view, one transaction per chunk, as Feast's SQLite store."""

    def __init__(self, store: FeatureStore) -> None:
        from feast.infra.online_stores.helpers import compute_table_id  # noqa: PLC0415
        from feast.infra.online_stores.sqlite import SqliteOnlineStore  # noqa: PLC0415

        self._project = store.project
        self._table_id = compute_table_id
        self._conn = sqlite3.connect(SqliteOnlineStore._get_db_path(store.config))

    def write(self, view: FeatureView, batch: _Batch) -> tuple[int, int]:
        table = ident(self._table_id(self._project, view))
        sql = (
            f"INSERT INTO {table} (entity_key, feature_name, value, value_text, event_ts, "  # nosec B608  # table id quoted (ident), values bound
            "created_ts) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entity_key, feature_name) DO "
            "UPDATE SET value = excluded.value, value_text = excluded.value_text, "
            "event_ts = excluded.event_ts, created_ts = excluded.created_ts;"
        )
        event = batch.event.sqlite()
        created = batch.created.sqlite() if batch.created else [None] * len(event)
        with self._conn:
            for name, values in batch.values.items():
                texts = _value_texts(*batch.columns[name])
                rows = zip(batch.keys, repeat(name), values, texts, event, created)
                self._conn.executemany(sql, rows)
        return len(batch.keys), 0

    def close(self) -> None:
        self._conn.close()


class _RedisWriter(_Writer):
    """One HSET per entity of the view's `_ts:<view>` stamp and its murmur3-named fields,
    under the key Feast uses (entity key bytes + project), skipping an entity whose stored
    stamp is as new or newer, as Feast's Redis store does."""

    def __init__(self, store: FeatureStore) -> None:
        from feast.infra.online_stores.redis import RedisOnlineStore  # noqa: PLC0415

        # Feast's own client construction: the same connection string, password, TLS, db.
        self._client = RedisOnlineStore()._get_client(store.config.online_store)
        self._read_stamps = self._client.register_script(READ_STAMPS)
        self._project = store.project.encode("utf8")
        self._ttl = store.config.online_store.key_ttl_seconds

    def write(self, view: FeatureView, batch: _Batch) -> tuple[int, int]:
        from feast.infra.online_stores.helpers import _mmh3  # noqa: PLC0415

        stamp_field = f"_ts:{view.name}".encode()
        fields = [_mmh3(f"{view.name}:{name}") for name in batch.values]
        keys = [key + self._project for key in batch.keys]
        stamps, nanos = batch.event.redis()
        newest = self._stored_nanos(keys, stamp_field)
        values_by_row = zip(*batch.values.values(), strict=True)
        per_row = zip(keys, stamps, nanos, newest, values_by_row, strict=True)
        written = 0
        with self._client.pipeline(transaction=False) as pipe:
            for key, stamp, new, stored, values in per_row:
                if stored and new <= stored:
                    continue
                # HSET key field value ..., as Feast's hset(mapping=...) sends it.
                pairs = chain.from_iterable(zip(fields, values, strict=True))
                pipe.execute_command("HSET", key, stamp_field, stamp, *pairs)
                if self._ttl:
                    pipe.expire(key, self._ttl)
                written += 1
            pipe.execute()
        return written, len(keys) - written

    def _stored_nanos(self, keys: list[bytes], stamp_field: bytes) -> list[int]:
        from google.protobuf.timestamp_pb2 import Timestamp  # noqa: PLC0415

        stored: list[bytes | None] = []
        for begin in range(0, len(keys), STAMP_READ_KEYS):
            stored.extend(
                self._read_stamps(keys=keys[begin : begin + STAMP_READ_KEYS], args=[stamp_field])
            )
        out = []
        stamp = Timestamp()
        for raw in stored:
            if raw:
                stamp.ParseFromString(raw)
                out.append(stamp.seconds * 1_000_000_000 + stamp.nanos)
            else:
                out.append(0)
        return out

    def close(self) -> None:
        self._client.close()
