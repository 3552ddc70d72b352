"""The entity-row rule of ingestion.retrieval: request data as serving sends them, UTC times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from ingestion.retrieval import ENTITY_COLUMNS, INCOME_NOT_SUPPLIED, entity_rows

pytestmark = pytest.mark.unit

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)


def test_no_income_reads_as_not_supplied() -> None:
    rows = entity_rows(["A1", "A2"], ["C1", "C2"], AS_OF)
    assert list(rows.columns) == list(ENTITY_COLUMNS)
    assert rows["reported_monthly_income"].tolist() == [INCOME_NOT_SUPPLIED] * 2 == [0.0, 0.0]
    assert rows["reported_monthly_income"].dtype == np.float64


@pytest.mark.parametrize("income", [None, float("nan"), np.nan])
def test_a_missing_income_for_all_rows_is_zero(income: float | None) -> None:
    rows = entity_rows(["A1"], ["C1"], AS_OF, reported_income=income)
    assert rows["reported_monthly_income"].tolist() == [0.0]


def test_a_missing_income_per_row_is_zero_and_given_ones_stay() -> None:
    incomes = pd.Series([2500.0, None, np.nan, "n/a"], index=[9, 8, 7, 6])
    rows = entity_rows(["A1", "A2", "A3", "A4"], ["C1"] * 4, AS_OF, reported_income=incomes)
    assert rows["reported_monthly_income"].tolist() == [2500.0, 0.0, 0.0, 0.0]
    assert rows.index.tolist() == [0, 1, 2, 3]
    assert entity_rows(["A1"], ["C1"], AS_OF, reported_income=1200.0)[
        "reported_monthly_income"
    ].tolist() == [1200.0]


def test_times_are_utc_and_scoring_time_defaults_to_the_event_time() -> None:
    naive = datetime(2026, 3, 1, 12, 0)
    rows = entity_rows(["A1", "A2"], ["C1", "C2"], naive)
    assert str(rows["event_timestamp"].dt.tz) == "UTC"
    assert rows["event_timestamp"].tolist() == [pd.Timestamp("2026-03-01 12:00", tz="UTC")] * 2
    assert rows["scoring_time"].equals(rows["event_timestamp"])

    paris = timezone(timedelta(hours=1))
    later = entity_rows(["A1"], ["C1"], datetime(2026, 3, 1, 13, 0, tzinfo=paris), AS_OF)
    assert later["event_timestamp"].iloc[0] == pd.Timestamp("2026-03-01 12:00", tz="UTC")
    assert later["scoring_time"].iloc[0] == pd.Timestamp(AS_OF)


def test_times_per_row_keep_their_unit_and_become_utc() -> None:
    snapshots = pd.Series(pd.to_datetime(["2026-01-01", "2026-02-01"], utc=True)).astype(
        "datetime64[us, UTC]"
    )
    rows = entity_rows(["A1", "A2"], ["C1", "C2"], snapshots)
    assert str(rows["event_timestamp"].dtype) == "datetime64[us, UTC]"
    assert str(rows["scoring_time"].dtype) == "datetime64[us, UTC]"
    naive = np.array(["2026-01-01T00:00", "2026-02-01T00:00"], dtype="datetime64[ns]")
    assert str(entity_rows(["A1", "A2"], ["C1", "C2"], naive)["event_timestamp"].dt.tz) == "UTC"


def test_rows_are_built_by_position_and_extra_columns_come_first() -> None:
    ids = pd.Series(["A1", "A2"], index=[5, 3])
    customers = pd.Series(["C1", "C2"], index=[3, 5])  # another index: never aligned by it
    rows = entity_rows(ids, customers, AS_OF, extra={"label": [1, 0]})
    assert list(rows.columns) == ["label", *ENTITY_COLUMNS]
    assert rows[["label", "account_id", "customer_id"]].values.tolist() == [
        [1, "A1", "C1"],
        [0, "A2", "C2"],
    ]


def test_columns_of_another_length_are_refused() -> None:
    with pytest.raises(ValueError, match="customer_id: 1 values for 2"):
        entity_rows(["A1", "A2"], ["C1"], AS_OF)
