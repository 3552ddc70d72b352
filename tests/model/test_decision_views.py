"""The console's decision views (training.inspection) on the trained candidate: partial
dependence and ICE by sklearn.inspection through the ScoringModel's calibrated probability,
and the two-feature decision map with its band cutoffs.

The candidate (tests/model/conftest.py) is tuned, fitted with the domain's monotone
constraints and calibrated, so its PD and every ICE line must respect each constraint; the
numbers must equal a direct computation with the model, so nothing in the wrapping (column
order, calibration, the fast path) may change what is shown.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import pytest

from admin_app.logic.decisions import cutoffs, map_figure, top_columns
from tests.model.conftest import Candidate
from training.explain import explain_rows
from training.inspection import (
    SAMPLE_ROWS,
    decision_map,
    enforced_constraints,
    feature_curves,
    sample_rows,
)
from training.model_matrix import model_matrix, monotone_constraints

pytestmark = [pytest.mark.model, pytest.mark.slow]

log = logging.getLogger(__name__)

OVERDUE = "request_time_features__days_overdue_at_request"
CONSISTENCY = "account_payment_velocity__payment_consistency_score"
# Float noise of a mean over 500 rows; a real breach of a constraint is orders larger.
EPS = 1e-12


@pytest.fixture(scope="module")
def rows(candidate: Candidate) -> pd.DataFrame:
    model = candidate.model
    x = model_matrix(candidate.dataset, model.feature_service)[model.feature_columns]
    return sample_rows(x, SAMPLE_ROWS, seed=0)


def _mean_with(candidate: Candidate, rows: pd.DataFrame, values: dict[str, float]) -> float:
    """The model's mean probability over the rows with the given columns set: PD by hand."""
    varied = rows.copy()
    for column, value in values.items():
        varied[column] = value
    return float(candidate.model.predict_proba(varied).mean())


def test_the_constraints_read_from_the_model_are_the_domains(candidate: Candidate) -> None:
    columns = candidate.model.feature_columns
    expected = {c: v for c, v in zip(columns, monotone_constraints(columns), strict=True) if v}
    assert expected  # the domain constrains some columns of this service
    assert enforced_constraints(candidate.model) == expected


def test_pd_and_every_ice_line_follow_each_constraint(
    candidate: Candidate, rows: pd.DataFrame
) -> None:
    constraints = enforced_constraints(candidate.model)
    checked = 0
    started = time.perf_counter()
    for column, direction in constraints.items():
        curves = feature_curves(candidate.model, rows, column, constraints=constraints)
        assert curves.monotone == direction
        assert np.all(np.diff(curves.average) * direction >= -EPS), column
        # Stronger than the PD: the model is monotone for every single account.
        assert np.all(np.diff(curves.individual, axis=1) * direction >= -EPS), column
        assert curves.against_constraint() == 0.0
        checked += 1
    log.info("PD/ICE of %d constrained columns: %.2f s", checked, time.perf_counter() - started)
    assert checked == len(constraints)
    # The increasing one the page leads with: days overdue must move the PD at all.
    overdue = feature_curves(candidate.model, rows, OVERDUE, constraints=constraints)
    assert overdue.monotone == 1 and overdue.average[-1] > overdue.average[0]


def test_ice_lines_average_to_the_pd_which_is_the_models_own_mean(
    candidate: Candidate, rows: pd.DataFrame
) -> None:
    curves = feature_curves(candidate.model, rows, CONSISTENCY)
    assert curves.individual.shape == (len(rows), len(curves.grid))
    np.testing.assert_allclose(curves.individual.mean(axis=0), curves.average, atol=1e-12)
    for j in (0, len(curves.grid) // 2, len(curves.grid) - 1):
        expected = _mean_with(candidate, rows, {CONSISTENCY: curves.grid[j]})
        assert curves.average[j] == pytest.approx(expected, abs=1e-12)
    # The grid spans the 5th-95th percentiles of the sampled accounts.
    values = rows[CONSISTENCY].dropna()
    low, high = np.percentile(values, [5, 95])
    assert curves.grid.min() >= low - 1e-9 and curves.grid.max() <= high + 1e-9
    centred = curves.centred()
    assert np.all(centred.individual[:, 0] == 0.0) and centred.average[0] == 0.0


def test_the_decision_map_is_the_joint_pd_with_the_models_cutoffs(
    candidate: Candidate, rows: pd.DataFrame
) -> None:
    model = candidate.model
    started = time.perf_counter()
    dmap = decision_map(model, rows, OVERDUE, CONSISTENCY)
    log.info("decision map: %.2f s", time.perf_counter() - started)
    assert dmap.probability.shape == (len(dmap.y_grid), len(dmap.x_grid))
    i, j = len(dmap.y_grid) // 3, len(dmap.x_grid) // 2
    by_hand = _mean_with(candidate, rows, {OVERDUE: dmap.x_grid[j], CONSISTENCY: dmap.y_grid[i]})
    assert dmap.probability[i, j] == pytest.approx(by_hand, abs=1e-12)
    # Up with days overdue (across), down with payment consistency (up the map).
    assert np.all(np.diff(dmap.probability, axis=1) >= -EPS)
    assert np.all(np.diff(dmap.probability, axis=0) <= EPS)
    assert (dmap.low_max, dmap.medium_max, dmap.threshold) == (
        model.low_max, model.medium_max, model.threshold
    )  # fmt: skip
    expected = np.where(
        dmap.probability <= model.low_max,
        "low",
        np.where(dmap.probability <= model.medium_max, "medium", "high"),
    )
    assert (dmap.bands() == expected).all()

    crossed = [c for c in cutoffs(dmap) if c.on_map]
    assert crossed, "the strongest pair spans no cutoff: the map shows no decision boundary"
    contours = [t for t in map_figure(dmap, "map").data if t.type == "contour"]
    assert sorted(t.contours.start for t in contours) == sorted(c.level for c in crossed)
    for trace, cut in zip(contours, crossed, strict=True):
        assert trace.contours.start == trace.contours.end == cut.level
        # The line lies where the map crosses the level: cells on both sides of it.
        assert (dmap.probability <= cut.level).any() and (dmap.probability > cut.level).any()


def test_the_views_lead_with_the_features_of_largest_mean_abs_shap(
    candidate: Candidate, rows: pd.DataFrame
) -> None:
    shap = explain_rows(candidate.model.estimator, rows, background=rows)
    importance = shap.abs().mean(axis=0)
    top = top_columns(importance, rows, 6)
    assert len(top) == 6
    ranked = importance.sort_values(ascending=False)
    assert importance[top[0]] == ranked.iloc[0]
    assert list(importance[top]) == sorted(importance[top], reverse=True)
