"""Behavioural tests of trained models (Made-With-ML style): direction and invariance.

Direction: with the domain's monotone constraints, more days overdue or more broken promises
never lowers the score, whatever else the account looks like, before or after calibration.
Invariance: ids, timestamps, protected attributes and the oracle are not model inputs, so
changing or dropping them leaves every score exactly as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from feature_repo.definitions import build_definitions
from ingestion.contract import PAYMENT_CHANNELS
from training.estimators import build_estimator
from training.evaluate import calibrate
from training.model_matrix import model_matrix, monotone_constraints

pytestmark = pytest.mark.model

OVERDUE = "request_time_features__days_overdue_at_request"
BROKEN = "account_contact_behavior__broken_promises_90d"
VELOCITY = "account_payment_velocity__payment_velocity"
RELIABILITY = "account_contact_behavior__promise_to_pay_reliability"
NON_FEATURES = {
    "account_id": lambda i: f"B{i:08d}",
    "customer_id": lambda i: f"D{i:08d}",
    "protected__sex": lambda i: ["female", "male", "unknown"][i % 3],
    "protected__age_band": lambda i: ["66+", "18-25"][i % 2],
    "oracle__p_default": lambda i: 0.99,
}


def _fields() -> list[tuple[str, str]]:
    service = build_definitions(Path("unused")).services[0]
    return [
        (f"{p.name_to_use()}__{f.name}", str(f.dtype))
        for p in service.feature_view_projections
        for f in p.features
    ]


def _value(dtype: str, rng: np.random.Generator) -> Any:
    if dtype.startswith("Array("):
        return rng.gamma(2.0, 100.0, size=6)
    if dtype == "String":
        return PAYMENT_CHANNELS[int(rng.integers(len(PAYMENT_CHANNELS)))]
    if dtype == "UnixTimestamp":
        return pd.Timestamp("2026-01-01", tz="UTC")
    return float(rng.gamma(2.0, 1.0))


def synthetic_like(rows: int = 2500, seed: int = 0) -> pd.DataFrame:
    """Full-named feature rows whose default risk rises with overdue days and broken
    promises and falls with payment velocity and promise reliability (plus noise)."""
    rng = np.random.default_rng(seed)
    fields = _fields()
    frame = pd.DataFrame(
        [{name: _value(dtype, rng) for name, dtype in fields} for _ in range(rows)]
    )
    frame[OVERDUE] = rng.integers(0, 240, rows).astype(float)
    frame[BROKEN] = rng.poisson(0.8, rows).astype(float)
    frame[VELOCITY] = rng.uniform(0, 1, rows)
    frame[RELIABILITY] = rng.uniform(0, 1, rows)
    logit = (
        -1.5 + frame[OVERDUE] / 80 + 0.6 * frame[BROKEN] - 2.0 * frame[VELOCITY]
        - 1.0 * frame[RELIABILITY] + rng.normal(0, 0.8, rows)
    )  # fmt: skip
    frame["default_30d"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame["event_timestamp"] = pd.Timestamp("2026-02-01", tz="UTC")
    for column, make in NON_FEATURES.items():
        frame[column] = [make(i + 1000) for i in range(rows)]
    return frame


@pytest.fixture(scope="module", params=["xgboost", "lightgbm"])
def trained(request: pytest.FixtureRequest) -> tuple[Any, Any, pd.DataFrame]:
    """(raw model, calibrated model, data) for one monotone-constrained booster."""
    frame = synthetic_like()
    x = model_matrix(frame)
    y = frame["default_30d"].to_numpy()
    monotone = monotone_constraints(list(x.columns))
    model = build_estimator(
        request.param, {"n_estimators": 150}, "class_weight", monotone=monotone, seed=0
    ).fit(x.iloc[:2000], y[:2000])
    calibrated = calibrate(model, x.iloc[2000:], y[2000:]).model
    return model, calibrated, frame


def _scores_along(model: Any, frame: pd.DataFrame, column: str, grid: np.ndarray) -> np.ndarray:
    """(rows, grid) scores with `column` set to each grid value in turn."""
    variants = []
    for value in grid:
        varied = frame.copy()
        varied[column] = value
        variants.append(model.predict_proba(model_matrix(varied))[:, 1])
    return np.column_stack(variants)


@pytest.mark.parametrize(
    ("column", "grid"),
    [(OVERDUE, np.arange(0.0, 361.0, 15.0)), (BROKEN, np.arange(0.0, 9.0))],
)
def test_more_arrears_or_broken_promises_never_lower_risk(
    trained: tuple[Any, Any, pd.DataFrame], column: str, grid: np.ndarray
) -> None:
    model, calibrated, frame = trained
    rows = frame.sample(60, random_state=1)
    raw = _scores_along(model, rows, column, grid)
    assert np.all(np.diff(raw, axis=1) >= -1e-12), f"{column} lowered a score"
    scores = _scores_along(calibrated, rows, column, grid)
    assert np.all(np.diff(scores, axis=1) >= -1e-12), f"{column} lowered a calibrated score"
    # The constraint is not vacuous: the feature does raise the risk of these accounts.
    assert raw[:, -1].mean() > raw[:, 0].mean() + 0.05


def test_ids_and_protected_attributes_do_not_move_the_score(
    trained: tuple[Any, Any, pd.DataFrame],
) -> None:
    model, calibrated, frame = trained
    rows = frame.iloc[:200]
    changed = rows.copy()
    for column, make in NON_FEATURES.items():
        changed[column] = [make(i) for i in range(len(rows))]
    changed["event_timestamp"] = pd.Timestamp("2030-01-01", tz="UTC")
    dropped = rows.drop(columns=[*NON_FEATURES, "event_timestamp", "default_30d"])
    for scored in (model, calibrated):
        base = scored.predict_proba(model_matrix(rows))[:, 1]
        assert np.array_equal(base, scored.predict_proba(model_matrix(changed))[:, 1])
        assert np.array_equal(base, scored.predict_proba(model_matrix(dropped))[:, 1])
    assert not {c for c in model_matrix(rows).columns if c in NON_FEATURES}
