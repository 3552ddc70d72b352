"""Fairness figures on a hand-made frame whose answers are known."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from training.fairness import disparate_impact, fairness_table, group_metrics

pytestmark = pytest.mark.unit

THRESHOLD = 0.5


def frame() -> pd.DataFrame:
    """Group a: 10 accounts, 4 flagged; group b: 10 accounts, 2 flagged; 1 of unknown sex."""
    rows = [
        # group a: defaulters flagged 3 of 4, payers flagged 1 of 6
        *[("a", 1, 0.9)] * 3, ("a", 1, 0.2), ("a", 0, 0.7), *[("a", 0, 0.1)] * 5,
        # group b: defaulters flagged 2 of 2, payers flagged 0 of 8
        *[("b", 1, 0.8)] * 2, *[("b", 0, 0.3)] * 8,
        (None, 0, 0.9),
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["sex", "y", "p"])


def test_group_figures() -> None:
    f = frame()
    table = group_metrics(f["y"], f["p"], THRESHOLD, f["sex"])
    assert table.loc["a", "count"] == 10 and table.loc["b", "count"] == 10
    assert table.loc["a", "selection_rate"] == pytest.approx(0.4)
    assert table.loc["b", "selection_rate"] == pytest.approx(0.2)
    assert table.loc["a", "tpr"] == pytest.approx(0.75)
    assert table.loc["a", "fpr"] == pytest.approx(1 / 6)
    assert table.loc["b", "tpr"] == pytest.approx(1.0)
    assert table.loc["b", "fpr"] == pytest.approx(0.0)
    # Group a: the unflagged defaulter (0.2) ranks above five payers (0.1), below one (0.7).
    assert table.loc["a", "auc"] == pytest.approx((3 * 6 + 5) / 24)
    assert table.loc["b", "auc"] == pytest.approx(1.0)
    # The missing attribute is its own group; with one class its AUC is undefined.
    assert table.loc["unknown", "count"] == 1
    assert table.loc[["unknown"], ["auc", "tpr"]].isna().all(axis=None)


def test_disparate_impact_and_the_four_fifths_rule() -> None:
    f = frame()
    result = fairness_table(f["y"], f["p"], THRESHOLD, {"sex": f["sex"]}, min_group_size=5)
    sex = result["attributes"]["sex"]
    # 0.2 / 0.4; the one-account "unknown" group is too small to count.
    assert sex["disparate_impact"] == pytest.approx(0.5)
    assert sex["passes_four_fifths"] is False
    assert sex["groups"]["unknown"]["auc"] is None
    json.dumps(result, allow_nan=False)
    # A higher cut flags a's three 0.9s and b's two 0.8s: 0.2 / 0.3.
    higher = fairness_table(f["y"], f["p"], 0.75, {"sex": f["sex"]}, min_group_size=5)
    assert higher["attributes"]["sex"]["disparate_impact"] == pytest.approx(2 / 3)


def test_rule_passes_when_rates_are_close_and_is_not_assessed_for_one_group() -> None:
    y = pd.Series([1, 0, 1, 0, 1, 0, 1, 0, 1, 0])
    p = pd.Series([0.9, 0.1, 0.9, 0.1, 0.9, 0.9, 0.9, 0.1, 0.9, 0.1])
    groups = pd.Series(["x"] * 5 + ["y"] * 5)
    result = fairness_table(y, p, 0.5, {"g": groups, "one": pd.Series(["z"] * 10)}, 0.8, 1)
    # x selects 3/5, y selects 3/5.
    assert result["attributes"]["g"]["disparate_impact"] == pytest.approx(1.0)
    assert result["attributes"]["g"]["passes_four_fifths"] is True
    assert result["attributes"]["one"]["disparate_impact"] is None
    assert result["attributes"]["one"]["passes_four_fifths"] is None


def test_nobody_selected_is_no_disparity() -> None:
    table = pd.DataFrame({"count": [50, 50], "selection_rate": [0.0, 0.0]}, index=["a", "b"])
    assert disparate_impact(table) == 1.0
