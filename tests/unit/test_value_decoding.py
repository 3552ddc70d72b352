"""ingestion.value_decoding against Feast's own conversion of the same bytes.

The bytes are what Feast's materialisation writes (python_values_to_proto_values, each Value
serialised), plus rows the store does not hold (None). The reference is
feast_value_type_to_python_type(Value.FromString(b), type), what get_online_features'
to_dict() returns; a missing row is None there. No expected value is written by hand.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
from feast.value_type import ValueType
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestion.value_decoding import decode_column

pytestmark = pytest.mark.unit

PROPERTY = settings(max_examples=200, deadline=None)
INT64 = st.integers(-(2**63), 2**63 - 1)
DOUBLE = st.floats(allow_nan=False, width=64)


def stored(values: list[Any], value_type: ValueType) -> list[bytes]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        protos = python_values_to_proto_values(np.array(values, dtype=object), value_type)  # type: ignore[arg-type]
    return [p.SerializeToString() for p in protos]


def feast_reads(blobs: Sequence[bytes | None], value_type: ValueType) -> list[Any]:
    return [
        None if b is None else feast_value_type_to_python_type(ValueProto.FromString(b), value_type)
        for b in blobs
    ]


def normal(value: Any) -> Any:
    """One spelling of null (None, NaN, pd.NA) and of a list (list or numpy array)."""
    if isinstance(value, np.ndarray | list):
        return [normal(v) for v in value]
    if pd.isna(value):  # None, NaN, pd.NA
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def assert_like_feast(blobs: Sequence[bytes | None], value_type: ValueType) -> None:
    ours = [normal(v) for v in decode_column(blobs, value_type)]
    theirs = [normal(v) for v in feast_reads(blobs, value_type)]
    assert ours == theirs
    # Same Python types too, where a value is there (ints stay ints, floats floats).
    for mine, feasts in zip(ours, theirs, strict=True):
        assert type(mine) is type(feasts)


def with_missing(blobs: list[bytes], missing: list[bool]) -> list[bytes | None]:
    return [None if m else b for b, m in zip(blobs, missing, strict=False)] + blobs[len(missing) :]


@PROPERTY
@given(st.lists(st.one_of(st.none(), DOUBLE), max_size=40), st.lists(st.booleans(), max_size=40))
def test_doubles_decode_like_feast(values: list[float | None], missing: list[bool]) -> None:
    assert_like_feast(with_missing(stored(values, ValueType.DOUBLE), missing), ValueType.DOUBLE)


@PROPERTY
@given(st.lists(st.one_of(st.none(), INT64), max_size=40), st.lists(st.booleans(), max_size=40))
def test_int64s_decode_like_feast_from_one_to_ten_byte_varints(
    values: list[int | None], missing: list[bool]
) -> None:
    blobs = with_missing(stored(values, ValueType.INT64), missing)
    assert_like_feast(blobs, ValueType.INT64)


def test_int64_extremes_and_zero() -> None:
    values = [0, 1, 127, 128, -1, -(2**63), 2**63 - 1, 300, None]
    assert_like_feast(stored(values, ValueType.INT64), ValueType.INT64)


LISTS = st.lists(st.one_of(DOUBLE, st.just(float("nan"))), min_size=0, max_size=20)


@PROPERTY
@given(st.lists(st.one_of(st.none(), LISTS), max_size=30))
def test_double_lists_of_any_lengths_decode_like_feast(values: list[list[float] | None]) -> None:
    assert_like_feast(stored(values, ValueType.DOUBLE_LIST), ValueType.DOUBLE_LIST)


@PROPERTY
@given(st.integers(1, 15), st.data())
def test_double_lists_of_one_length_take_the_fast_path_and_match(
    length: int, data: st.DataObject
) -> None:
    drawn = data.draw(st.lists(st.lists(DOUBLE, min_size=length, max_size=length), min_size=1))
    rows: list[list[float] | None] = [*drawn, None, []]  # a null and an empty list among them
    blobs = stored(rows, ValueType.DOUBLE_LIST)
    decoded = decode_column(blobs, ValueType.DOUBLE_LIST)
    assert isinstance(decoded[0], np.ndarray)  # the fast path was taken
    assert [normal(v) for v in decoded] == [
        normal(v) for v in feast_reads(blobs, ValueType.DOUBLE_LIST)
    ]


@pytest.mark.parametrize(
    ("values", "value_type"),
    [
        (["cash", "", None, "bank_transfer"], ValueType.STRING),
        ([[1, 2, 3], [], None, [-(2**63)]], ValueType.INT64_LIST),
        ([1_700_000_000, None, 0], ValueType.UNIX_TIMESTAMP),
    ],
)
def test_other_types_go_through_feasts_conversion(values: list[Any], value_type: ValueType) -> None:
    blobs: list[bytes | None] = [*stored(values, value_type), None]
    assert_like_feast(blobs, value_type)
