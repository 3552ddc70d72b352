"""The request-time transformation against its definition, row by row in plain Python.

The on-demand view's function is vectorised for speed; these tests hold it to what the
module documents: overdue days aged to the request (whole days, never negative, 0 without
an overdue date) and debt over a reported income (capped at 1000; without a reported
income the snapshot's debt-to-income ratio stands).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_repo.request_features import request_time_features

pytestmark = pytest.mark.unit

SCORING = datetime(2026, 11, 1, 13, 30, tzinfo=UTC)


def expected_row(
    since: datetime | None, now: datetime, income: float, debt: float, ratio: float
) -> tuple[float, float]:
    days = 0.0 if since is None else float(max(0, math.floor((now - since) / timedelta(days=1))))
    if math.isnan(income) or income <= 0:
        return days, ratio
    if math.isnan(debt):
        return days, math.nan
    return days, min(max(debt, 0.0) / max(income, 1.0), 1000.0)


def frame(rows: list[tuple[datetime | None, datetime, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "overdue_since": pd.to_datetime([r[0] for r in rows], utc=True),
            "scoring_time": pd.to_datetime([r[1] for r in rows], utc=True),
            "reported_monthly_income": [r[2] for r in rows],
            "debt_amount": [r[3] for r in rows],
            "debt_to_income_ratio": [r[4] for r in rows],
        },
        index=pd.RangeIndex(10, 10 + len(rows)),
    )


def test_hand_made_rows() -> None:
    rows = [
        # 61 days and 13.5 hours overdue, no income reported: the snapshot ratio stands.
        (datetime(2026, 9, 1, tzinfo=UTC), SCORING, 0.0, 1200.0, 0.4),
        # Overdue since after the scoring time: 0 days, never negative.
        (datetime(2026, 12, 1, tzinfo=UTC), SCORING, 2000.0, 1000.0, 0.4),
        # No overdue date: 0 days. An income below 1 divides by 1; the cap is 1000.
        (None, SCORING, 0.5, 5000.0, 0.4),
        # A negative debt counts as none.
        (datetime(2026, 10, 31, 13, 30, tzinfo=UTC), SCORING, 100.0, -50.0, 0.4),
    ]
    out = request_time_features(frame(rows))
    assert list(out.index) == [10, 11, 12, 13]
    assert out["days_overdue_at_request"].tolist() == [61.0, 0.0, 0.0, 1.0]
    assert out["debt_to_reported_income"].tolist() == [0.4, 0.5, 1000.0, 0.0]
    assert (out.dtypes == "float64").all()


finite = st.floats(-1e7, 1e7, allow_nan=False)
maybe_nan = st.one_of(finite, st.just(math.nan))
moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.one_of(st.none(), moments), moments, maybe_nan, maybe_nan, maybe_nan),
        min_size=1,
        max_size=8,
    )
)
def test_the_vectorised_function_equals_the_definition_row_by_row(rows) -> None:
    out = request_time_features(frame(rows))
    expected = np.array([expected_row(*r) for r in rows])
    assert np.allclose(out.to_numpy(), expected, rtol=1e-12, atol=0.0, equal_nan=True)
