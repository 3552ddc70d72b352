"""The one way full-named feature frames become the model's float matrix.

Training reads features with get_historical_features and serving with get_online_features;
the two type the same values differently (numpy arrays vs lists, NaN vs None, float vs
object columns). Both go through model_matrix, so a model sees identical inputs in both
places, with the same columns in the same order whatever the number of rows.

The columns come from the feature service's definitions (feature_repo objects built in
memory, no registry), so a new feature in the service is a new model column without an edit
here; a feature whose type this module cannot encode fails loudly instead of being dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feature_repo.feature_services import COLLECTION_RISK_V1
from ingestion.contract import PAYMENT_CHANNELS

FloatMatrix = npt.NDArray[np.float64]

# The array features hold the last six months or statements (feature_repo.transformations).
HISTORY_LENGTH = 6

# Service features that are not model inputs: overdue_since is a timestamp whose information
# is in the overdue counts, and days_overdue is frozen at the snapshot while the request-time
# days_overdue_at_request equals it in training and is aged to the request online.
EXCLUDED_FEATURES = frozenset(
    {
        "account_payment_velocity__overdue_since",
        "account_payment_velocity__days_overdue",
    }
)

# A fixed vocabulary keeps one-hot columns the same for one row and for a million; a value
# outside it (or a missing one) encodes as all zeros.
CATEGORY_VOCABULARIES: dict[str, tuple[str, ...]] = {
    "account_contact_behavior__payment_channel_preference": (*PAYMENT_CHANNELS, "none"),
}

# Directions fixed by domain knowledge (feature descriptions in feature_repo/views.py):
# longer or deeper arrears and broken promises never lower risk; paying faster and more
# regularly, keeping promises, answering and having income to spare never raise it.
MONOTONE_INCREASING = frozenset(
    {
        "request_time_features__days_overdue_at_request",
        "account_payment_velocity__max_days_past_due_6m",
        "account_payment_velocity__months_past_due_6m",
        "account_contact_behavior__broken_promises_90d",
        "account_payment_velocity__days_since_last_payment",
    }
)
MONOTONE_DECREASING = frozenset(
    {
        "account_payment_velocity__payment_velocity",
        "account_payment_velocity__payment_consistency_score",
        "account_contact_behavior__promise_to_pay_reliability",
        "account_contact_behavior__contact_responsiveness",
        "customer_financial_ratios__payment_capacity_score",
    }
)

Kind = Literal["numeric", "array", "category"]


@dataclass(frozen=True)
class _Input:
    source: str
    kind: Kind
    columns: tuple[str, ...]
    vocabulary: pd.Index = field(default_factory=lambda: pd.Index([], dtype=object))


@dataclass(frozen=True)
class _Layout:
    inputs: tuple[_Input, ...]
    columns: pd.Index

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(i.source for i in self.inputs)


def model_columns(service_name: str = COLLECTION_RISK_V1) -> list[str]:
    """The model's columns, in their fixed order, for a feature service."""
    return list(_layout(service_name).columns)


def monotone_constraints(columns: Sequence[str]) -> list[int]:
    """+1 / -1 / 0 per column, in the given order (XGBoost's and LightGBM's convention)."""
    return [
        1 if c in MONOTONE_INCREASING else -1 if c in MONOTONE_DECREASING else 0 for c in columns
    ]


def model_matrix(frame: pd.DataFrame, service_name: str = COLLECTION_RISK_V1) -> pd.DataFrame:
    """float64 model matrix of a frame of full-named features, keeping the frame's index.

    Other columns (ids, timestamps, the label, protected__*, oracle__*) are ignored; a
    missing feature column is an error, since silently filling it would hide a serving bug.
    """
    layout = _layout(service_name)
    return _assemble(_source_values(frame, layout), layout, frame.index)


def records_matrix(
    records: Sequence[Mapping[str, Any]], service_name: str = COLLECTION_RISK_V1
) -> pd.DataFrame:
    """model_matrix of feature dicts, one per row (the scorer's online rows), indexed 0..n-1.

    The same encoding, fed column by column straight from the dicts: building a DataFrame of
    them first cost the scorer more than the encoding and the prediction together.
    """
    layout = _layout(service_name)
    if records:
        _positions(tuple(records[0]), layout.sources)  # a missing feature fails as for a frame
    # fromiter keeps one object per row: np.array would read equal-length lists as 2-D.
    columns = [
        np.fromiter((r.get(source) for r in records), dtype=object, count=len(records))
        for source in layout.sources
    ]
    return _assemble(columns, layout, pd.RangeIndex(len(records)))


def _assemble(columns: list[npt.NDArray[Any]], layout: _Layout, index: pd.Index) -> pd.DataFrame:
    values = np.empty((len(index), len(layout.columns)), dtype=np.float64)
    start = 0
    for item, column in zip(layout.inputs, columns, strict=True):
        width = len(item.columns)
        values[:, start : start + width] = _encode(column, item)
        start += width
    return pd.DataFrame(values, columns=layout.columns, index=index, copy=False)


# Up to this many rows one object conversion of the whole frame beats a Series lookup per
# feature (serving scores one row at a time); above it, typed columns keep memory flat.
SMALL_FRAME_ROWS = 64


