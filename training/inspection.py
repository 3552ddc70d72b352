"""Partial dependence, ICE and two-feature decision maps of a scoring model.

sklearn.inspection computes them; this module gives it what it needs. A ScoringModel is not
an sklearn estimator (it calibrates, clips and may take a compiled fast path), so
`ProbabilityEstimator` wraps it: the curves are of the calibrated probability the scorer
serves, the number bands and thresholds are cut on, not of the raw booster.

Grids run over the 5th-95th percentiles of the sampled rows' finite values: the tails are
thin, and a curve drawn through them shows the trees' extrapolation, not the data. Columns
with few distinct values (counts, one-hot flags) use those values instead. The grid is
built here, not by sklearn, because sklearn's percentiles and uniques break on NaN, which
the model matrix holds wherever an account has no history.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from imblearn.pipeline import Pipeline
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.inspection import partial_dependence

from training.estimators import BoostedTrees
from training.explain import unwrap
from training.model_matrix import column_sources
from training.reason_codes import reason_table
from training.scoring_model import ScoringModel

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

SAMPLE_ROWS = 500
GRID_POINTS = 20
MAP_POINTS = 20
PERCENTILES = (5.0, 95.0)
# A PD step against a monotone constraint smaller than this is float noise, not a breach.
MONOTONE_TOLERANCE = 1e-9


class ProbabilityEstimator(ClassifierMixin, BaseEstimator):
    """sklearn's face of a fitted ScoringModel: predict_proba of the calibrated probability."""

    def __init__(self, model: ScoringModel) -> None:
        self.model = model

    def __sklearn_is_fitted__(self) -> bool:
        # The wrapped model is fitted by construction; sklearn would otherwise look for
        # attributes ending in "_" and refuse it.
        return True

    @property
    def classes_(self) -> npt.NDArray[np.int64]:
        return np.array([0, 1])

    def fit(self, x: Any, y: Any = None) -> ProbabilityEstimator:
        """Nothing to fit: the estimator contract asks for the method."""
        return self

    def predict_proba(self, x: Any) -> FloatArray:
        if isinstance(x, pd.DataFrame):
            frame = x
        else:
            # An array in feature_columns order: named without a copy, so the model's
            # matrix() takes it as it is.
            values = np.asarray(x, dtype=np.float64)
            frame = pd.DataFrame(values, columns=self.model.feature_columns, copy=False)
        p = self.model.predict_proba(frame)
        return np.column_stack([1.0 - p, p])

    def predict(self, x: Any) -> npt.NDArray[np.int64]:
        return (self.predict_proba(x)[:, 1] >= self.model.threshold).astype(np.int64)


@dataclass(frozen=True)
class FeatureCurves:
    """One model column's partial dependence (PD) and its ICE lines over the sampled rows.

    `individual[i, j]` is row i's probability with the column set to `grid[j]`; `average`
    is their mean over rows (the PD). `monotone` is the direction the model was constrained
    to (+1, -1; 0 when unconstrained); `deciles` of the column's sampled values mark where
    the data actually lies.
    """

    column: str
    grid: FloatArray
    average: FloatArray
    individual: FloatArray
    deciles: FloatArray
    monotone: int = 0

    def centred(self) -> FeatureCurves:
        """c-ICE: every line (and the PD) minus its value at the grid's first point, so the
        spread of effects shows instead of the spread of levels."""
        individual = self.individual - self.individual[:, :1]
        return replace(self, individual=individual, average=individual.mean(axis=0))

    def against_constraint(self) -> float:
        """The largest PD step against the constrained direction (0 when it holds)."""
        if self.monotone == 0 or len(self.average) < 2:
            return 0.0
        steps = np.diff(self.average) * self.monotone
        return float(max(0.0, -steps.min()))


@dataclass(frozen=True)
class DecisionMap:
    """Two-feature PD: `probability[i, j]` at (x_grid[j], y_grid[i]), heatmap orientation.

    The cutoffs are the model's: at or below low_max is the low band, up to medium_max
    medium, above it high; the decision threshold beside them.
    """

    x_column: str
    y_column: str
    x_grid: FloatArray
    y_grid: FloatArray
    probability: FloatArray
    low_max: float
    medium_max: float
    threshold: float

    def bands(self) -> npt.NDArray[np.str_]:
        p = self.probability
        return np.where(
            p <= self.low_max, "low", np.where(p <= self.medium_max, "medium", "high")
        ).astype(np.str_)


def sample_rows(x: pd.DataFrame, n: int = SAMPLE_ROWS, seed: int = 0) -> pd.DataFrame:
    """At most n rows, the same ones on every call: a view must not change between visits."""
    if len(x) <= n:
        return x.reset_index(drop=True)
    return x.sample(n=n, random_state=seed).reset_index(drop=True)


