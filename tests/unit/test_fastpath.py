"""The fast scoring path gives the sklearn chain's numbers exactly, or is not used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from training.fastpath import compile_fast
from training.models import build_estimator

pytestmark = pytest.mark.unit


def data(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, 5)), columns=[f"f{i}" for i in range(5)])
    x.iloc[::9, 2] = np.nan
    y = (x["f0"].fillna(0) + rng.normal(size=n) > 0.5).astype(int).to_numpy()
    return x, y


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm"])
@pytest.mark.parametrize("imbalance", ["class_weight", "smote"])
def test_fast_path_matches_the_calibrated_pipeline(kind: str, imbalance: str) -> None:
    x, y = data()
    params = {"n_estimators": 30, "n_jobs": 1}
    pipeline = build_estimator(kind, params, imbalance, None, None, 0).fit(x, y)
    calibrated = CalibratedClassifierCV(FrozenEstimator(pipeline), method="isotonic").fit(x, y)
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
