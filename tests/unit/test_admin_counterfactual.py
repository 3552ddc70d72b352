"""The console's counterfactual search on hand-made models whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.counterfactual import build_space, find_counterfactual, lower_band_goal, rank

pytestmark = pytest.mark.unit

RNG = np.random.default_rng(0)
REFERENCE = pd.DataFrame(
    {
        "pay": RNG.uniform(0, 100, 2000),
        "responsive": RNG.uniform(0, 1, 2000),
        "age": RNG.uniform(18, 80, 2000),
    }
)


def logistic(weights: dict[str, float], bias: float):
    """p = sigmoid(bias + sum w * x): paying more and answering more lower the risk."""

    def predict(frame: pd.DataFrame) -> np.ndarray:
        z = bias + sum(w * frame[c].to_numpy(dtype=float) for c, w in weights.items())
        return np.asarray(1 / (1 + np.exp(-z)))

    return predict


def row(**values: float) -> pd.Series:
    base = {"pay": 10.0, "responsive": 0.2, "age": 40.0}
    base.update(values)
    return pd.Series(base, dtype=float)


def test_rank_is_the_reference_position_and_missing_is_the_middle() -> None:
    values = np.sort(REFERENCE["pay"].to_numpy())
    assert rank(float(np.median(values)), values) == pytest.approx(0.5, abs=0.01)
    assert rank(-1.0, values) == 0.0
    assert rank(1e9, values) == 1.0
    assert rank(float("nan"), values) == 0.5


def test_one_feature_suffices_and_only_it_changes() -> None:
    predict = logistic({"pay": -0.1}, bias=2.0)  # flagged below pay = 20 at threshold 0.5
    space = build_space(REFERENCE, ["pay", "responsive"])
    result = find_counterfactual(row(pay=10), predict, 0.5, space)
    assert result.found and result.decision_before is True
    assert [c.feature for c in result.changes] == ["pay"]
    assert result.probability_after < 0.5 <= result.probability_before
    # The smallest grid step that crosses pay = 20 (the 20-25% quantile), not a bigger one.
    assert 20 < result.changes[0].after < 27


def test_the_cheaper_feature_in_reference_terms_is_chosen() -> None:
    # Both features can flip it; moving responsiveness costs fewer percentiles.
    predict = logistic({"pay": -0.05, "responsive": -20.0}, bias=5.5)
    space = build_space(REFERENCE, ["pay", "responsive"])
    result = find_counterfactual(row(pay=10, responsive=0.2), predict, 0.5, space)
    assert result.found
    assert [c.feature for c in result.changes] == ["responsive"]


def test_two_changes_when_one_is_not_enough_and_each_is_needed() -> None:
    predict = logistic({"pay": -0.06, "responsive": -6.0}, bias=7.0)
    space = build_space(REFERENCE, ["pay", "responsive"])
    start = row(pay=5, responsive=0.05)
    result = find_counterfactual(start, predict, 0.5, space)
    assert result.found and {c.feature for c in result.changes} == {"pay", "responsive"}
    for change in result.changes:  # undoing either change un-flips it: both are needed
        undone = start.copy()
        other = next(c for c in result.changes if c is not change)
        undone[other.feature] = other.after
        assert predict(undone.to_frame().T)[0] >= 0.5


def test_non_actionable_features_never_move() -> None:
    predict = logistic({"age": -0.2, "pay": -0.01}, bias=8.0)  # age would flip it easily
    space = build_space(REFERENCE, ["pay"])
    result = find_counterfactual(row(age=40), predict, 0.5, space)
    assert all(c.feature == "pay" for c in result.changes)
    assert not result.found and "no change" in result.message


def test_an_unflagged_account_gets_the_change_that_would_flag_it() -> None:
    predict = logistic({"pay": -0.1}, bias=2.0)
    space = build_space(REFERENCE, ["pay"])
    result = find_counterfactual(row(pay=80), predict, 0.5, space)
    assert result.found and result.decision_before is False
    assert result.probability_after >= 0.5
    assert result.changes[0].after < 20


def test_max_changes_is_respected() -> None:
    predict = logistic({"pay": -0.03, "responsive": -3.0}, bias=6.0)
    space = build_space(REFERENCE, ["pay", "responsive"])
    result = find_counterfactual(row(pay=1, responsive=0.01), predict, 0.5, space, max_changes=1)
    assert len(result.changes) <= 1


def test_features_without_spread_are_left_out_of_the_space() -> None:
    frame = REFERENCE.assign(constant=1.0, empty=np.nan)
    space = build_space(frame, ["pay", "constant", "empty", "absent"])
    assert space.features == ["pay"]


def test_a_band_goal_is_the_next_band_down_and_the_search_reaches_it() -> None:
    assert lower_band_goal("low", 0.2, 0.5) is None
    medium = lower_band_goal("medium", 0.2, 0.5)
    assert medium is not None and (medium.target_band, medium.cutoff) == ("low", 0.2)
    high = lower_band_goal("high", 0.2, 0.5)
    assert high is not None and (high.target_band, high.cutoff) == ("medium", 0.5)
    predict = logistic({"pay": -0.1}, bias=2.0)  # p = 0.73 at pay = 10: high
    space = build_space(REFERENCE, ["pay", "responsive"])
    result = find_counterfactual(row(pay=10), predict, high.cutoff, space)
    assert result.found and 0.2 < result.probability_after < 0.5  # medium, not further
