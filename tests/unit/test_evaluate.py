"""Evaluation on hand-made examples with known answers: thresholds, bands, calibration,
AUC, lift and gains, band success rates, the oracle ratio, explanations and the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss

from training.estimators import build_estimator
from training.evaluate import (
    Candidate,
    assign_bands,
    best_f1_threshold,
    calibrate,
    choose_threshold,
    compare_candidates,
    cost_curve,
    evaluate,
    expected_cost,
    lift_table,
    min_cost_threshold,
    risk_bands,
)
from training.explain import TreeRowExplainer, explain_rows, global_importance, method_for
from training.report import build_report, render_html, write_report

pytestmark = pytest.mark.unit

# Ten accounts, scores in falling order; the defaulters are the 1st, 2nd, 3rd and 5th.
Y = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 0])
P = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])


def test_auc_and_pr_auc_on_a_hand_made_example() -> None:
    result = evaluate(Y, P, threshold=0.55, bands=(0.35, 0.75))
    # 4 defaulters x 6 payers = 24 pairs; only (5th, 4th) is ordered wrongly: 23 / 24.
    assert result["roc_auc"] == pytest.approx(23 / 24)
    # Average precision: mean of precision at each defaulter = (1 + 1 + 1 + 4/5) / 4.
    assert result["pr_auc"] == pytest.approx((3 + 0.8) / 4)
    assert result["brier"] == pytest.approx(np.mean((P - Y) ** 2))


def test_metrics_at_the_threshold() -> None:
    result = evaluate(Y, P, threshold=0.55, bands=(0.35, 0.75))
    # Flagged: the top five scores, four of them defaulters.
    assert result["confusion_matrix"] == {"tn": 5, "fp": 1, "fn": 0, "tp": 4}
    assert result["precision"] == pytest.approx(0.8)
    assert result["recall"] == pytest.approx(1.0)
    assert result["f1"] == pytest.approx(2 * 0.8 / 1.8)


def test_lift_and_gains_by_decile() -> None:
    rows = lift_table(Y, P, groups=5)
    # Groups of two in falling score: defaulters 2, 1, 1, 0, 0; base rate 0.4.
    assert [r["defaults"] for r in rows] == [2, 1, 1, 0, 0]
    assert [r["lift"] for r in rows] == pytest.approx([2.5, 1.25, 1.25, 0.0, 0.0])
    assert [r["cumulative_gain"] for r in rows] == pytest.approx([0.5, 0.75, 1.0, 1.0, 1.0])
    assert rows[0]["cumulative_lift"] == pytest.approx(2.5)
    assert rows[-1]["cumulative_lift"] == pytest.approx(1.0)
    assert len(lift_table(Y, P)) == 10


def test_best_f1_threshold_is_the_known_cut() -> None:
    # Flag the top 5 (F1 0.889) beats the top 3 (F1 0.857) and every other cut.
    assert best_f1_threshold(Y, P) == pytest.approx(0.6)
    assert choose_threshold(Y, P, "f1") == pytest.approx(0.6)
    with pytest.raises(ValueError, match="objective"):
        choose_threshold(Y, P, "accuracy")


def test_cost_threshold_and_curve() -> None:
    costs = {"fn": 5.0, "fp": 1.0, "tp": 1.0, "tn": 0.0}
    thresholds, cost = cost_curve(Y, P, costs)
    assert len(thresholds) == len(P) + 1
    # Flag the top five: 4 tp + 1 fp, nothing missed: cost 5 over 10 accounts.
    threshold, best = min_cost_threshold(Y, P, costs)
    assert threshold == pytest.approx(0.6) and best == pytest.approx(0.5)
    assert expected_cost(Y, threshold <= P, costs) == pytest.approx(best)
    # Flagging nobody costs 4 missed defaulters x 5.
    assert cost[-1] == pytest.approx(2.0)
    assert not np.any(thresholds[-1] <= P)
    # When missing is cheap, flag nobody: the cut lies above every score.
    cheap_miss = {"fn": 0.1, "fp": 1.0, "tp": 1.0, "tn": 0.0}
    assert choose_threshold(Y, P, "cost", cheap_miss) > P.max()


def test_cost_curve_handles_tied_scores() -> None:
    y = np.array([1, 0, 1, 0])
    p = np.array([0.5, 0.5, 0.2, 0.2])
    thresholds, _ = cost_curve(y, p)
    assert sorted(thresholds[:-1]) == [0.2, 0.5]


def test_bands_are_ordered_and_sized_by_validation_quantiles() -> None:
    rng = np.random.default_rng(0)
    p_valid = rng.beta(2, 5, size=1000)
    low_cut, high_cut = risk_bands(p_valid)
    assert low_cut < high_cut
    names = assign_bands(p_valid, (low_cut, high_cut))
    shares = {band: float(np.mean(names == band)) for band in ("low", "medium", "high")}
    assert shares == pytest.approx({"low": 0.5, "medium": 0.3, "high": 0.2}, abs=0.01)
    # Quantiles given in any order still give ordered cutoffs; ties give equal ones.
    assert risk_bands(p_valid, (0.9, 0.1))[0] < risk_bands(p_valid, (0.9, 0.1))[1]
    assert risk_bands(np.full(10, 0.3)) == (0.3, 0.3)


def test_collection_success_rate_by_band() -> None:
    result = evaluate(Y, P, 0.55, bands=(0.35, 0.75), amounts=np.full(10, 100.0))
    bands = result["bands"]
    # low: 0.1-0.3 (3 payers); medium: 0.4-0.7 (one defaulter of four); high: 0.8-0.95.
    assert [bands[b]["count"] for b in ("low", "medium", "high")] == [3, 4, 3]
    assert bands["low"]["collection_success_rate"] == pytest.approx(1.0)
    assert bands["medium"]["collection_success_rate"] == pytest.approx(0.75)
    assert bands["high"]["collection_success_rate"] == pytest.approx(0.0)
    assert bands["medium"]["amount_paying_share"] == pytest.approx(0.75)


def test_calibration_curve_and_oracle_ratio() -> None:
    oracle = np.where(np.arange(10) < 8, Y * 0.9 + 0.05, np.nan)
    result = evaluate(Y, P, 0.55, (0.35, 0.75), oracle=oracle)
    assert sum(row["count"] for row in result["calibration_curve"]) == 10
    assert result["oracle_rows"] == 8
    # The oracle separates perfectly; the model's AUC on those 8 rows is 15 / 16.
    assert result["oracle_auc"] == pytest.approx(1.0)
    assert result["auc_ratio_to_oracle"] == pytest.approx(15 / 16)
    json.dumps(result, allow_nan=False)


def test_shuffled_labels_give_chance_auc() -> None:
    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.normal(size=(2000, 4)), columns=list("abcd"))
    y = (x["a"] + rng.normal(size=2000) > 0.8).astype(int).to_numpy()
    shuffled = rng.permutation(y)
    model = build_estimator("xgboost", {"n_estimators": 30}, "none").fit(x[:1400], shuffled[:1400])
    auc = evaluate(shuffled[1400:], model.predict_proba(x[1400:])[:, 1], 0.5, (0.3, 0.6))
    assert abs(auc["roc_auc"] - 0.5) < 0.06


def _miscalibrated() -> tuple[Any, pd.DataFrame, np.ndarray]:
    """A class-weighted model: it ranks well but its scores are far too high."""
    rng = np.random.default_rng(5)
    x = pd.DataFrame(rng.normal(size=(3000, 3)), columns=list("abc"))
    y = (x["a"] - 0.5 * x["b"] + rng.normal(size=3000) > 1.5).astype(int).to_numpy()
    model = build_estimator("lightgbm", {"n_estimators": 40}, "class_weight").fit(
        x[:1500], y[:1500]
    )
    return model, x, y


def test_calibration_improves_brier_on_held_out_rows() -> None:
    model, x, y = _miscalibrated()
    valid, test = slice(1500, 2250), slice(2250, 3000)
    result = calibrate(model, x[valid], y[valid])
    assert result.method in ("isotonic", "sigmoid")
    assert result.brier[result.method] < result.brier["none"]
    raw = brier_score_loss(y[test], model.predict_proba(x[test])[:, 1])
    calibrated = brier_score_loss(y[test], result.model.predict_proba(x[test])[:, 1])
    assert calibrated < raw - 0.01


def test_explanations_of_a_calibrated_tree_model() -> None:
    model, x, y = _miscalibrated()
    calibrated = calibrate(model, x[1500:2250], y[1500:2250]).model
    assert method_for(calibrated) == "tree_shap"
    importance = global_importance(calibrated, x, max_rows=300)
    assert next(iter(importance)) == "a" and list(importance)[-1] == "c"
    rows = explain_rows(calibrated, x.iloc[:3])
    assert list(rows.columns) == ["a", "b", "c"] and list(rows.index) == [0, 1, 2]
    # Contributions add up to the booster's log-odds (TreeSHAP is exact).
    raw = model.predict_proba(x.iloc[:3])[:, 1]
    log_odds = rows.sum(axis=1) + rows.attrs["base_value"]
    assert np.allclose(1 / (1 + np.exp(-log_odds)), raw, atol=1e-6)


@pytest.mark.parametrize(
    ("kind", "select_k"), [("lightgbm", None), ("xgboost", None), ("xgboost", 2)]
)
def test_the_row_explainer_calls_the_booster_natively_and_matches_shap(kind, select_k) -> None:
    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.normal(size=(800, 3)), columns=list("abc"))
    x.loc[::9, "b"] = np.nan
    y = (x["a"] - 0.5 * x["b"].fillna(0) + rng.normal(size=800) > 0).astype(int).to_numpy()
    model = build_estimator(kind, {"n_estimators": 30}, "class_weight", select_k=select_k)
    model.fit(x, y)
    explainer = TreeRowExplainer(model)
    assert explainer._native is not None  # the probe rows agreed with shap
    rows = x.iloc[:50]
    native, base = explainer.contributions(rows)
    seen = rows if select_k is None else model[:-1].transform(rows)
    expected = explainer._shap_values(seen)
    assert list(native.columns) == list(seen.columns) and list(native.index) == list(rows.index)
    assert np.allclose(native.to_numpy(), expected, rtol=1e-6, atol=1e-9)
    raw = model.predict_proba(rows)[:, 1]
    assert np.allclose(1 / (1 + np.exp(-(native.sum(axis=1) + base))), raw, atol=1e-6)


def test_fallback_explanation_for_the_scorecard() -> None:
    rng = np.random.default_rng(2)
    x = pd.DataFrame(rng.normal(size=(400, 3)), columns=list("abc"))
    y = (2 * x["a"] + rng.normal(size=400) > 1).astype(int).to_numpy()
    model = build_estimator("logistic", {"encoding": "scale"}, "none").fit(x, y)
    assert method_for(model) == "permutation_shap"
    importance = global_importance(model, x, max_rows=30)
    assert next(iter(importance)) == "a"
    rows = explain_rows(model, x.iloc[:4], background=x)
    # Contributions add up to the row's log-odds (base = mean log-odds of the background).
    p = model.predict_proba(x.iloc[:4])[:, 1]
    assert np.allclose(rows.sum(axis=1) + rows.attrs["base_value"], np.log(p / (1 - p)))


def test_comparison_and_report(tmp_path: Path) -> None:
    model, x, y = _miscalibrated()
    p = model.predict_proba(x[1500:])[:, 1]
    rows = compare_candidates(
        [Candidate("logistic", "none"), Candidate("xgboost", "class_weight", 2)],
        x[:1500], y[:1500], x[1500:], y[1500:],
    )  # fmt: skip
    assert [r["kind"] for r in rows] == ["logistic", "xgboost"]
    assert all(0.5 < r["roc_auc"] <= 1 and r["fit_seconds"] >= 0 for r in rows)
    report = build_report(
        run={"name": "unit", "kind": "lightgbm"},
        metrics={"test": evaluate(y[1500:], p, 0.5, risk_bands(p))},
        importance={"a": 0.5, "b": 0.2, "c": 0.0},
        fairness={},
        comparison=rows,
        calibration={"method": "isotonic", "brier": {"none": 0.2, "isotonic": 0.1}},
    )
    json_path, html_path = write_report(report, tmp_path)
    assert json.loads(json_path.read_text())["run"]["name"] == "unit"
    html = html_path.read_text()
    assert html.count("data:image/png;base64,") == 6
    assert "Model comparison" in html and "xgboost" in html
    assert "<script" not in render_html({**report, "run": {"name": "<script>"}})
