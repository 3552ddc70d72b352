"""Feature-view reads through Feast's provider interface, without get_online_features.

get_online_features prepares a request, reads each view through the provider's
`online_read` (the interface every Feast online store implements), then builds a protobuf
response and converts it back to Python in `to_dict`. For one account the building and
converting cost more than the read: 2.1 ms against 0.25 ms for the raw store read; for 100
accounts about 19 ms (benchmarks/online_latency.py). `DirectReader` calls the same
`online_read` and converts each value with the same `feast_value_type_to_python_type`, so
it returns what `to_dict(include_event_timestamps=True)` returns, in the same layout:
full feature names, `<name>__ts` event seconds (0 when absent), None for a missing value.
Tests hold it to get_online_features on SQLite and Redis.

Only views keyed by one entity are read this way; `for_refs` returns None otherwise and
the scorer uses get_online_features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from feast.infra.provider import get_provider
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
from feast.value_type import ValueType

from ingestion.online_batch import StoreReads, refs_by_view, store_reads
from ingestion.value_decoding import as_python, decode_column, python_values
from ingestion.value_encoding import entity_key_bytes

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView
    from feast.infra.provider import Provider

TS_SUFFIX = "__ts"
# Up to this many entities a read decodes value by value (one account: 0.25 ms against 0.9
# for whole-column decoding); above, a column at a time (100 accounts: 2.5x faster).
FEW_ROWS = 16


@dataclass(frozen=True)
class _Table:
    view: FeatureView
    join_key: str
    key_type: ValueType
    prefix: str
    features: list[str]
    types: dict[str, ValueType]


class DirectReader:
    """Reads the feature values behind a list of "view:feature" references."""

    def __init__(self, store: FeatureStore, tables: Sequence[_Table]) -> None:
        self._config = store.config
        self._provider: Provider = get_provider(store.config)
        self._tables = tuple(tables)

    @property
    def join_keys(self) -> list[str]:
        return _join_keys(self._tables)

    def read(self, entity_rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {k: [r[k] for r in entity_rows] for k in self.join_keys}
        keys_by_join: dict[str, list[EntityKeyProto]] = {}
        for table in self._tables:
            keys = keys_by_join.get(table.join_key)
            if keys is None:  # views on the same entity share the keys
                keys = [_entity_key(table, row[table.join_key]) for row in entity_rows]
                keys_by_join[table.join_key] = keys
            # A copy: some stores (Redis) append their own keys to the list they are given.
            wanted = list(table.features)
            found = self._provider.online_read(self._config, table.view, keys, wanted)
            # One event time per row and view: converted once, not once per feature.
            stamps = [_seconds(ts) for ts, _ in found]
            for name in table.features:
                kind = table.types[name]
                out[f"{table.prefix}__{name}"] = [
                    None
                    if values is None or name not in values
                    # The same conversion to_dict() applies.
                    else feast_value_type_to_python_type(values[name], kind)
                    for _, values in found
                ]
                out[f"{table.prefix}__{name}{TS_SUFFIX}"] = list(stamps)
        return out

    def close(self) -> None:
        """Nothing to release: the provider keeps its own connections."""


class ColumnReader:
    """DirectReader's answer, the same layout and values, read from Feast's own tables or
    hashes with one query per view (ingestion.online_batch) and decoded a column at a time
    (ingestion.value_decoding) instead of a protobuf per value: for a batch of 100 accounts
    the provider's online_read and the per-value conversion were most of the read."""

    def __init__(self, store: FeatureStore, tables: Sequence[_Table], source: StoreReads) -> None:
        self._tables = tuple(tables)
        self._source = source
        self._key_version = store.config.entity_key_serialization_version

    @property
    def join_keys(self) -> list[str]:
        return _join_keys(self._tables)

    def read(self, entity_rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {k: [r[k] for r in entity_rows] for k in self.join_keys}
        keys_by_join: dict[str, tuple[list[bytes], list[int]]] = {}
        for table in self._tables:
            if table.join_key not in keys_by_join:  # views on the same entity share the keys
                keys_by_join[table.join_key] = self._keys(table, out[table.join_key])
            keys, rows = keys_by_join[table.join_key]
            blobs, seconds = self._source.read_stamped(table.view, keys, table.features)
            stamps = [seconds[i] for i in rows]
            few = len(keys) <= FEW_ROWS
            for name in table.features:
                kind = table.types[name]
                # numpy's fixed cost per column outweighs a few values' conversion.
                column = (
                    python_values(blobs[name], kind)
                    if few
                    else as_python(decode_column(blobs[name], kind))
                )
                out[f"{table.prefix}__{name}"] = [column[i] for i in rows]
                out[f"{table.prefix}__{name}{TS_SUFFIX}"] = list(stamps)
        return out

    def _keys(self, table: _Table, values: list[Any]) -> tuple[list[bytes], list[int]]:
        """Each entity's key once (accounts share their customer's row), and each row's
        position among them."""
        if any(v is None for v in values):
            raise _keyless(table)
        unique = list(dict.fromkeys(values))
        where = {v: i for i, v in enumerate(unique)}
        keys = entity_key_bytes(unique, table.join_key, self._key_version)
        return keys, [where[v] for v in values]

    def close(self) -> None:
        self._source.close()


Reader = DirectReader | ColumnReader


def for_refs(store: FeatureStore, refs: Sequence[str]) -> Reader | None:
    """A reader for `refs` ("view:feature", feature views only), or None when a view is
    keyed by more or less than one entity. Column by column where ingestion.online_batch
    reads the store as Feast does (string keys; SQLite or Redis), else through the provider."""
    tables = _tables(store, refs)
    if tables is None:
        return None
    string_keys = all(t.key_type == ValueType.STRING for t in tables)
    source = store_reads(store) if string_keys else None
    if source is None:
        return DirectReader(store, tables)
    return ColumnReader(store, tables, source)


def _tables(store: FeatureStore, refs: Sequence[str]) -> list[_Table] | None:
    tables = []
    for name, features in refs_by_view(refs).items():
        view = store.get_feature_view(name)
        if len(view.entity_columns) != 1:
            return None
        key = view.entity_columns[0]
        types = {f.name: f.dtype.to_value_type() for f in view.features}
        tables.append(
            _Table(
                view=view,
                join_key=key.name,
                key_type=key.dtype.to_value_type(),
                prefix=view.projection.name_to_use(),
                features=features,
                types={f: types[f] for f in features},
            )
        )
    return tables


def _join_keys(tables: Sequence[_Table]) -> list[str]:
    return list(dict.fromkeys(t.join_key for t in tables))


def _keyless(table: _Table) -> ValueError:
    # Feast would fail with "Value type not supported for feast feature store", naming
    # neither the key nor the cause; no row is keyed by nothing, so say which.
    return ValueError(
        f"an entity row without a {table.join_key} reached the online read of "
        f"{table.view.name}: resolve the key first (an unknown account has none)"
    )


def _entity_key(table: _Table, value: Any) -> EntityKeyProto:
    if value is None:
        raise _keyless(table)
    if table.key_type == ValueType.STRING and isinstance(value, str):
        # What python_values_to_proto_values builds for a string, without its type checks.
        proto = ValueProto(string_val=value)
    else:
        proto = python_values_to_proto_values([value], table.key_type)[0]
    return EntityKeyProto(join_keys=[table.join_key], entity_values=[proto])


def _seconds(ts: datetime | None) -> int:
    # As Feast's response: the row's event time in whole seconds (naive means UTC), 0 for
    # an entity it did not find.
    if ts is None:
        return 0
    return math.floor((ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp())