def grid_for(
    values: pd.Series | FloatArray,
    points: int = GRID_POINTS,
    percentiles: tuple[float, float] = PERCENTILES,
) -> FloatArray:
    """The column's grid: its distinct values when few, else evenly spaced between the
    percentiles; empty when the column has fewer than two finite values."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    distinct = np.unique(finite)
    if len(distinct) < 2:
        return np.empty(0)
    low, high = np.percentile(finite, percentiles)
    if len(distinct) <= points:
        inside = distinct[(distinct >= low) & (distinct <= high)]
        # A rare flag (one-hot column) has both values outside the band: keep both.
        return inside if len(inside) >= 2 else distinct
    if np.isclose(low, high):
        return distinct[[0, -1]]
    return np.linspace(low, high, points)


def enforced_constraints(model: ScoringModel) -> dict[str, int]:
    """Model column -> +1 / -1 for the monotone constraints the final booster was fitted with.

    Only a booster that ends the pipeline enforces its constraints on the whole model (a
    monotone calibrator keeps them); a stack's meta-learner may reverse its base learners',
    so a stack reports none rather than a promise it does not keep.
    """
    inner = unwrap(model.estimator)
    final = inner.steps[-1][1] if isinstance(inner, Pipeline) else inner
    if not isinstance(final, BoostedTrees) or final.monotone is None:
        return {}
    seen = getattr(final, "feature_names_in_", None)
    columns = [str(c) for c in seen] if seen is not None else model.feature_columns
    if isinstance(final.monotone, Mapping):
        found = {c: int(final.monotone.get(c, 0)) for c in columns}
    elif len(final.monotone) == len(columns):
        found = {c: int(v) for c, v in zip(columns, final.monotone, strict=True)}
    else:
        log.warning("monotone constraints do not line up with the booster's columns: ignored")
        return {}
    return {c: v for c, v in found.items() if v != 0}


def feature_curves(
    model: ScoringModel,
    x: pd.DataFrame,
    column: str,
    *,
    points: int = GRID_POINTS,
    constraints: Mapping[str, int] | None = None,
) -> FeatureCurves:
    """PD and ICE of `column` over the rows of `x` (the model matrix), by sklearn."""
    grid = grid_for(x[column], points)
    if len(grid) < 2:
        raise ValueError(f"{column} has fewer than two distinct values in the sample")
    values, where = _matrix(model, x)
    result = partial_dependence(
        ProbabilityEstimator(model),
        values,
        [where[column]],
        kind="both",
        custom_values={where[column]: grid},
        response_method="predict_proba",
    )
    finite = x[column].to_numpy(dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return FeatureCurves(
        column=column,
        grid=np.asarray(result["grid_values"][0], dtype=np.float64),
        average=np.asarray(result["average"][0], dtype=np.float64),
        individual=np.asarray(result["individual"][0], dtype=np.float64),
        deciles=np.percentile(finite, np.arange(10, 100, 10)),
        monotone=int((constraints or {}).get(column, 0)),
    )


def _matrix(model: ScoringModel, x: pd.DataFrame) -> tuple[FloatArray, dict[str, int]]:
    """The rows as a float array in the model's column order, and each column's position.

    sklearn copies its input for every grid point: a DataFrame costs ~5 ms a copy and an
    assignment, an array a fraction of that, and the wrapper names the columns again.
    """
    columns = model.feature_columns
    return x.loc[:, columns].to_numpy(dtype=np.float64), {c: i for i, c in enumerate(columns)}


def decision_map(
    model: ScoringModel,
    x: pd.DataFrame,
    x_column: str,
    y_column: str,
    points: int = MAP_POINTS,
) -> DecisionMap:
    """Two-feature PD of the calibrated probability over the rows of `x`, by sklearn."""
    if x_column == y_column:
        raise ValueError("a decision map needs two different features")
    grids = {c: grid_for(x[c], points) for c in (x_column, y_column)}
    flat = [c for c, g in grids.items() if len(g) < 2]
    if flat:
        raise ValueError(f"{', '.join(flat)}: fewer than two distinct values in the sample")
    values, where = _matrix(model, x)
    result = partial_dependence(
        ProbabilityEstimator(model),
        values,
        [where[x_column], where[y_column]],
        kind="average",
        method="brute",
        custom_values={where[c]: g for c, g in grids.items()},
        response_method="predict_proba",
    )
    # sklearn's axes are (x values, y values); a heatmap wants rows of y.
    probability = np.asarray(result["average"][0], dtype=np.float64).T
    return DecisionMap(
        x_column=x_column,
        y_column=y_column,
        x_grid=np.asarray(result["grid_values"][0], dtype=np.float64),
        y_grid=np.asarray(result["grid_values"][1], dtype=np.float64),
        probability=probability,
        low_max=model.low_max,
        medium_max=model.medium_max,
        threshold=model.threshold,
    )


def inspectable(x: pd.DataFrame, ranked: Sequence[str]) -> list[str]:
    """The ranked columns that have a grid (at least two distinct finite values)."""
    return [c for c in ranked if c in x.columns and len(grid_for(x[c])) >= 2]


def column_sentence(column: str, feature_service: str) -> tuple[str, str] | None:
    """(code, sentence) of the reason-code row of the feature the column encodes, if any."""
    source = column_sources(feature_service).get(column, column)
    entry = reason_table().get(source)
    return None if entry is None else (entry.code, entry.sentence)
