"""ingestion.value_encoding on the real feature tables: every online view, column and row
byte-identical to what Feast's materialisation writes.

The reference is feast.utils._convert_arrow_to_proto, the function Feast's compute engines
call on each batch before online_write_batch serialises its Values and keys. The tables are
checked as the parquet files hold them and as the local compute engine hands them to its
write node (its filter and dedup nodes pass every table through pandas and back).
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast import FeatureView, FileSource
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.utils import _convert_arrow_to_proto
from feast.value_type import ValueType

from feature_repo.definitions import Definitions, build_definitions
from ingestion import value_encoding
from ingestion.feast_store import EMBEDDED_PROFILE, ONLINE_VIEWS
from ingestion.value_encoding import encode_column, entity_key_bytes
from tests.integration import conftest as integration
from tests.integration.conftest import FeatureData

pytestmark = pytest.mark.integration

# The session fixture of the integration tier, shared rather than rebuilt.
feature_data = integration.feature_data

KEY_VERSION = int(EMBEDDED_PROFILE["entity_key_serialization_version"])


def as_parquet_holds(table: pa.Table) -> pa.Table:
    return table


def as_the_write_node_gets(table: pa.Table) -> pa.Table:
    return pa.Table.from_pandas(table.to_pandas(), preserve_index=False)


@pytest.fixture(scope="module")
def definitions(feature_data: FeatureData) -> Definitions:
    return build_definitions(feature_data.features_dir)


def online_view(definitions: Definitions, name: str) -> FeatureView:
    (view,) = [v for v in definitions.views.all() if v.name == name]
    return view


def read_source(view: FeatureView) -> pa.Table:
    source = view.batch_source
    assert isinstance(source, FileSource)
    return pq.read_table(source.path)


def join_keys(definitions: Definitions, view: FeatureView) -> dict[str, ValueType]:
    return {e.join_key: e.value_type for e in definitions.entities if e.name in view.entities}


@pytest.fixture
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if any column needs Feast's own conversion: the real tables must take the fast
    path, or the speed-up would not reach materialisation."""

    def refuse(array: pa.Array, value_type: ValueType) -> list[bytes]:
        raise AssertionError(f"{value_type.name} column of {array.type} fell back to Feast")

    monkeypatch.setattr(value_encoding, "_feast_encode", refuse)


@pytest.mark.usefixtures("no_fallback")
@pytest.mark.parametrize("prepare", [as_parquet_holds, as_the_write_node_gets])
@pytest.mark.parametrize("view_name", ONLINE_VIEWS)
def test_every_value_and_key_is_what_feast_writes(
    definitions: Definitions, view_name: str, prepare: Callable[[pa.Table], pa.Table]
) -> None:
    view = online_view(definitions, view_name)
    table = prepare(read_source(view))
    keys = join_keys(definitions, view)
    rows = _convert_arrow_to_proto(table.combine_chunks().to_batches()[0], view, keys)
    assert len(rows) == table.num_rows > 0

    for field in view.features:
        ours = encode_column(table.column(field.name), field.dtype.to_value_type())
        theirs = [values[field.name].SerializeToString() for _, values, _, _ in rows]
        assert ours == theirs, field.name

    (join_key,) = keys
    ours = entity_key_bytes(table.column(join_key).to_pylist(), join_key, KEY_VERSION)
    theirs = [serialize_entity_key(key, KEY_VERSION) for key, _, _, _ in rows]
    assert ours == theirs


def test_the_tables_cover_every_encoded_value_type_and_nulls(
    definitions: Definitions,
) -> None:
    """So the test above proves what it claims: all six types, and null values among them."""
    seen: set[str] = set()
    with_nulls: set[str] = set()
    for name in ONLINE_VIEWS:
        view = online_view(definitions, name)
        table = read_source(view)
        for field in view.features:
            seen.add(field.dtype.to_value_type().name)
            if table.column(field.name).null_count:
                with_nulls.add(field.dtype.to_value_type().name)
    encoded = {"DOUBLE", "INT64", "STRING", "UNIX_TIMESTAMP", "DOUBLE_LIST", "INT64_LIST"}
    assert seen == encoded
    assert {"DOUBLE", "UNIX_TIMESTAMP"} <= with_nulls
