"""Skew comparison on hand-made logged and replayed vectors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.skew import (
    ROW_KEY,
    SkewInputError,
    compare,
    entity_rows,
    replay_time,
    skew_job,
    values_equal,
)

pytestmark = pytest.mark.unit

DEBT = "account_payment_velocity__debt_amount"
HISTORY = "account_payment_velocity__payment_history"
CHANNEL = "account_contact_behavior__payment_channel_preference"
SINCE = "account_payment_velocity__overdue_since"
FEATURES = [DEBT, HISTORY, CHANNEL, SINCE]


def test_equality_rules() -> None:
    assert values_equal(1.0, 1.0 + 1e-12)
    assert not values_equal(1.0, 1.0 + 1e-6)
    assert values_equal(3, 3.0)
    assert values_equal(None, None) and values_equal(np.nan, None) and values_equal(pd.NA, np.nan)
    assert not values_equal(None, 0.0) and not values_equal(0.0, np.nan)
    assert values_equal([1.0, np.nan], np.array([1.0, np.nan]))
    assert not values_equal([1.0, 2.0], [1.0, 2.0, 3.0])
    assert not values_equal([1.0, 2.0], [1.0, 2.5])
    assert not values_equal([1.0], 1.0)
    assert values_equal("card", "card") and not values_equal("card", "cash")
    when = datetime(2026, 1, 1, tzinfo=UTC)
    assert values_equal(pd.Timestamp(when), when)
    assert values_equal(np.datetime64("2026-01-01T00:00:00"), when)
    assert values_equal(when, when.timestamp())


def logged() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": ["r1", "r2", "r3"],
            "account_id": ["A1", "A2", "A3"],
            DEBT: [100.0, 250.5, None],
            HISTORY: [[1.0, 2.0], np.array([0.0, np.nan]), None],
            CHANNEL: ["card", "none", None],
            SINCE: [pd.Timestamp("2025-06-01", tz="UTC"), pd.NaT, pd.NaT],
        }
    )


def test_consistent_vectors_have_no_mismatch() -> None:
    replayed = logged().copy()
    replayed[HISTORY] = pd.Series([np.array([1.0, 2.0]), [0.0, None], None], dtype=object)
    replayed[DEBT] = [100.0 * (1 + 1e-12), 250.5, np.nan]
    outcome = compare(logged(), replayed, FEATURES)
    assert outcome.mismatches == dict.fromkeys(FEATURES, 0)
    assert outcome.max_rate == 0.0 and outcome.rows_with_mismatch == 0


def test_a_tampered_value_is_flagged_with_an_example() -> None:
    replayed = logged().copy()
    replayed.loc[1, DEBT] = 999.0
    replayed[HISTORY] = pd.Series([[1.0, 2.5], np.array([0.0, np.nan]), None], dtype=object)
    outcome = compare(logged(), replayed, FEATURES)
    assert outcome.mismatches[DEBT] == 1 and outcome.mismatches[HISTORY] == 1
    assert outcome.rate(DEBT) == pytest.approx(1 / 3)
    assert outcome.rows_with_mismatch == 2
    assert outcome.examples[DEBT] == [
        {"request_id": "r2", "account_id": "A2", "logged": 250.5, "replayed": 999.0}
    ]


def test_unlogged_features_are_named_and_a_missing_replay_is_an_error() -> None:
    replayed = logged()
    outcome = compare(logged().drop(columns=[SINCE]), replayed, FEATURES)
    assert outcome.not_logged == [SINCE]
    with pytest.raises(SkewInputError, match="no column"):
        compare(logged(), replayed.drop(columns=[CHANNEL]), FEATURES)
    with pytest.raises(SkewInputError, match="logged rows"):
        compare(logged(), replayed.head(2), FEATURES)


def served_rows() -> pd.DataFrame:
    frame = logged()
    frame["customer_id"] = ["C1", None, "C3"]
    frame["scored_at"] = pd.to_datetime(["2026-03-05 10:00"] * 3, utc=True)
    frame["scoring_time"] = frame["scored_at"]
    frame["reported_monthly_income"] = [2500.0, None, 0.0]
    frame["ts__account_payment_velocity"] = pd.to_datetime(
        pd.Series(["2026-03-01", "2026-02-01", None]), utc=True
    )
    frame["ts__customer_financial_ratios"] = pd.to_datetime(
        pd.Series(["2026-02-01", "2026-02-01", None]), utc=True
    )
    return frame


def test_replay_uses_the_newest_logged_feature_time() -> None:
    times = replay_time(served_rows())
    assert times.tolist() == [
        pd.Timestamp("2026-03-01", tz="UTC"),
        pd.Timestamp("2026-02-01", tz="UTC"),
        pd.Timestamp("2026-03-05 10:00", tz="UTC"),  # nothing found online: the score time
    ]


def test_entity_rows_carry_the_request_data() -> None:
    rows = entity_rows(served_rows())
    assert rows[ROW_KEY].tolist() == [0, 1, 2]
    assert rows["customer_id"].tolist() == ["C1", "", "C3"]
    assert rows["reported_monthly_income"].tolist() == [2500.0, 0.0, 0.0]
    assert str(rows["event_timestamp"].dt.tz) == "UTC"


def test_the_job_writes_its_report(tmp_path: Path) -> None:
    replayed = logged().copy()
    replayed.loc[0, CHANNEL] = "cash"
    result = skew_job(
        logged(),
        replayed,
        FEATURES,
        window_start=None,
        window_end=datetime(2026, 3, 6, tzinfo=UTC),
        reports_dir=tmp_path,
    )
    assert result.metrics["skew.max_mismatch_rate"] == pytest.approx(1 / 3)
    assert result.metrics[f"skew.feature.{CHANNEL}.mismatch_rate"] == pytest.approx(1 / 3)
    assert result.metrics[f"skew.feature.{DEBT}.mismatch_rate"] == 0.0
    assert result.details["skewed"] == [CHANNEL]
    report = json.loads(result.reports["json"].read_text())
    assert report["examples"][CHANNEL][0]["replayed"] == "cash"
    with pytest.raises(SkewInputError, match="no served rows"):
        skew_job(
            logged().head(0),
            replayed.head(0),
            FEATURES,
            window_start=None,
            window_end=datetime(2026, 3, 6, tzinfo=UTC),
            reports_dir=tmp_path,
        )
