"""ingestion.value_encoding against Feast's own functions, byte for byte.

The reference is what Feast's materialisation runs (feast.utils._columns_to_proto_values):
python_values_to_proto_values(array.to_numpy(zero_copy_only=False), value_type), each Value
then serialised as the online stores do; and serialize_entity_key for the keys. No expected
bytes are written by hand. Where Feast raises, the encoder must raise the same error type.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestion.value_encoding import encode_column, entity_key_bytes

pytestmark = pytest.mark.unit

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
NAN, INF = float("nan"), float("inf")
BERLIN = timezone(timedelta(hours=1), "CET")
PROPERTY = settings(max_examples=200, deadline=None)


def feast_bytes(column: pa.Array | pa.ChunkedArray, value_type: ValueType) -> list[bytes]:
    """Feast's conversion of each batch (a chunk is one RecordBatch to it)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    return [
        proto.SerializeToString()
        for chunk in chunks
        for proto in python_values_to_proto_values(chunk.to_numpy(zero_copy_only=False), value_type)
    ]


def outcome(convert: Callable[[], list[bytes]]) -> list[bytes] | type[BaseException]:
    try:
        return convert()
    except Exception as exc:
        return type(exc)


def assert_like_feast(column: pa.Array | pa.ChunkedArray, value_type: ValueType) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = outcome(lambda: feast_bytes(column, value_type))
    ours = outcome(lambda: encode_column(column, value_type))
    assert ours == theirs


def ts(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    micro: int = 0,
    tz: timezone | None = UTC,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)


def lists_of(element: pa.DataType, rows: list[Any], large: bool = False) -> pa.Array:
    return pa.array(rows, pa.large_list(element) if large else pa.list_(element))


# --- hand-picked columns -----------------------------------------------------------------------

