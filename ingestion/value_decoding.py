"""Feast's online-store value bytes back to values, a whole column at a time.

The reverse of ingestion.value_encoding, for batch reads of the online store. Feast parses
every stored value into a ValueProto and converts it with feast_value_type_to_python_type,
a few microseconds each: for a book of a million accounts and 27 features that is minutes,
where the raw read of the same bytes takes seconds. Here the common shapes are decoded with
numpy over the concatenated bytes, and anything else goes through Feast's own two calls, so
every value equals what get_online_features(...).to_dict() gives for it:

- DOUBLE: a 9-byte value (key, 8 little-endian bytes) or an empty one (null) -> float64,
  NaN for null (Feast writes NaN as an empty Value, so no stored NaN is lost).
- INT64: key and a varint of 1 to 10 bytes, or empty -> a nullable Int64 array.
- DOUBLE_LIST: rows whose lists all have the same length k < 16 -> one float64 array of
  length k per row (the tests compare them with Feast's lists); other rows go through Feast.
- every other type: Feast's conversion, value by value.

A missing row (None: the entity or the feature is absent) is null, as Feast answers it.
tests/unit/test_value_decoding.py holds each decoder to Feast's conversion of the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ingestion.value_encoding import _keys

if TYPE_CHECKING:
    from feast.value_type import ValueType

Blobs = Sequence[bytes | None]
_DOUBLE_SIZE = 9  # key byte + 8
_VARINT_MAX_BYTES = 10
# A double list of k < 16 items is <key><2 + 8k><items key><8k><doubles>: 4 bytes of header
# while the lengths fit one varint byte; an empty list is <key><0>.
_SHORT_LIST_MAX = 15
_LIST_HEADER = 4
_EMPTY_LIST_SIZE = 2


def decode_column(
    blobs: Blobs, value_type: ValueType
) -> npt.NDArray[Any] | pd.api.extensions.ExtensionArray:
    """The values of one feature for many rows; see the module docstring for the types."""
    name = value_type.name
    decoded: Any
    if name == "DOUBLE":
        decoded = _doubles(blobs)
    elif name == "INT64":
        decoded = _int64s(blobs)
    elif name == "DOUBLE_LIST":
        decoded = _double_lists(blobs, value_type)
    else:
        decoded = None
    return decoded if decoded is not None else feast_values(blobs, value_type)


def feast_values(blobs: Blobs, value_type: ValueType) -> npt.NDArray[Any]:
    """Feast's own conversion of each value (an object array)."""
    out = np.empty(len(blobs), dtype=object)
    # One by one: a slice assignment would read equal-length lists as a 2-D block.
    for i, value in enumerate(python_values(blobs, value_type)):
        out[i] = value
    return out


def python_values(blobs: Blobs, value_type: ValueType) -> list[Any]:
    """Feast's own conversion of each value as a list: for a few rows, where numpy's fixed
    cost per column is more than the values' conversion."""
    from feast.protos.feast.types.Value_pb2 import Value  # noqa: PLC0415
    from feast.type_map import feast_value_type_to_python_type as to_python  # noqa: PLC0415

    parse = Value.FromString
    return [None if b is None else to_python(parse(b), value_type) for b in blobs]


def _lengths(blobs: Blobs) -> npt.NDArray[np.int64]:
    return np.fromiter(
        (-1 if b is None else len(b) for b in blobs), dtype=np.int64, count=len(blobs)
    )


def _doubles(blobs: Blobs) -> npt.NDArray[np.float64] | None:
    lengths = _lengths(blobs)
    present = lengths == _DOUBLE_SIZE
    if not np.all(present | (lengths <= 0)):
        return None
    out = np.full(len(blobs), np.nan)
    if present.any():
        raw = np.frombuffer(b"".join(b for b in blobs if b), dtype=np.uint8)
        rows = raw.reshape(-1, _DOUBLE_SIZE)
        if not np.all(rows[:, 0] == _keys().double[0]):
            return None
        out[present] = rows[:, 1:].copy().view("<f8").ravel()
    return out


def _int64s(blobs: Blobs) -> pd.arrays.IntegerArray | None:
    key = _keys().int64
    lengths = _lengths(blobs)
    present = lengths > 0
    sizes = lengths[present] - len(key)
    if np.any(sizes < 1) or np.any(sizes > _VARINT_MAX_BYTES):
        return None
    raw = np.frombuffer(b"".join(b for b in blobs if b), dtype=np.uint8)
    starts = np.cumsum(lengths[present]) - lengths[present]
    if not np.all(raw[starts] == key[0]):
        return None
    values = np.zeros(len(blobs), dtype=np.uint64)
    values[present] = _varints(raw, starts + len(key), sizes)
    return pd.arrays.IntegerArray(values.view(np.int64), ~present)


def _varints(raw: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64],
             sizes: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:  # fmt: skip
    """Little-endian base-128 varints: byte i carries bits 7i..7i+6 (the high bit of every
    byte but the last says "more"); a negative int64 is its 64-bit two's complement."""
    out = np.zeros(len(starts), dtype=np.uint64)
    for i in range(_VARINT_MAX_BYTES):
        has = sizes > i
        if not has.any():
            break
        byte = raw[starts[has] + i].astype(np.uint64)
        out[has] |= (byte & np.uint64(0x7F)) << np.uint64(7 * i)
    return out


def _double_lists(blobs: Blobs, value_type: ValueType) -> npt.NDArray[Any] | None:
    keys = _keys()
    lengths = _lengths(blobs)
    full = lengths > _EMPTY_LIST_SIZE
    if not full.any():
        return None
    size = int(lengths[full][0])
    items, rest = divmod(size - _LIST_HEADER, 8)
    if rest or not (0 < items <= _SHORT_LIST_MAX) or np.any(lengths[full] != size):
        return None
    chosen = [b for b, f in zip(blobs, full, strict=True) if f]
    rows = np.frombuffer(b"".join(chosen), dtype=np.uint8).reshape(-1, size)  # type: ignore[arg-type]
    header = [keys.double_list[0], 2 + 8 * items, keys.double_items[0], 8 * items]
    if not np.all(rows[:, :_LIST_HEADER] == np.array(header, dtype=np.uint8)):
        return None
    doubles = rows[:, _LIST_HEADER:].copy().view("<f8")
    # Nulls and empty lists (and only they) are left to Feast: a few rows at most.
    out = feast_values([None if f else b for b, f in zip(blobs, full, strict=True)], value_type)
    for position, row in zip(np.flatnonzero(full), doubles, strict=True):
        out[position] = row
    return out


def as_python(decoded: npt.NDArray[Any] | pd.api.extensions.ExtensionArray) -> list[Any]:
    """decode_column's values as get_online_features(...).to_dict() gives them: Python
    floats and ints, None for null, lists for double lists."""
    if isinstance(decoded, pd.arrays.IntegerArray):
        return [None if v is pd.NA else int(v) for v in decoded]
    if decoded.dtype == np.float64:
        # A stored double is never NaN (Feast writes NaN as an empty value): NaN is null.
        return [None if v != v else v for v in decoded.tolist()]  # noqa: PLR0124
    return [v.tolist() if isinstance(v, np.ndarray) else v for v in decoded]
