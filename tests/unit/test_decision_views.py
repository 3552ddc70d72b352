"""Decision views on a tiny booster: the grid, the sklearn wrapper, the constraints read
from a model, and the figures (ICE subsample, centring, cutoff contours, titles)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import is_classifier

from admin_app.logic.decisions import (
    CUTOFF_NAMES,
    constraint_label,
    curves_figure,
    cutoffs,
    feature_title,
    ice_rows,
    map_figure,
    top_columns,
)
from training.estimators import build_estimator
from training.inspection import (
    DecisionMap,
    FeatureCurves,
    ProbabilityEstimator,
    column_sentence,
    decision_map,
    enforced_constraints,
    feature_curves,
    grid_for,
    sample_rows,
)
from training.scoring_model import ScoringModel

pytestmark = pytest.mark.unit

SERVICE = "collection_risk_v1"


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 1500
    x = pd.DataFrame({
        "a": rng.normal(size=n), "b": rng.exponential(size=n),
        "c": rng.integers(0, 5, n).astype(float), "flag": (rng.random(n) < 0.03).astype(float),
        "constant": np.ones(n),
    })  # fmt: skip
    x.loc[::7, "b"] = np.nan  # no history: the model matrix holds NaN
    x["y"] = (x["a"] + 0.5 * x["c"] - x["b"].fillna(0) + rng.normal(size=n) > 0.5).astype(int)
    return x


def _model(data: pd.DataFrame, monotone: dict[str, int] | None) -> ScoringModel:
    x = data.drop(columns="y")
    params = {"n_estimators": 40, "max_depth": 3, "n_jobs": 1}
    estimator = build_estimator("xgboost", params, "none", monotone, None, 0).fit(x, data["y"])
    return ScoringModel(estimator, None, 0.4, 0.2, 0.5, list(x.columns), SERVICE, "fp")


@pytest.fixture(scope="module")
def model(data: pd.DataFrame) -> ScoringModel:
    return _model(data, {"a": 1, "b": -1})


@pytest.fixture(scope="module")
def rows(data: pd.DataFrame) -> pd.DataFrame:
    return sample_rows(data.drop(columns="y"), 300)


def test_grid_spans_the_middle_of_finite_values_or_takes_the_few_distinct_ones() -> None:
    values = np.r_[np.arange(1000.0), [np.nan] * 50]
    grid = grid_for(values, points=20)
    assert len(grid) == 20 and np.isfinite(grid).all()
    assert grid[0] == pytest.approx(np.percentile(np.arange(1000.0), 5))
    assert grid[-1] == pytest.approx(np.percentile(np.arange(1000.0), 95))
    assert list(grid_for(np.r_[np.zeros(90), np.ones(10), 2, 3])) == [0.0, 1.0]
    # A rare one-hot flag: both values, though 1 lies beyond the 95th percentile.
    assert list(grid_for(np.r_[np.zeros(99), 1.0])) == [0.0, 1.0]
    assert len(grid_for(np.ones(10))) == 0 and len(grid_for(np.full(5, np.nan))) == 0


def test_the_wrapper_is_a_fitted_classifier_of_the_calibrated_probability(
    model: ScoringModel, rows: pd.DataFrame
) -> None:
    wrapper = ProbabilityEstimator(model)
    assert is_classifier(wrapper) and list(wrapper.classes_) == [0, 1]
    proba = wrapper.predict_proba(rows.to_numpy())  # sklearn may hand it an array
    np.testing.assert_array_equal(proba[:, 1], model.predict_proba(rows))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_constraints_come_from_the_booster_and_pd_follows_them(
    model: ScoringModel, data: pd.DataFrame, rows: pd.DataFrame
) -> None:
    assert enforced_constraints(model) == {"a": 1, "b": -1}
    assert enforced_constraints(_model(data, None)) == {}
    constraints = enforced_constraints(model)
    for column, direction in constraints.items():
        curves = feature_curves(model, rows, column, constraints=constraints)
        assert np.all(np.diff(curves.average) * direction >= -1e-12)
        np.testing.assert_allclose(curves.individual.mean(axis=0), curves.average)
        assert "PD keeps it" in str(constraint_label(curves))
    with pytest.raises(ValueError, match="fewer than two"):
        feature_curves(model, rows, "constant")


def test_a_pd_step_against_the_constraint_is_measured() -> None:
    grid = np.arange(3.0)
    lines = np.array([[0.1, 0.3, 0.2], [0.1, 0.5, 0.4]])
    curves = FeatureCurves("a", grid, lines.mean(axis=0), lines, np.ones(9), monotone=1)
    assert curves.against_constraint() == pytest.approx(0.1)
    assert "breaks it by 0.1000" in str(constraint_label(curves))
    assert constraint_label(FeatureCurves("a", grid, grid, lines, np.ones(9))) is None


def test_ice_figure_draws_a_fixed_subsample_and_centres_on_request(
    model: ScoringModel, rows: pd.DataFrame
) -> None:
    curves = feature_curves(model, rows, "a", constraints={"a": 1})
    assert list(ice_rows(300, 60)) == list(ice_rows(300, 60)) and len(ice_rows(300, 60)) == 60
    figure = curves_figure(curves, "A title", lines=60)
    ice, pd_line = figure.data
    # 60 lines of one trace, each grid long and ended by a gap.
    assert np.isnan(np.asarray(ice.y, dtype=float)).sum() == 60
    np.testing.assert_allclose(pd_line.y, curves.average)
    assert figure.layout.title.text == "A title"
    centred = curves_figure(curves, "A title", centred=True)
    assert centred.data[1].y[0] == 0.0
    assert centred.layout.yaxis.title.text == "change in probability"


def test_the_decision_map_draws_only_the_cutoffs_it_crosses(
    model: ScoringModel, rows: pd.DataFrame
) -> None:
    dmap = decision_map(model, rows, "a", "c", points=15)
    assert dmap.probability.shape == (len(dmap.y_grid), len(dmap.x_grid)) == (5, 15)
    figure = map_figure(dmap, "map")
    levels = {c.name: c.level for c in cutoffs(dmap) if c.on_map}
    drawn = {t.contours.start for t in figure.data if t.type == "contour"}
    assert drawn == set(levels.values()) and levels
    flat = DecisionMap("a", "c", dmap.x_grid, dmap.y_grid, np.full((5, 15), 0.3), 0.2, 0.5, 0.4)
    assert [t.type for t in map_figure(flat, "flat").data] == ["heatmap"]
    note = map_figure(flat, "flat").layout.title.text
    assert all(CUTOFF_NAMES[n] in note for n in ("low_max", "medium_max", "threshold"))
    with pytest.raises(ValueError, match="two different"):
        decision_map(model, rows, "a", "a")


def test_ranking_skips_columns_without_a_grid_and_titles_carry_the_reason() -> None:
    x = pd.DataFrame({"k": np.ones(5), "m": np.arange(5.0), "n": np.arange(5.0)})
    importance = pd.Series({"k": 9.0, "n": 1.0, "m": 2.0})
    assert top_columns(importance, x, 2) == ["m", "n"]
    column = "account_payment_velocity__payment_velocity"
    sentence = column_sentence(column, SERVICE)
    assert sentence is not None and sentence[0] == "R05"
    title = feature_title(column, sentence)
    assert "payment velocity" in title and sentence[1] in title
    history = column_sentence("account_payment_velocity__payment_history_3", SERVICE)
    assert history is not None and history[0] == "R04"
    assert feature_title("xyz", None) == "<b>xyz</b>"
