"""The model matrix: one encoding for offline and online frames, fixed columns, no leaks of
protected or oracle columns into the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from feature_repo.definitions import build_definitions
from ingestion.contract import PAYMENT_CHANNELS
from training.model_matrix import (
    EXCLUDED_FEATURES,
    MONOTONE_DECREASING,
    MONOTONE_INCREASING,
    model_columns,
    model_matrix,
    monotone_constraints,
    records_matrix,
)

pytestmark = pytest.mark.unit

CHANNEL = "account_contact_behavior__payment_channel_preference"
HISTORY = "account_payment_velocity__payment_history"
DPD_HISTORY = "account_payment_velocity__days_past_due_history"
CREDIT_LIMIT = "account_payment_velocity__credit_limit"
T0 = pd.Timestamp("2026-03-01", tz="UTC")


@pytest.fixture(scope="module")
def fields() -> list[tuple[str, str]]:
    """(full name, dtype) of every feature of the service, from the definitions in code."""
    service = build_definitions(Path("unused")).services[0]
    return [
        (f"{p.name_to_use()}__{f.name}", str(f.dtype))
        for p in service.feature_view_projections
        for f in p.features
    ]


def offline_row(fields: list[tuple[str, str]], i: int) -> dict[str, Any]:
    """One row typed as get_historical_features types it: numpy scalars and arrays."""
    row: dict[str, Any] = {
        "account_id": f"A{i:08d}",
        "customer_id": f"C{i:08d}",
        "event_timestamp": T0,
        "default_30d": i % 2,
        "protected__age_band": "26-35",
        "protected__sex": "female",
        "oracle__p_default": 0.3,
    }
    for name, dtype in fields:
        if dtype == "Array(Float64)":
            row[name] = np.arange(6, dtype=np.float64) * (i + 1.5)
        elif dtype == "Array(Int64)":
            row[name] = np.arange(6, dtype=np.int64) * (i + 1)
        elif dtype == "String":
            row[name] = PAYMENT_CHANNELS[i % len(PAYMENT_CHANNELS)]
        elif dtype == "UnixTimestamp":
            row[name] = T0 - pd.Timedelta(days=30 + i)
        elif dtype == "Int64":
            row[name] = np.int64(i * 3 + 1)
        else:
            row[name] = np.float64(i * 0.25 + 0.125)
    return row


def offline_frame(fields: list[tuple[str, str]], rows: int) -> pd.DataFrame:
    frame = pd.DataFrame([offline_row(fields, i) for i in range(rows)])
    frame.loc[0, CREDIT_LIMIT] = np.nan
    return frame


def online_frame(offline: pd.DataFrame, position: int) -> pd.DataFrame:
    """The same row typed as get_online_features(...).to_df() types it: lists, None, object."""
    record = offline.iloc[position].to_dict()
    for key, value in record.items():
        if isinstance(value, np.ndarray):
            record[key] = value.tolist()
        elif isinstance(value, float) and np.isnan(value):
            record[key] = None
        elif isinstance(value, np.generic):
            record[key] = value.item()
    return pd.DataFrame([record], dtype=object)


def test_online_and_offline_rows_give_identical_matrices(fields: list[tuple[str, str]]) -> None:
    offline = offline_frame(fields, 3)
    for position in range(3):
        online = online_frame(offline, position)
        assert online[CREDIT_LIMIT].dtype == object
        expected = model_matrix(offline.iloc[[position]]).reset_index(drop=True)
        pd.testing.assert_frame_equal(model_matrix(online), expected)
    assert np.isnan(model_matrix(online_frame(offline, 0))[CREDIT_LIMIT].iloc[0])


def test_columns_are_fixed_whatever_the_row_count(fields: list[tuple[str, str]]) -> None:
    # 80 rows take the column-wise path, single rows the small-frame path: same result.
    many = offline_frame(fields, 80)
    matrix = model_matrix(many)
    assert list(matrix.columns) == model_columns()
    one_by_one = pd.concat([model_matrix(many.iloc[[i]]) for i in range(len(many))])
    pd.testing.assert_frame_equal(one_by_one, matrix)
    assert list(model_matrix(many.iloc[:0]).columns) == model_columns()
    # one row with a channel the others lack still gets every one-hot column
    assert list(model_matrix(many.iloc[[4]]).columns) == model_columns()


def test_only_model_features_all_float(fields: list[tuple[str, str]]) -> None:
    frame = offline_frame(fields, 2)
    matrix = model_matrix(frame)
    assert (matrix.dtypes == np.float64).all()
    columns = set(matrix.columns)
    assert not {c for c in columns if c.startswith(("protected__", "oracle__"))}
    assert not columns & {"account_id", "customer_id", "event_timestamp", "default_30d"}
    assert not columns & EXCLUDED_FEATURES
    assert "request_time_features__days_overdue_at_request" in columns
    # the protected attributes do not move the matrix
    changed = frame.assign(protected__sex="male", oracle__p_default=0.9, account_id="X")
    pd.testing.assert_frame_equal(model_matrix(changed), matrix)


def test_arrays_and_categories_expand_to_fixed_width(fields: list[tuple[str, str]]) -> None:
    frame = online_frame(offline_frame(fields, 1), 0)
    frame[HISTORY] = pd.Series([[5.0, None]], dtype=object)
    frame[DPD_HISTORY] = None
    frame.at[0, CHANNEL] = "carrier_pigeon"
    row = model_matrix(frame).iloc[0]
    assert [row[f"{HISTORY}_{i}"] for i in range(2)] == [5.0, pytest.approx(np.nan, nan_ok=True)]
    assert row[[f"{HISTORY}_{i}" for i in range(2, 6)]].isna().all()
    assert row[[f"{DPD_HISTORY}_{i}" for i in range(6)]].isna().all()
    one_hot = [f"{CHANNEL}_{v}" for v in (*PAYMENT_CHANNELS, "none")]
    assert (row[one_hot] == 0.0).all()
    frame.at[0, CHANNEL] = "none"
    assert model_matrix(frame).iloc[0][one_hot].tolist() == [0.0] * len(PAYMENT_CHANNELS) + [1.0]
    frame.at[0, CHANNEL] = None
    assert (model_matrix(frame).iloc[0][one_hot] == 0.0).all()


def test_missing_feature_column_is_an_error(fields: list[tuple[str, str]]) -> None:
    frame = offline_frame(fields, 1).drop(columns=[HISTORY])
    with pytest.raises(KeyError, match="payment_history"):
        model_matrix(frame)


def test_monotone_directions_name_model_columns() -> None:
    columns = model_columns()
    assert set(columns) >= MONOTONE_INCREASING
    assert set(columns) >= MONOTONE_DECREASING
    assert not MONOTONE_INCREASING & MONOTONE_DECREASING
    constraints = dict(zip(columns, monotone_constraints(columns), strict=True))
    assert constraints["request_time_features__days_overdue_at_request"] == 1
    assert constraints["account_contact_behavior__broken_promises_90d"] == 1
    assert constraints["account_contact_behavior__promise_to_pay_reliability"] == -1
    assert constraints["account_payment_velocity__debt_amount"] == 0
    assert sum(v != 0 for v in constraints.values()) == 10


@pytest.mark.parametrize(
    "rows",
    [
        [np.arange(6.0)] * 100,  # full histories: the one-call path
        [np.arange(6.0)] * 99 + [None],  # a missing history
        [np.arange(6.0)] * 99 + [np.arange(3.0)],  # a short one
        [[1.0, None, 3.0, 4.0, 5.0, 6.0]] * 100,  # a gap inside lists
    ],
)
def test_large_array_columns_expand_like_small_ones(rows: list[Any]) -> None:
    from training.model_matrix import _expand_few, expand_arrays

    values = np.empty(len(rows), dtype=object)
    values[:] = rows
    np.testing.assert_array_equal(expand_arrays(values, 6), _expand_few(values, 6))


def test_feature_dicts_encode_as_their_frame_does(fields: list[tuple[str, str]]) -> None:
    # The scorer encodes its online rows' dicts without a frame: the same matrix, for one row
    # (small path) and for 80 (column path), with missing values, short and absent arrays.
    offline = offline_frame(fields, 80)
    online = pd.concat([online_frame(offline, i) for i in range(80)], ignore_index=True)
    online.at[1, HISTORY] = [1.0, 2.0]
    online.at[2, DPD_HISTORY] = None
    online.at[3, CHANNEL] = "carrier pigeon"
    records = online.to_dict(orient="records")
    for rows in (records[:1], records[1:4], records):
        expected = model_matrix(pd.DataFrame(rows, dtype=object))
        pd.testing.assert_frame_equal(records_matrix(rows), expected)
    with pytest.raises(KeyError, match=CREDIT_LIMIT):
        records_matrix([{k: v for k, v in records[0].items() if k != CREDIT_LIMIT}])
