"""A direct path from the model matrix to calibrated probabilities, for scoring.

sklearn's CalibratedClassifierCV -> Pipeline -> LGBMClassifier chain validates and copies
its input at every layer: about 11 ms for one row where the booster itself needs 0.06 ms.
For the shape training produces (samplers, which act only in fit, then one booster, then
one fitted calibrator) the same numbers come from calling the booster on the float array
and the calibrator on its output. The path is built only for that shape and only kept if it
reproduces the slow path exactly on probe rows; anything else keeps the sklearn chain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from imblearn.pipeline import Pipeline
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

log = logging.getLogger(__name__)

Predict = Callable[[np.ndarray], np.ndarray]
PROBE_ROWS = 64
SMALL_BATCH = 1000


def compile_fast(estimator: Any, n_features: int) -> Predict | None:
    """The fast positive-class probability function, or None when the shape is unknown or
    the fast path does not reproduce the estimator exactly."""
    try:
        fast = _build(estimator)
    except (AttributeError, IndexError, TypeError):
        return None
    if fast is None or not _agrees(fast, estimator, n_features):
        return None
    return fast


def _build(estimator: Any) -> Predict | None:
    calibrator = None
    model = estimator
    if isinstance(model, CalibratedClassifierCV):
        if len(model.calibrated_classifiers_) != 1:
            return None
        calibrated = model.calibrated_classifiers_[0]
        calibrator, model = calibrated.calibrators[0], calibrated.estimator
    if isinstance(model, FrozenEstimator):
        model = model.estimator
    if not isinstance(model, Pipeline):
        return None
    # Samplers act only in fit; any other step transforms rows and is left to sklearn.
    if any(not hasattr(step, "fit_resample") for _, step in model.steps[:-1]):
        return None
    raw = _booster_call(model.steps[-1][1])
    if raw is None:
        return None
    if calibrator is None:
        return raw
    return lambda x: np.asarray(calibrator.predict(raw(x)), dtype=np.float64)


def _booster_call(final: Any) -> Predict | None:
    inner: Any = getattr(final, "estimator_", None)
    kind = type(inner).__name__
    if kind == "LGBMClassifier":
        booster = inner.booster_
        # Booster.predict uses best_iteration itself, as LGBMClassifier.predict_proba does.
        # Few rows on one thread: waking OpenMP's pool costs more than it saves and puts
        # milliseconds into the tail of single-account scores on a busy machine.
        return lambda x: np.asarray(
            booster.predict(x, num_threads=1 if len(x) <= SMALL_BATCH else 0), dtype=np.float64
        )
    if kind == "XGBClassifier":
        one_thread, rounds = xgboost_single_thread(inner), xgboost_rounds(inner)

        def xgboost(x: np.ndarray) -> np.ndarray:
            if len(x) > SMALL_BATCH:
                return np.asarray(inner.predict_proba(x)[:, 1], dtype=np.float64)
            # What predict_proba runs (inplace_predict, best iteration), on one thread.
            p = one_thread.inplace_predict(
                x, iteration_range=rounds, missing=np.nan, validate_features=False
            )
            return np.asarray(p, dtype=np.float64)

        return xgboost
    return None


def xgboost_rounds(estimator: Any) -> tuple[int, int]:
    """The iteration range XGBClassifier predicts with: up to the best one when early
    stopping found one, else every tree ((0, 0))."""
    try:
        best = estimator.best_iteration
    except AttributeError:  # XGBoost raises it when no early stopping ran
        return (0, 0)
    return (0, int(best) + 1)


def xgboost_single_thread(estimator: Any) -> Any:
    """A copy of the fitted booster that predicts on one thread (for a few rows, waking
    OpenMP's threads costs more than it saves, and they spin on the scorer's cores)."""
    booster = estimator.get_booster().copy()
    booster.set_param({"nthread": 1})
    return booster


def _agrees(fast: Predict, estimator: Any, n_features: int) -> bool:
    import pandas as pd  # noqa: PLC0415

    rng = np.random.default_rng(0)
    probe = rng.normal(0.0, 50.0, size=(PROBE_ROWS, n_features))
    probe[::7] = 0.0
    probe[::5, ::3] = np.nan
    names = getattr(estimator, "feature_names_in_", None)
    frame = pd.DataFrame(probe, columns=list(names) if names is not None else None)
    slow = np.asarray(estimator.predict_proba(frame))[:, 1]
    same = np.allclose(fast(probe), slow, rtol=0.0, atol=1e-12)
    if not same:
        log.warning("fast scoring path disagrees with the estimator: using the sklearn chain")
    return bool(same)
