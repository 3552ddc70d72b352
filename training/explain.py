"""SHAP explanations: global importance for the run record, per-row contributions for reasons.

Contributions are in log-odds of the *uncalibrated* model. Calibration is a monotone map
applied afterwards, so it changes the size of a probability but not which features pushed
it up or down; explaining before it keeps tree explanations exact.

- XGBoost / LightGBM: shap.TreeExplainer on the booster, on the rows as the booster sees
  them (after imputation / selection, samplers skipped), exact and fast.
- logistic scorecard and stacking: model-agnostic sampled-permutation SHAP over the raw
  input columns against a small background sample (exact for the additive scorecard, an
  estimate for the stack); slower, so global importance uses fewer rows (FALLBACK_ROWS).

Features a selector dropped get contribution 0, so importances line up across runs.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import shap
from imblearn.pipeline import Pipeline
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from training.estimators import BoostedTrees
from training.fast_predict import xgboost_rounds, xgboost_single_thread

log = logging.getLogger(__name__)

MAX_ROWS = 2000
FALLBACK_ROWS = 200
BACKGROUND_ROWS = 32
ORDER_PAIRS = 1
ROW_CHUNK = 25
# Tree SHAP costs about 0.3 ms a row on the demo champion (500 trees), far more than a
# prediction: from this many rows on, the booster's threads halve the time (4 rows: 1.2 ms
# on one thread, 0.6 on two; a batch of 100: 28 against 15 ms), below it they cost more.
PARALLEL_EXPLAIN_ROWS = 4
# Rows on which a native tree SHAP call must reproduce shap before it is used.
PROBE_ROWS = 64


def unwrap(model: Any) -> Any:
    """The fitted pipeline under a calibration wrapper (or the model itself)."""
    if isinstance(model, CalibratedClassifierCV):
        model = model.calibrated_classifiers_[0].estimator
    if isinstance(model, FrozenEstimator):
        model = model.estimator
    return model


def method_for(model: Any) -> str:
    """'tree_shap' when the model ends in a booster, else 'permutation_shap'."""
    inner = unwrap(model)
    final = inner.steps[-1][1] if isinstance(inner, Pipeline) else inner
    return "tree_shap" if isinstance(final, BoostedTrees) else "permutation_shap"


def global_importance(
    model: Any, x: pd.DataFrame, max_rows: int = MAX_ROWS, seed: int = 0
) -> dict[str, float]:
    """Mean |SHAP| per input feature on a sample of at most `max_rows`, largest first."""
    limit = max_rows if method_for(model) == "tree_shap" else min(max_rows, FALLBACK_ROWS)
    sample = x.sample(n=min(limit, len(x)), random_state=seed) if len(x) > limit else x
    contributions = explain_rows(model, sample, background=x, seed=seed)
    mean_abs = contributions.abs().mean(axis=0).sort_values(ascending=False)
    return {str(name): float(value) for name, value in mean_abs.items()}


def explain_rows(
    model: Any,
    x_rows: pd.DataFrame,
    background: pd.DataFrame | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Per-row, per-feature contributions (log-odds) with the rows' index and columns.

    `background` (rows typical of training) is needed only by the fallback explainer; the
    base value (the expected log-odds) is in `result.attrs["base_value"]`.
    """
    inner = unwrap(model)
    if method_for(inner) == "tree_shap":
        values, base = _tree_contributions(inner, x_rows)
    else:
        values, base = _permutation_contributions(inner, x_rows, background, seed)
    result = values.reindex(columns=x_rows.columns, fill_value=0.0)
    result.attrs["base_value"] = base
    return result


