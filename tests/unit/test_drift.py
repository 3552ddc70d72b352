"""Drift on hand-made frames: fires on an injected shift, stays quiet on a control, and turns
bad input into clear errors or skipped-with-reason columns."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import (
    DriftInputError,
    FeatureSpec,
    classify,
    compute_drift,
    current_from_served,
    drift_job,
    drift_metrics,
    prepare,
    service_features,
)

pytestmark = pytest.mark.unit

DTI = "customer_financial_ratios__debt_to_income_ratio"
DEBT = "account_payment_velocity__debt_amount"
CHANNEL = "account_contact_behavior__payment_channel_preference"
HISTORY = "account_payment_velocity__payment_history"
SINCE = "account_payment_velocity__overdue_since"
SPECS = (
    FeatureSpec(DEBT, "numeric"),
    FeatureSpec(DTI, "numeric"),
    FeatureSpec(CHANNEL, "categorical"),
    FeatureSpec(HISTORY, "array"),
    FeatureSpec(SINCE, "skip", "timestamp"),
)
CHANNELS = ["bank_transfer", "card", "direct_debit", "none"]


def frame(n: int, seed: int, income_shock: float = 1.0) -> pd.DataFrame:
    """Feature rows as Feast returns them; income_shock < 1 cuts incomes (DTI rises)."""
    rng = np.random.default_rng(seed)
    debt = rng.lognormal(7.0, 0.5, n)
    income = rng.lognormal(7.5, 0.4, n) * income_shock
    return pd.DataFrame(
        {
            "account_id": [f"A{i:05d}" for i in range(n)],
            DEBT: debt,
            DTI: debt / income,
            CHANNEL: rng.choice(CHANNELS, n, p=[0.4, 0.3, 0.2, 0.1]),
            HISTORY: [list(rng.gamma(2.0, 50.0, 6)) for _ in range(n)],
            SINCE: pd.Timestamp("2025-01-01", tz="UTC"),
            "probability": np.clip(rng.beta(2, 5, n) / income_shock, 0, 1),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return frame(2000, seed=1)


def test_drift_fires_on_an_income_shock(reference: pd.DataFrame) -> None:
    outcome = compute_drift(reference, frame(800, seed=2, income_shock=0.6), SPECS)
    drifted = set(outcome.features.loc[outcome.features["drifted"], "column"])
    assert drifted == {DTI}
    metrics = drift_metrics(outcome)
    assert metrics[f"drift.feature.{DTI}.psi"] > 0.25
    assert metrics[f"drift.feature.{DTI}.drifted"] == 1.0
    assert metrics[f"drift.feature.{DEBT}.drifted"] == 0.0
    assert metrics["drift.n_drifted"] == 1.0
    # debt, DTI, channel and six history elements; the timestamp is skipped with its reason
    assert metrics["drift.n_features"] == 9.0
    assert metrics["drift.share_drifted"] == pytest.approx(1 / 9, abs=1e-6)
    assert outcome.skipped == {SINCE: "timestamp"}
    assert metrics["drift.score_drifted"] == 1.0 and metrics["drift.score_psi"] > 0.1


def test_drift_stays_quiet_on_the_same_distribution(reference: pd.DataFrame) -> None:
    outcome = compute_drift(reference, frame(800, seed=3), SPECS)
    metrics = drift_metrics(outcome)
    assert metrics["drift.n_drifted"] == 0.0
    assert metrics["drift.score_drifted"] == 0.0
    assert not outcome.dataset_drift
    assert metrics[f"drift.feature.{CHANNEL}.jensenshannon"] < 0.1


def test_a_channel_shift_is_seen_by_the_categorical_test(reference: pd.DataFrame) -> None:
    current = frame(800, seed=4)
    current[CHANNEL] = np.where(np.arange(800) % 2 == 0, "mobile_app", current[CHANNEL])
    outcome = compute_drift(reference, current, SPECS)
    row = outcome.features.set_index("column").loc[CHANNEL]
    assert row["kind"] == "categorical" and row["method"] == "jensenshannon"
    assert bool(row["drifted"])


def test_an_empty_window_is_a_clear_error(reference: pd.DataFrame) -> None:
    with pytest.raises(DriftInputError, match="no rows"):
        compute_drift(reference, frame(0, seed=5), SPECS)
    with pytest.raises(DriftInputError, match="reference data has no rows"):
        compute_drift(frame(0, seed=5), frame(10, seed=5), SPECS)


def test_all_null_and_one_sided_columns_are_skipped_with_a_reason(
    reference: pd.DataFrame,
) -> None:
    current = frame(500, seed=6).drop(columns=[CHANNEL])
    current[DEBT] = np.nan
    current[HISTORY] = None
    outcome = compute_drift(reference, current, SPECS)
    assert outcome.skipped[DEBT] == "all values null in the current data"
    assert outcome.skipped[CHANNEL] == "missing from the current data"
    assert outcome.skipped[f"{HISTORY}_0"] == "all values null in the current data"
    assert list(outcome.features["column"]) == [DTI]
    assert drift_metrics(outcome)["drift.n_skipped"] == 9.0


def test_nothing_comparable_is_a_clear_error(reference: pd.DataFrame) -> None:
    current = pd.DataFrame({"account_id": ["A1", "A2"], "other": [1.0, 2.0]})
    with pytest.raises(DriftInputError, match="no feature column can be compared"):
        compute_drift(reference, current, SPECS)


def test_score_drift_is_skipped_without_scores(reference: pd.DataFrame) -> None:
    current = frame(300, seed=7).drop(columns=["probability"])
    outcome = compute_drift(reference, current, SPECS[:2])
    assert outcome.score is None
    assert outcome.skipped["probability"] == "missing from the current data"
    assert not any(k.startswith("drift.score") for k in drift_metrics(outcome))


def test_arrays_expand_to_element_columns() -> None:
    raw = pd.DataFrame(
        {HISTORY: [[1.0, 2.0], None, np.array([3.0, np.nan, 4.0, 5.0, 6.0, 7.0, 8.0])]}
    )
    out = prepare(raw, [FeatureSpec(HISTORY, "array")])
    assert list(out.columns) == [f"{HISTORY}_{i}" for i in range(6)]
    assert out.iloc[0].tolist()[:2] == [1.0, 2.0] and out.iloc[0, 2:].isna().all()
    assert out.iloc[1].isna().all()
    assert out.iloc[2].tolist() == pytest.approx([3.0, np.nan, 4.0, 5.0, 6.0, 7.0], nan_ok=True)


def test_categories_become_text_and_missing_stays_missing() -> None:
    out = prepare(
        pd.DataFrame({CHANNEL: ["card", None, "none"]}), [FeatureSpec(CHANNEL, "categorical")]
    )
    assert out[CHANNEL].iloc[0] == "card" and pd.isna(out[CHANNEL].iloc[1])


def test_feast_types_map_to_drift_kinds() -> None:
    assert classify("v__x", "Float64").kind == "numeric"
    assert classify("v__x", "Int64").kind == "numeric"
    assert classify("v__x", "String").kind == "categorical"
    assert classify("v__x", "Array(Float64)").kind == "array"
    assert classify("v__x", "UnixTimestamp").kind == "skip"


def test_the_service_decides_the_columns() -> None:
    kinds = {s.name: s.kind for s in service_features()}
    assert kinds[CHANNEL] == "categorical"
    assert kinds[HISTORY] == "array"
    assert kinds[SINCE] == "skip"
    assert kinds["request_time_features__debt_to_reported_income"] == "numeric"


def test_the_job_writes_html_and_json(reference: pd.DataFrame, tmp_path: Path) -> None:
    end = datetime(2026, 3, 1, tzinfo=UTC)
    result = drift_job(
        reference,
        frame(400, seed=8, income_shock=0.6),
        window_start=datetime(2026, 2, 22, tzinfo=UTC),
        window_end=end,
        reports_dir=tmp_path,
        specs=SPECS,
        labels={"model_version": "3"},
    )
    assert result.job == "drift" and result.rows == 400
    assert result.reports["html"] == tmp_path / "drift" / "20260301T000000Z" / "report.html"
    assert result.reports["html"].stat().st_size > 10_000
    assert json.loads(result.reports["json"].read_text())["metrics"]
    summary = json.loads(result.reports["summary"].read_text())
    assert summary["drifted"] == [DTI] and summary["labels"] == {"model_version": "3"}
    assert result.details["skipped"] == {SINCE: "timestamp"}


def test_served_rows_keep_the_newest_per_account_and_only_this_models_scores() -> None:
    served = pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A1", "A3"],
            "scored_at": pd.to_datetime(
                ["2026-03-01 10:00", "2026-03-01 11:00", "2026-03-02 09:00", "2026-03-02 10:00"],
                utc=True,
            ),
            "model_version": [3, 3, 3, 2],
            "probability": [0.1, 0.2, 0.3, 0.4],
        }
    )
    current = current_from_served(served, model_version=3)
    assert current["account_id"].tolist() == ["A2", "A1", "A3"]
    assert current["probability"].tolist()[:2] == [0.2, 0.3]
    assert np.isnan(current["probability"].iloc[2])
    assert len(current_from_served(served, dedupe_accounts=False)) == 4
