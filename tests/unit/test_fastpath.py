"""The fast scoring path gives the sklearn chain's numbers exactly, or is not used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from training.estimators import build_estimator
from training.fast_predict import compile_fast

pytestmark = pytest.mark.unit


def data(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, 5)), columns=[f"f{i}" for i in range(5)])
    x.iloc[::9, 2] = np.nan
    y = (x["f0"].fillna(0) + rng.normal(size=n) > 0.5).astype(int).to_numpy()
    return x, y


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm"])
@pytest.mark.parametrize("imbalance", ["class_weight", "smote"])
@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_fast_path_matches_the_calibrated_pipeline(kind: str, imbalance: str, method: str) -> None:
    x, y = data()
    params = {"n_estimators": 30, "n_jobs": 1}
    pipeline = build_estimator(kind, params, imbalance, None, None, 0).fit(x, y)
    calibrated = CalibratedClassifierCV(FrozenEstimator(pipeline), method=method).fit(x, y)
    fast = compile_fast(calibrated, x.shape[1])
    if imbalance == "smote":
        # SMOTE needs an imputer in front (a transforming step): left to sklearn.
        assert fast is None or np.allclose(
            fast(x.to_numpy()), calibrated.predict_proba(x)[:, 1], atol=1e-12
        )
        return
    assert fast is not None
    fresh, _ = data(200, seed=1)
    np.testing.assert_allclose(
        fast(fresh.to_numpy()), calibrated.predict_proba(fresh)[:, 1], rtol=0, atol=1e-12
    )


def test_unknown_shapes_keep_the_sklearn_chain() -> None:
    x, y = data()
    assert compile_fast(LogisticRegression().fit(x.fillna(0), y), x.shape[1]) is None


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm"])
def test_fast_path_stops_at_the_best_iteration_like_the_estimator(kind: str) -> None:
    from training.estimators import fit_with_eval_set
    from training.fast_predict import xgboost_rounds

    x, y = data(1200)
    noisy = y.copy()
    noisy[::3] = 1 - noisy[::3]  # hard to fit: validation AUC peaks early
    params = {"n_estimators": 400, "learning_rate": 0.3}
    pipeline = build_estimator(kind, params, "class_weight", None, None, 0)
    fit_with_eval_set(pipeline, x[:800], noisy[:800], x[800:], noisy[800:])
    booster = pipeline.steps[-1][1].estimator_
    if kind == "xgboost":
        assert 0 < xgboost_rounds(booster)[1] < 400  # early stopping cut the ensemble
    fast = compile_fast(pipeline, x.shape[1])
    assert fast is not None
    fresh, _ = data(300, seed=2)
    np.testing.assert_allclose(
        fast(fresh.to_numpy()), pipeline.predict_proba(fresh)[:, 1], rtol=0, atol=1e-12
    )
