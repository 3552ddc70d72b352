"""The SQLite store's value_text column, as the direct write path computes it, against
Feast's own (feast.infra.online_stores.helpers.extract_text_and_num of the Value Feast's
conversion builds), on the values where the two could part: signed zeros, infinities,
NaN and null, huge and rounded integers, empty strings."""

from __future__ import annotations

import warnings
from typing import Any

import pyarrow as pa
import pytest
from feast.infra.online_stores.helpers import extract_text_and_num
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestion.online_write import _value_texts

pytestmark = pytest.mark.unit

NAN, INF = float("nan"), float("inf")


def feast_texts(array: pa.Array, value_type: ValueType) -> list[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        protos = python_values_to_proto_values(array.to_numpy(zero_copy_only=False), value_type)
    return [extract_text_and_num(proto, False)[0] for proto in protos]


CASES = [
    (pa.array([0.0, -0.0, 0.1, 1e16, 1e-300, 123456789.125, INF, -INF, NAN, None]), "DOUBLE"),
    (pa.array([0, -1, 2**53 + 1, 2**63 - 1, -(2**63)], pa.int64()), "INT64"),
    (pa.array([0, None, 2**53 + 1, -7], pa.int64()), "INT64"),
    (pa.array([0.0, -3.9, 3.9, NAN, None, 2.0**62]), "INT64"),
    (pa.array(["", "a", None, "ünïcode"]), "STRING"),
    (pa.array([[1.0, None], [], None], pa.list_(pa.float64())), "DOUBLE_LIST"),
    (pa.array([1_700_000_000_000_000, None], pa.timestamp("us", "UTC")), "UNIX_TIMESTAMP"),
]


@pytest.mark.parametrize(("array", "kind"), CASES, ids=[kind for _, kind in CASES])
def test_value_texts_equal_feasts(array: pa.Array, kind: str) -> None:
    assert _value_texts(array, ValueType[kind]) == feast_texts(array, ValueType[kind])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))))
def test_double_texts_equal_feasts(values: list[float | None]) -> None:
    array = pa.array(values, pa.float64())
    assert _value_texts(array, ValueType.DOUBLE) == feast_texts(array, ValueType.DOUBLE)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1))))
def test_int64_texts_equal_feasts(values: list[int | None]) -> None:
    array = pa.array(values, pa.int64())
    expected: Any
    try:
        expected = feast_texts(array, ValueType.INT64)
    except (ValueError, OverflowError) as exc:  # a null next to 2**63-1 rounds out of range
        expected = type(exc)
    try:
        ours: Any = _value_texts(array, ValueType.INT64)
    except (ValueError, OverflowError) as exc:
        ours = type(exc)
    if expected is ValueError or expected is OverflowError:
        return  # encode_column raises the same before a text is ever needed
    assert ours == expected