CASES: dict[str, tuple[pa.Array, ValueType]] = {
    "double ordinary": (pa.array([1.5, -2.25, 1e300, 5e-324, 123456.789]), ValueType.DOUBLE),
    "double null nan inf zero": (
        pa.array([None, NAN, INF, -INF, 0.0, -0.0, 1.0], pa.float64()),
        ValueType.DOUBLE,
    ),
    "double all null": (pa.array([None, None], pa.float64()), ValueType.DOUBLE),
    "double all nan": (pa.array([NAN, NAN]), ValueType.DOUBLE),
    "double zero first": (pa.array([0.0, 2.0]), ValueType.DOUBLE),
    "double empty": (pa.array([], pa.float64()), ValueType.DOUBLE),
    "double sliced": (pa.array([1.0, None, 3.0, NAN, 5.0])[1:4], ValueType.DOUBLE),
    "int64 ordinary": (pa.array([0, 1, -1, 42, -42, 10**12], pa.int64()), ValueType.INT64),
    "int64 limits": (
        pa.array([INT64_MIN, INT64_MAX, INT64_MIN + 1, INT64_MAX - 1]),
        ValueType.INT64,
    ),
    "int64 varint edges": (
        pa.array([127, 128, 16383, 16384, 2**35 - 1, 2**35, 2**56, 2**62, -128, -(2**62)]),
        ValueType.INT64,
    ),
    # A null makes the whole array float64 on its way to Feast: 2**53 + 1 comes out rounded.
    "int64 with null": (
        pa.array([None, 2**53 + 1, -(2**53) - 3, 0, 7], pa.int64()),
        ValueType.INT64,
    ),
    "int64 min with null": (pa.array([INT64_MIN, None], pa.int64()), ValueType.INT64),
    "int64 max with null raises": (pa.array([INT64_MAX, None], pa.int64()), ValueType.INT64),
    "int64 all null": (pa.array([None, None], pa.int64()), ValueType.INT64),
    "int64 sliced past its null": (pa.array([None, 2**53 + 1, 3])[1:], ValueType.INT64),
    "float64 typed int64": (pa.array([1.7, -1.7, 0.5, -0.0, None, NAN, 2.0**62]), ValueType.INT64),
    "float64 inf typed int64 raises": (pa.array([1.0, INF]), ValueType.INT64),
    "float64 too large typed int64 raises": (pa.array([2.0**63, -INF]), ValueType.INT64),
    "float64 lowest typed int64": (pa.array([-(2.0**63), None]), ValueType.INT64),
    "string ordinary": (pa.array(["ACC-00000001", "C-7", "x"]), ValueType.STRING),
    "string empty null unicode": (
        pa.array(["", None, "é", "€uro", "😀", "日本語", "e\u0301", "nul\x00byte", "\u202e"]),
        ValueType.STRING,
    ),
    "string long": (pa.array(["x" * 127, "y" * 128, "ü" * 5000]), ValueType.STRING),
    "string all null": (pa.array([None, None], pa.string()), ValueType.STRING),
    "string empty array": (pa.array([], pa.string()), ValueType.STRING),
    "large string sliced": (
        pa.array(["a", None, "ß", "c"], pa.large_string())[1:3],
        ValueType.STRING,
    ),
    "timestamp utc micros": (
        pa.array(
            [ts(2025, 1, 1, 12, 0, 0, 999999), ts(2025, 6, 30), ts(1970, 1, 1), None],
            pa.timestamp("us", tz="UTC"),
        ),
        ValueType.UNIX_TIMESTAMP,
    ),
    "timestamp before 1970 floors": (
        pa.array(
            [ts(1969, 12, 31, 23, 59, 59, 500000), ts(1900, 1, 1, 0, 0, 0, 1)],
            pa.timestamp("us", tz="UTC"),
        ),
        ValueType.UNIX_TIMESTAMP,
    ),
    "timestamp other zone": (
        pa.array([ts(2025, 3, 30, 2, 30, tz=BERLIN), None], pa.timestamp("us", tz="Europe/Berlin")),
        ValueType.UNIX_TIMESTAMP,
    ),
    "timestamp naive ns": (
        pa.array([ts(2025, 1, 1, 0, 0, 1, 5, tz=None), None], pa.timestamp("ns")),
        ValueType.UNIX_TIMESTAMP,
    ),
    "timestamp seconds": (
        pa.array([0, -1, 1, 1_700_000_000], pa.timestamp("s", tz="UTC")),
        ValueType.UNIX_TIMESTAMP,
    ),
    "timestamp millis": (pa.array([-1, 999, -1001], pa.timestamp("ms")), ValueType.UNIX_TIMESTAMP),
    "timestamp all null": (
        pa.array([None, None], pa.timestamp("us", tz="UTC")),
        ValueType.UNIX_TIMESTAMP,
    ),
    "double list ordinary": (
        lists_of(pa.float64(), [[1.0, 2.5], [-3.0], [0.0] * 17, [1e300, -0.0]]),
        ValueType.DOUBLE_LIST,
    ),
    "double list null empty nan": (
        lists_of(pa.float64(), [None, [], [None], [NAN, None, INF, -INF], [], None]),
        ValueType.DOUBLE_LIST,
    ),
    "double list all empty": (lists_of(pa.float64(), [[], None, []]), ValueType.DOUBLE_LIST),
    "double list all null": (lists_of(pa.float64(), [None, None]), ValueType.DOUBLE_LIST),
    "double list long": (
        lists_of(pa.float64(), [list(np.linspace(0, 1, 300))]),
        ValueType.DOUBLE_LIST,
    ),
    "double large list sliced": (
        lists_of(pa.float64(), [[1.0], None, [2.0, None], [], [3.0]], large=True)[1:4],
        ValueType.DOUBLE_LIST,
    ),
    "int64 list ordinary": (
        lists_of(pa.int64(), [[1, 2, 3], [0], [-1, INT64_MIN, INT64_MAX], list(range(300))]),
        ValueType.INT64_LIST,
    ),
    "int64 list null empty": (
        lists_of(pa.int64(), [None, [], [5], [], None]),
        ValueType.INT64_LIST,
    ),
    "int64 list all empty": (lists_of(pa.int64(), [[], None]), ValueType.INT64_LIST),
    # A null element turns every list into floats on the way to Feast, which then raises.
    "int64 list null element raises": (
        lists_of(pa.int64(), [[1, 2], [None], None]),
        ValueType.INT64_LIST,
    ),
    "int64 list null element only": (lists_of(pa.int64(), [[None], []]), ValueType.INT64_LIST),
    "int64 large list sliced": (
        lists_of(pa.int64(), [[1], [None], [2, 3], [], [4]], large=True)[2:],
        ValueType.INT64_LIST,
    ),
    # Types handed to Feast's own conversion, and supported types from unexpected Arrow types.
    "bool": (pa.array([True, False, None]), ValueType.BOOL),
    "float": (pa.array([1.5, None], pa.float32()), ValueType.FLOAT),
    "int32": (pa.array([1, -1, None], pa.int32()), ValueType.INT32),
    "string list": (lists_of(pa.string(), [["a", None], [], None]), ValueType.STRING_LIST),
    "unix timestamp list": (
        lists_of(pa.timestamp("us", tz="UTC"), [[ts(2025, 1, 1)], None]),
        ValueType.UNIX_TIMESTAMP_LIST,
    ),
    "int32 typed int64": (pa.array([1, None, 3], pa.int32()), ValueType.INT64),
    "int64 typed double": (pa.array([0, 1, 2**60], pa.int64()), ValueType.DOUBLE),
    "float32 typed double": (pa.array([0.1, None], pa.float32()), ValueType.DOUBLE),
    "dictionary typed string": (pa.array(["a", None, "a"]).dictionary_encode(), ValueType.STRING),
    "int64 typed string": (pa.array([1, None], pa.int64()), ValueType.STRING),
    "int64 typed timestamp": (pa.array([1_700_000_000, -5], pa.int64()), ValueType.UNIX_TIMESTAMP),
    "date typed timestamp": (pa.array([0, 20000], pa.date32()), ValueType.UNIX_TIMESTAMP),
    "float32 list typed double list": (
        lists_of(pa.float32(), [[0.1], None]),
        ValueType.DOUBLE_LIST,
    ),
    "int32 list typed int64 list": (lists_of(pa.int32(), [[1], []]), ValueType.INT64_LIST),
    "fixed size list": (
        pa.array([[1.0, 2.0], None], pa.list_(pa.float64(), 2)),
        ValueType.DOUBLE_LIST,
    ),
}