def _tree_contributions(pipeline: Pipeline, x_rows: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    return TreeRowExplainer(pipeline).contributions(x_rows)


class TreeRowExplainer:
    """Tree SHAP for one fitted booster pipeline, built once and reused per request.

    Building shap.TreeExplainer reads the whole ensemble; the scorer keeps one per loaded
    model so a request pays only for its rows. For those rows shap itself calls the
    booster's native tree SHAP (LightGBM pred_contrib, XGBoost pred_contribs) after checks
    and conversions that cost more than the SHAP does; when the booster has that native call
    and it reproduces shap on probe rows, it is called directly, on one thread for a few rows.
    """

    def __init__(self, model: Any) -> None:
        pipeline = unwrap(model)
        if method_for(pipeline) != "tree_shap":
            raise ValueError("TreeRowExplainer needs a pipeline that ends in a booster")
        booster: BoostedTrees = pipeline.steps[-1][1]
        # Samplers act only in fit; the other steps shape what the booster sees.
        self._steps = [s for _, s in pipeline.steps[:-1] if not hasattr(s, "fit_resample")]
        self._explainer = shap.TreeExplainer(booster.estimator_)
        self.base_value = float(np.ravel(self._explainer.expected_value)[-1])
        self._native = _native_contributions(booster.estimator_)
        if self._native is not None and not self._native_agrees(booster):
            self._native = None

    def contributions(self, x_rows: pd.DataFrame) -> tuple[pd.DataFrame, float]:
        seen = x_rows
        for step in self._steps:
            seen = step.transform(seen)
        values = self._values(seen)
        frame = pd.DataFrame(values, index=x_rows.index, columns=list(seen.columns))
        return frame, self.base_value

    def _values(self, seen: pd.DataFrame) -> np.ndarray:
        if self._native is not None:
            return self._native(seen.to_numpy(dtype=np.float64))[:, :-1]
        return self._shap_values(seen)

    def _shap_values(self, seen: pd.DataFrame) -> np.ndarray:
        with warnings.catch_warnings():
            # SHAP announces its LightGBM output format on every call; it is handled below.
            warnings.filterwarnings("ignore", message="LightGBM binary classifier")
            values = np.asarray(self._explainer.shap_values(seen))
        # Some SHAP / LightGBM versions return one matrix per class; keep the default class.
        if values.ndim == 3:
            values = values[..., 1] if values.shape[-1] == 2 else values[1]
        return values

    def _native_agrees(self, booster: BoostedTrees) -> bool:
        names = list(getattr(booster, "feature_names_in_", []))
        if not names or self._native is None:
            return False
        rng = np.random.default_rng(0)
        probe = rng.normal(0.0, 50.0, size=(PROBE_ROWS, len(names)))
        probe[::5, ::3] = np.nan
        try:
            native = self._native(probe)
        except (ValueError, TypeError) as exc:
            log.warning("native tree SHAP failed (%s): explaining through shap", exc)
            return False
        expected = self._shap_values(pd.DataFrame(probe, columns=names))
        same = native[:, :-1].shape == expected.shape and np.allclose(
            native[:, :-1], expected, rtol=1e-6, atol=1e-9
        )
        if not same:
            log.warning("native tree SHAP disagrees with shap: explaining through shap")
            return False
        # The booster's own bias column: shap's expected_value misses XGBoost's fitted
        # intercept (base_score), so contributions + base would not add up to the margin.
        self.base_value = float(native[0, -1])
        return True


def _native_contributions(estimator: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """The booster's own tree SHAP (the bias last), or None for other models."""
    kind = type(estimator).__name__
    if kind == "LGBMClassifier":
        lgb_booster = estimator.booster_

        def lightgbm(x: np.ndarray) -> np.ndarray:
            # Waking OpenMP's pool for fewer rows costs more than it saves.
            threads = 1 if len(x) < PARALLEL_EXPLAIN_ROWS else 0
            out = lgb_booster.predict(x, pred_contrib=True, num_threads=threads)
            return np.asarray(out, dtype=np.float64)

        return lightgbm
    if kind == "XGBClassifier":
        import xgboost as xgb  # noqa: PLC0415

        boosters = (xgboost_single_thread(estimator), estimator.get_booster())
        rounds = xgboost_rounds(estimator)

        def xgboost(x: np.ndarray) -> np.ndarray:
            few = len(x) < PARALLEL_EXPLAIN_ROWS
            booster = boosters[0] if few else boosters[1]
            matrix = xgb.DMatrix(
                x, missing=np.nan, feature_names=booster.feature_names, nthread=1 if few else -1
            )
            out = booster.predict(matrix, pred_contribs=True, iteration_range=rounds)
            return np.asarray(out, dtype=np.float64)

        return xgboost
    return None


def _permutation_contributions(
    model: Any, x_rows: pd.DataFrame, background: pd.DataFrame | None, seed: int
) -> tuple[pd.DataFrame, float]:
    """Interventional SHAP by sampled feature orders, vectorised over rows and background.

    For one order, features switch one by one from a background row's value to the
    explained row's; each switch's change in log-odds is that feature's contribution, and
    the changes add up to f(row) - f(background row). Averaging over background rows and
    over an order and its reverse (antithetic pairs) estimates SHAP values; for an
    additive model such as the scorecard any single order is already exact. Written here
    rather than shap's Permutation explainer, whose numba compilation costs seconds on
    first use in every process.
    """
    rng = np.random.default_rng(seed)
    reference = x_rows if background is None else background
    reference = reference.sample(n=min(BACKGROUND_ROWS, len(reference)), random_state=seed)
    columns = list(x_rows.columns)
    rows, base_rows = x_rows.to_numpy(dtype=float), reference.to_numpy(dtype=float)

    def log_odds(data: np.ndarray) -> np.ndarray:
        p = model.predict_proba(pd.DataFrame(data, columns=columns))[:, 1]
        p = np.clip(p, 1e-9, 1 - 1e-9)
        return np.asarray(np.log(p / (1 - p)))

    values = np.zeros(rows.shape)
    orders = [rng.permutation(len(columns)) for _ in range(ORDER_PAIRS)]
    for order in [o for pair in orders for o in (pair, pair[::-1])]:
        for start in range(0, len(rows), ROW_CHUNK):
            chunk = rows[start : start + ROW_CHUNK]
            values[start : start + ROW_CHUNK] += _switch_effects(log_odds, chunk, base_rows, order)
    base = float(np.mean(log_odds(base_rows)))
    frame = pd.DataFrame(values / (2 * len(orders)), index=x_rows.index, columns=columns)
    return frame, base


def _switch_effects(
    log_odds: Any, rows: np.ndarray, background: np.ndarray, order: np.ndarray
) -> np.ndarray:
    """(rows, features) mean change in log-odds as each feature switches, in `order`."""
    n_features = rows.shape[1]
    # switched[k] marks the features already taken from the explained row after k steps.
    switched = np.zeros((n_features + 1, n_features), dtype=bool)
    for k in range(1, n_features + 1):
        switched[k, order[:k]] = True
    grid = np.where(switched[None, None], rows[:, None, None, :], background[None, :, None, :])
    out = log_odds(grid.reshape(-1, n_features)).reshape(len(rows), len(background), -1)
    steps = np.diff(out, axis=2).mean(axis=1)
    effects = np.empty_like(steps)
    effects[:, order] = steps
    return effects


def top_reasons(contributions: pd.DataFrame, n: int = 3) -> list[list[str]]:
    """Per row, the `n` features that raised the risk most (positive contributions only)."""
    reasons = []
    for _, row in contributions.iterrows():
        positive = row[row > 0].sort_values(ascending=False)
        reasons.append([str(name) for name in positive.index[:n]])
    return reasons
