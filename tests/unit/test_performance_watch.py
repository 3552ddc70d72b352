"""Live performance on a hand-built served log and label table whose answers are known."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.performance import (
    MATURED,
    NO_LABEL,
    NOT_MATURED,
    Maturity,
    PerformanceInputError,
    attach_outcomes,
    evaluate_live,
    performance_job,
    read_outcome_inputs,
    snapshot_of,
)

pytestmark = pytest.mark.unit

JAN, FEB = pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2026-02-01", tz="UTC")
SNAPSHOTS = pd.Series([JAN, FEB])
# 2026-01-10 + 30 days + 21 days grace = 2026-03-02 <= labels_as_of; 2026-02-20 is not.
LABELS_AS_OF = datetime(2026, 3, 15, tzinfo=UTC)
PROBS = [0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1]
OUTCOMES = [1, 1, 0, 1, 0, 1, 0, 0]
BANDS = ["high", "high", "medium", "medium", "low", "low", "low", "low"]
TEST_METRICS = {"test_roc_auc": 0.9, "test_f1": 0.8, "test_brier": 0.15}


def served() -> pd.DataFrame:
    rows = [
        (f"A{i}", "2026-01-10 12:00", p, b, p >= 0.5)
        for i, (p, b) in enumerate(zip(PROBS, BANDS, strict=True), start=1)
    ]
    rows += [
        ("A1", "2026-01-05 08:00", 0.2, "low", False),  # older score of A1's January snapshot
        ("A9", "2026-01-10 12:00", 0.5, "medium", True),  # nothing outstanding: no label
        ("A1", "2026-02-20 12:00", 0.95, "high", True),  # February: not matured yet
    ]
    frame = pd.DataFrame(
        rows, columns=["account_id", "scored_at", "probability", "band", "decision"]
    )
    frame["scored_at"] = pd.to_datetime(frame["scored_at"], utc=True)
    return frame


def labels() -> pd.DataFrame:
    rows = [(f"A{i}", JAN, y) for i, y in enumerate(OUTCOMES, start=1)]
    rows.append(("A1", FEB, 0))  # known at the table, but A1's February score has not matured
    return pd.DataFrame(rows, columns=["account_id", "event_timestamp", "default_30d"])


def joined() -> pd.DataFrame:
    return attach_outcomes(served(), labels(), SNAPSHOTS, LABELS_AS_OF)


def test_outcomes_join_the_snapshot_behind_each_score() -> None:
    frame = joined()
    status = frame.set_index(["account_id", "snapshot"])["outcome"]
    assert status[("A1", JAN)] == MATURED
    assert status[("A9", JAN)] == NO_LABEL
    assert status[("A1", FEB)] == NOT_MATURED
    # One row per (account, snapshot): A1's newer January score replaces the older one.
    assert len(frame) == 10
    a1 = frame[(frame["account_id"] == "A1") & (frame["snapshot"] == JAN)]
    assert a1["probability"].tolist() == [0.9] and a1["default_30d"].tolist() == [1.0]
    assert np.isnan(frame.loc[frame["outcome"] == NOT_MATURED, "default_30d"]).all()


def test_a_logged_feature_timestamp_names_the_snapshot() -> None:
    frame = served().head(2)
    frame["ts__account_payment_velocity"] = pd.Series([FEB, pd.NaT], index=frame.index)
    assert snapshot_of(frame, SNAPSHOTS).tolist() == [FEB, JAN]


def test_headline_metrics_are_the_known_ones() -> None:
    report = evaluate_live(joined(), TEST_METRICS)
    live = report["live"]
    # Positives 0.9, 0.8, 0.6, 0.3 beat 4 + 4 + 3 + 2 of the 16 (positive, negative) pairs.
    assert live["auc"] == pytest.approx(13 / 16)
    # Flagged 0.9, 0.8, 0.7, 0.6: three defaulters caught, one payer flagged, one missed.
    assert live["precision"] == pytest.approx(0.75)
    assert live["recall"] == pytest.approx(0.75)
    assert live["f1"] == pytest.approx(0.75)
    assert live["brier"] == pytest.approx(1.4 / 8)
    assert live["n"] == 8
    assert report["vs_test"]["auc_drop"] == pytest.approx(0.9 - 13 / 16)
    assert report["vs_test"]["f1_drop"] == pytest.approx(0.05)
    assert report["vs_test"]["brier_rise"] == pytest.approx(1.4 / 8 - 0.15)
    assert report["outcomes"] == {MATURED: 8, NO_LABEL: 1, NOT_MATURED: 1}


def test_calibration_and_collection_success_by_band() -> None:
    bands = {row["band"]: row for row in evaluate_live(joined(), {})["bands"]}
    assert bands["high"]["mean_predicted"] == pytest.approx(0.85)
    assert bands["high"]["observed_default_rate"] == 1.0
    assert bands["high"]["collection_success_rate"] == 0.0
    assert bands["low"]["n"] == 4
    assert bands["low"]["collection_success_rate"] == pytest.approx(0.75)
    assert bands["low"]["calibration_gap"] == pytest.approx(0.25 - 0.25)


def test_the_job_reports_metrics_and_files(tmp_path: Path) -> None:
    end = datetime(2026, 1, 20, tzinfo=UTC)
    result = performance_job(
        joined(), TEST_METRICS, window_start=None, window_end=end, reports_dir=tmp_path
    )
    m = result.metrics
    assert m["performance.auc"] == pytest.approx(13 / 16)
    assert m["performance.f1"] == pytest.approx(0.75)
    assert m["performance.auc_drop"] == pytest.approx(0.9 - 13 / 16)
    assert m["performance.n_matured"] == 8.0
    assert m["performance.band.high.collection_success_rate"] == 0.0
    saved = json.loads(result.reports["json"].read_text())
    assert saved["weekly"][0]["week"] == "2026-01-05" and saved["weekly"][0]["n"] == 8.0
    assert "<table>" in result.reports["html"].read_text()


def test_without_matured_outcomes_the_error_says_why() -> None:
    early = attach_outcomes(served(), labels(), SNAPSHOTS, datetime(2026, 2, 1, tzinfo=UTC))
    with pytest.raises(PerformanceInputError, match="no matured outcome"):
        evaluate_live(early, TEST_METRICS)


def test_one_class_leaves_auc_undefined_not_wrong() -> None:
    frame = joined()
    frame = frame[frame["account_id"].isin(["A1", "A2"])]
    report = evaluate_live(frame, TEST_METRICS)
    assert report["live"]["auc"] is None
    assert "auc_drop" not in report["vs_test"]


def test_maturity_delay() -> None:
    assert Maturity(30, 21).latest_matured_score(LABELS_AS_OF) == datetime(2026, 1, 23, tzinfo=UTC)


def test_outcome_inputs_come_from_the_feature_build(tmp_path: Path) -> None:
    (tmp_path / "_manifest.json").write_text(json.dumps({"as_of": "2026-03-01T00:00:00+00:00"}))
    labels().to_parquet(tmp_path / "labels.parquet")
    pd.DataFrame({"account_id": ["A1", "A2"], "event_timestamp": [JAN, FEB]}).to_parquet(
        tmp_path / "account_profile.parquet"
    )
    found, snapshots, as_of = read_outcome_inputs(tmp_path)
    assert len(found) == 9 and sorted(snapshots) == [JAN, FEB]
    assert as_of == datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(PerformanceInputError, match="build-features"):
        read_outcome_inputs(tmp_path / "missing")