@pytest.mark.parametrize(("column", "value_type"), CASES.values(), ids=list(CASES))
def test_a_column_encodes_as_feast_serialises_it(column: pa.Array, value_type: ValueType) -> None:
    assert_like_feast(column, value_type)


def test_the_hand_picked_cases_include_feast_raising() -> None:
    """So the cases above prove the encoder raises where Feast does, not just that both pass."""
    raising = [name for name, case in CASES.items() if feast_raises(*case)]
    assert {"int64 max with null raises", "int64 list null element raises"} <= set(raising)


def feast_raises(column: pa.Array, value_type: ValueType) -> bool:
    try:
        feast_bytes(column, value_type)
    except Exception:
        return True
    return False


def test_a_null_list_over_null_elements_is_an_empty_value_as_in_feast() -> None:
    # The element behind the null list is null: Feast sees the other lists as floats too.
    lists = pa.ListArray.from_arrays(
        pa.array([0, 0, 1], pa.int32()), pa.array([None], pa.int64()), mask=pa.array([False, True])
    )
    assert_like_feast(lists, ValueType.INT64_LIST)
    assert_like_feast(lists.cast(pa.list_(pa.float64())), ValueType.DOUBLE_LIST)


def test_a_chunked_column_is_encoded_chunk_by_chunk() -> None:
    # Only the second chunk holds a null, so only there is 2**53 + 1 rounded by Feast.
    column = pa.chunked_array([[2**53 + 1, 1], [2**53 + 1, None]], pa.int64())
    assert_like_feast(column, ValueType.INT64)
    assert encode_column(column, ValueType.INT64) == (
        encode_column(column.chunk(0), ValueType.INT64)
        + encode_column(column.chunk(1), ValueType.INT64)
    )
    assert encode_column(pa.chunked_array([], pa.float64()), ValueType.DOUBLE) == []