def _source_values(frame: pd.DataFrame, layout: _Layout) -> list[npt.NDArray[Any]]:
    positions = _positions(tuple(frame.columns), layout.sources)
    if len(frame) <= SMALL_FRAME_ROWS:
        block = frame.to_numpy(dtype=object)
        return [block[:, i] for i in positions]
    return [_column_values(frame.iloc[:, i]) for i in positions]


@lru_cache(maxsize=64)
def _positions(columns: tuple[str, ...], sources: tuple[str, ...]) -> tuple[int, ...]:
    # Cached: a service sends frames of the same columns again and again.
    where = {c: i for i, c in enumerate(columns)}
    missing = [s for s in sources if s not in where]
    if missing:
        raise KeyError(f"feature columns missing from the frame: {missing}")
    return tuple(where[s] for s in sources)


def _column_values(series: pd.Series) -> npt.NDArray[Any]:
    if pd.api.types.is_extension_array_dtype(series.dtype) and pd.api.types.is_numeric_dtype(
        series.dtype
    ):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return series.to_numpy()


def _encode(values: npt.NDArray[Any], item: _Input) -> FloatMatrix:
    if item.kind == "array":
        return expand_arrays(values, len(item.columns))
    if item.kind == "category":
        return _one_hot(values, item.vocabulary)
    return _numeric(values).reshape(-1, 1)


def _numeric(values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    # numpy turns None into NaN on the way to float64; pd.NA needs pandas.
    try:
        return np.asarray(values, dtype=np.float64)
    except TypeError:
        return pd.Series(values, dtype=object).to_numpy(dtype=np.float64, na_value=np.nan)


def expand_arrays(values: npt.NDArray[Any], width: int) -> FloatMatrix:
    """Lists or numpy arrays (or None) per row -> a (rows, width) block, NaN where short."""
    if len(values) <= SMALL_FRAME_ROWS:
        return _expand_few(values, width)
    try:
        # The usual case (every row a full history) converts in one call, ~5x faster
        # than Arrow; ragged or missing rows raise or change the shape and go below.
        block = np.array(values.tolist(), dtype=np.float64)
        if block.shape == (len(values), width):
            return block
    except (ValueError, TypeError):
        pass
    # Arrow converts the whole column at once; from_pandas turns NaN inside arrays into null.
    arrays = pa.array(values, type=pa.list_(pa.float64()), from_pandas=True)
    lengths = pc.list_value_length(arrays).fill_null(0).to_numpy().astype(np.int64)
    flat = pc.list_flatten(arrays).to_numpy(zero_copy_only=False).astype(np.float64)
    rows = np.repeat(np.arange(len(values)), lengths)
    positions = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    keep = positions < width
    out = np.full((len(values), width), np.nan)
    out[rows[keep], positions[keep]] = flat[keep]
    return out


def _expand_few(values: npt.NDArray[Any], width: int) -> FloatMatrix:
    # Arrow's fixed cost per call dwarfs a few rows; this path gives the same result.
    out = np.full((len(values), width), np.nan)
    for row, value in enumerate(values):
        if np.ndim(value) == 0:  # None, NaN or pd.NA: no history at all
            continue
        items = _numeric(np.asarray(value, dtype=object))[:width]
        out[row, : len(items)] = items
    return out


def _one_hot(values: npt.NDArray[Any], vocabulary: pd.Index) -> FloatMatrix:
    # Missing and unknown values get -1 from get_indexer, which matches no column.
    codes = vocabulary.get_indexer(pd.Index(values, dtype=object))
    return (codes[:, None] == np.arange(len(vocabulary))).astype(np.float64)


@cache
def _layout(service_name: str) -> _Layout:
    # Imported here: building Feast objects imports Feast, which costs seconds, and the
    # layout is needed once per process.
    from feature_repo.definitions import build_definitions  # noqa: PLC0415

    # The path only feeds the sources' file locations, which the layout never reads.
    definitions = build_definitions(Path("."))
    services = {s.name: s for s in definitions.services}
    if service_name not in services:
        raise KeyError(f"unknown feature service {service_name!r}; known: {sorted(services)}")
    inputs = tuple(
        _classify(f"{p.name_to_use()}__{f.name}", str(f.dtype))
        for p in services[service_name].feature_view_projections
        for f in p.features
        if f"{p.name_to_use()}__{f.name}" not in EXCLUDED_FEATURES
    )
    return _Layout(inputs, pd.Index([c for i in inputs for c in i.columns], dtype=object))


def _classify(name: str, dtype: str) -> _Input:
    if dtype.startswith("Array("):
        columns = tuple(f"{name}_{i}" for i in range(HISTORY_LENGTH))
        return _Input(name, "array", columns)
    if dtype == "String":
        if name not in CATEGORY_VOCABULARIES:
            raise ValueError(f"string feature {name} has no fixed vocabulary in matrix.py")
        vocabulary = CATEGORY_VOCABULARIES[name]
        columns = tuple(f"{name}_{v}" for v in vocabulary)
        return _Input(name, "category", columns, pd.Index(vocabulary, dtype=object))
    if dtype in {"Float32", "Float64", "Int32", "Int64", "Bool"}:
        return _Input(name, "numeric", (name,))
    raise ValueError(f"feature {name} of type {dtype} has no model encoding in matrix.py")


def column_sources(service_name: str = COLLECTION_RISK_V1) -> dict[str, str]:
    """Model column -> the feature it encodes (payment_history_0 -> payment_history)."""
    return {c: item.source for item in _layout(service_name).inputs for c in item.columns}