# --- what Feast does, pinned: a Feast upgrade that changes it must be looked at -----------------


def feast_values(values: list[Any], value_type: ValueType) -> list[ValueProto]:
    return python_values_to_proto_values(values, value_type)


def test_feast_writes_nan_and_null_doubles_as_empty_values() -> None:
    column = pa.array([NAN, None, 1.0], pa.float64()).to_numpy(zero_copy_only=False)
    protos = feast_values(column, ValueType.DOUBLE)
    assert [p.WhichOneof("val") for p in protos] == [None, None, "double_val"]


def test_feast_writes_a_null_timestamp_as_int64_min_not_as_empty() -> None:
    column = pa.array([None, ts(2025, 1, 1)], pa.timestamp("us", tz="UTC"))
    protos = feast_values(column.to_numpy(zero_copy_only=False), ValueType.UNIX_TIMESTAMP)
    assert [p.unix_timestamp_val for p in protos] == [INT64_MIN, 1735689600]


def test_feast_rounds_int64s_in_a_column_with_a_null_unlike_for_python_ints() -> None:
    column = pa.array([2**53 + 1, None], pa.int64())
    from_numpy = feast_values(column.to_numpy(zero_copy_only=False), ValueType.INT64)
    from_python = feast_values(column.to_pylist(), ValueType.INT64)
    assert from_numpy[0].int64_val == 2**53  # what materialisation writes
    assert from_python[0].int64_val == 2**53 + 1


def test_feast_floors_datetime64_seconds_but_truncates_python_datetimes() -> None:
    column = pa.array([ts(1969, 12, 31, 23, 59, 59, 500000)], pa.timestamp("us", tz="UTC"))
    from_numpy = feast_values(column.to_numpy(zero_copy_only=False), ValueType.UNIX_TIMESTAMP)
    from_python = feast_values(column.to_pylist(), ValueType.UNIX_TIMESTAMP)
    assert from_numpy[0].unix_timestamp_val == -1  # what materialisation writes
    assert from_python[0].unix_timestamp_val == 0


# --- properties ---------------------------------------------------------------------------------

doubles = st.floats(allow_nan=True, allow_infinity=True)
int64s = st.integers(INT64_MIN, INT64_MAX)
slices = st.tuples(st.integers(0, 3), st.integers(0, 3))


def sliced(column: pa.Array, cut: tuple[int, int]) -> pa.Array:
    start = min(cut[0], len(column))
    return column.slice(start, max(len(column) - start - cut[1], 0))


@PROPERTY
@given(st.lists(st.none() | doubles, max_size=30), slices)
def test_any_doubles_encode_as_in_feast(values: list[float | None], cut: tuple[int, int]) -> None:
    assert_like_feast(sliced(pa.array(values, pa.float64()), cut), ValueType.DOUBLE)


@PROPERTY
@given(st.lists(int64s, max_size=30), st.lists(st.none() | int64s, max_size=30))
def test_any_int64s_encode_as_in_feast(values: list[int], with_nulls: list[int | None]) -> None:
    assert_like_feast(pa.array(values, pa.int64()), ValueType.INT64)
    assert_like_feast(pa.array(with_nulls, pa.int64()), ValueType.INT64)


@PROPERTY
@given(st.lists(st.none() | doubles | st.floats(-(2.0**64), 2.0**64), max_size=30))
def test_any_floats_typed_int64_encode_as_in_feast(values: list[float | None]) -> None:
    assert_like_feast(pa.array(values, pa.float64()), ValueType.INT64)


@PROPERTY
@given(st.lists(st.none() | st.text(), max_size=30), slices)
def test_any_strings_encode_as_in_feast(values: list[str | None], cut: tuple[int, int]) -> None:
    assert_like_feast(sliced(pa.array(values, pa.string()), cut), ValueType.STRING)
    assert_like_feast(sliced(pa.array(values, pa.large_string()), cut), ValueType.STRING)


@PROPERTY
@given(
    st.lists(st.none() | int64s, max_size=30),
    st.sampled_from(["s", "ms", "us", "ns"]),
    st.sampled_from([None, "UTC", "America/New_York"]),
)
def test_any_timestamps_encode_as_in_feast(
    values: list[int | None], unit: str, tz: str | None
) -> None:
    assert_like_feast(pa.array(values, pa.timestamp(unit, tz=tz)), ValueType.UNIX_TIMESTAMP)


@PROPERTY
@given(st.lists(st.none() | st.datetimes(timezones=st.none() | st.timezones()), max_size=20))
def test_any_datetimes_encode_as_in_feast(values: list[datetime | None]) -> None:
    assert_like_feast(pa.array(values, pa.timestamp("us", tz="UTC")), ValueType.UNIX_TIMESTAMP)


@PROPERTY
@given(
    st.lists(st.none() | st.lists(st.none() | doubles, max_size=8), max_size=20),
    slices,
    st.booleans(),
)
def test_any_double_lists_encode_as_in_feast(
    rows: list[list[float | None] | None], cut: tuple[int, int], large: bool
) -> None:
    assert_like_feast(sliced(lists_of(pa.float64(), rows, large), cut), ValueType.DOUBLE_LIST)


# Null elements are rare, so most examples hold none and encode rather than raise.
int64_elements = st.one_of(int64s, int64s, int64s, int64s, int64s, int64s, int64s, st.none())


@PROPERTY
@given(
    st.lists(st.none() | st.lists(int64_elements, max_size=8), max_size=20),
    slices,
    st.booleans(),
)
def test_any_int64_lists_encode_as_in_feast(
    rows: list[list[int | None] | None], cut: tuple[int, int], large: bool
) -> None:
    assert_like_feast(sliced(lists_of(pa.int64(), rows, large), cut), ValueType.INT64_LIST)


# --- entity keys --------------------------------------------------------------------------------


def feast_key(value: str, join_key: str, version: int) -> bytes:
    key = EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(string_val=value)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Feast warns that versions below 3 are deprecated
        return serialize_entity_key(key, entity_key_serialization_version=version)


@pytest.mark.parametrize("version", [3, 2])
@pytest.mark.parametrize("join_key", ["account_id", "customer_id", "clé_ü"])
def test_entity_keys_are_feasts(join_key: str, version: int) -> None:
    values = ["ACC-00000001", "", "é€😀", "x" * 300, "nul\x00byte"]
    expected = [feast_key(v, join_key, version) for v in values]
    assert entity_key_bytes(values, join_key, version) == expected


@PROPERTY
@given(st.lists(st.text(), max_size=20), st.text(min_size=1))
def test_any_string_entity_keys_are_feasts(values: list[str], join_key: str) -> None:
    expected = [feast_key(v, join_key, 3) for v in values]
    assert entity_key_bytes(values, join_key) == expected


@pytest.mark.parametrize("value", [None, "\ud800"])
def test_an_entity_value_feast_cannot_key_raises(value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        feast_key(value, "account_id", 3)
    with pytest.raises((TypeError, ValueError)):
        entity_key_bytes([value], "account_id")
