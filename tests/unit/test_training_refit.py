"""Refit on train + validation with cross-fitted calibration, the stack of the comparison's
best models, the tuner's convergence stop, and the intervals of the baseline comparison."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from training.baseline import (
    BASELINE,
    CHAMPION,
    bootstrap,
    corrected_interval,
    summarise_folds,
)
from training.estimators import build_estimator
from training.evaluate import Candidate, choose_calibration, cross_fit, stack_of_best
from training.train import TrainParams, final_fit_rows
from training.tuning import Converged

pytestmark = pytest.mark.unit


def _data(n: int = 1200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "noise"])
    logit = 1.2 * x["a"] - 0.8 * x["b"] - 1.0
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)


def _folds(y: np.ndarray, k: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(StratifiedKFold(k, shuffle=True, random_state=0).split(np.zeros(len(y)), y))


def test_cross_fitted_scores_come_from_models_that_never_saw_the_row() -> None:
    x, y = _data()
    # Balanced class weights push raw scores far above the 24% default rate: calibration
    # must pull them back.
    estimator = build_estimator("logistic", {"encoding": "scale"}, "class_weight", seed=0)
    fitted = cross_fit(estimator, x, y, _folds(y))
    first_train, first_held = _folds(y)[0]
    alone = build_estimator("logistic", {"encoding": "scale"}, "class_weight", seed=0)
    alone.fit(x.iloc[first_train], y[first_train])
    held_scores = alone.predict_proba(x.iloc[first_held])[:, 1]
    np.testing.assert_allclose(fitted.oof_raw[first_held], held_scores)
    assert fitted.method in ("isotonic", "sigmoid")
    assert fitted.brier[fitted.method] < fitted.brier["none"]
    # The shipped model is refitted on every row; the calibrator is monotone.
    full = fitted.model.predict_proba(x)[:, 1]
    assert not np.allclose(full, fitted.oof_raw)
    order = np.argsort(fitted.oof_raw)
    assert np.all(np.diff(fitted.oof[order]) >= -1e-12)
    assert abs(fitted.oof.mean() - y.mean()) < 0.02 < abs(fitted.oof_raw.mean() - y.mean())


def test_calibration_is_left_out_when_it_does_not_help() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.95, 4000)
    y = (rng.random(4000) < p).astype(int)  # already calibrated scores
    method, brier = choose_calibration(p, y)
    assert brier["none"] <= min(brier["isotonic"], brier["sigmoid"]) + 1e-3
    assert method in ("none", "sigmoid")


def test_the_stack_takes_the_best_distinct_rows_of_the_comparison() -> None:
    candidates = [
        Candidate("logistic", name="scorecard"),
        Candidate("xgboost"),
        Candidate("lightgbm"),
        Candidate("xgboost", params={"max_depth": 3}, name="tuned"),
        Candidate("stacking"),
        Candidate("xgboost"),  # a duplicate of the second
    ]
    aucs = [0.70, 0.77, 0.74, 0.78, 0.80, 0.77]
    rows = [{"roc_auc": a} for a in aucs]
    stack = stack_of_best(candidates, rows, size=3, cv=3)
    assert (
        stack is not None
        and stack.kind == "stacking"
        and stack.name == ("stack of tuned + xgboost + lightgbm")
    )
    members = stack.params["members"]
    assert [m["kind"] for m in members] == ["xgboost", "xgboost", "lightgbm"]
    assert members[0]["params"] == {"max_depth": 3} and stack.params["cv"] == 3
    assert stack_of_best(candidates[:1], rows[:1], size=3) is None


def test_a_stack_of_named_members_fits_and_scores() -> None:
    x, y = _data(600)
    members = [
        {"kind": "logistic", "imbalance": "class_weight", "params": {"encoding": "scale"}},
        {"kind": "lightgbm", "imbalance": "none", "params": {"n_estimators": 20}},
    ]
    stack = build_estimator("stacking", {"members": members, "cv": 2}, "none", {"a": 1}, seed=0)
    p = stack.fit(x, y).predict_proba(x)[:, 1]
    names = [name for name, _ in stack.steps[-1][1].estimators]
    assert names == ["0_logistic", "1_lightgbm"] and ((p >= 0) & (p <= 1)).all()


def _study(aucs: list[float | None]) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for auc in aucs:
        if auc is None:
            trial = optuna.trial.create_trial(
                params={"x": 0.5}, distributions=dist, state=optuna.trial.TrialState.PRUNED
            )
        else:
            trial = optuna.trial.create_trial(
                params={"x": 0.5}, distributions=dist, values=[auc, 1.0]
            )
        study.add_trial(trial)
    return study


def test_tuning_stops_once_the_best_auc_stops_moving() -> None:
    rule = Converged(patience=3, min_improvement=0.001)
    # After 0.75: a gain below 0.001 and a pruned trial are two trials without progress...
    assert not rule.reached(_study([0.70, 0.75, 0.7505, None]))
    # ...and a third one ends the search.
    assert rule.reached(_study([0.70, 0.75, 0.7505, None, 0.7509]))
    assert not rule.reached(_study([0.70, 0.75, 0.7505, None, 0.752]))  # a real gain resets
    assert not Converged(patience=0).reached(_study([0.7] * 50))  # 0: never converges
    assert not rule.reached(_study([None, None, None, None]))  # nothing completed yet


def test_optimize_stops_early_and_a_converged_study_runs_no_more_trials(tmp_path) -> None:
    from training.tuning import (
        SearchSpace,
        tune,
    )

    x, y = _data(300)
    space = SearchSpace(kinds=("logistic",), imbalances=("class_weight",))
    # min_improvement 1.0: no trial can improve on the first, so two more trials end it.
    rule = Converged(patience=2, min_improvement=1.0)
    kwargs = {"space": space, "n_trials": 40, "storage_path": tmp_path / "s.db", "seed": 0}
    result = tune(x, y, _folds(y, 2), convergence=rule, **kwargs)  # type: ignore[arg-type]
    assert result.converged and sum(result.counts.values()) == 3
    resumed = tune(x, y, _folds(y, 2), convergence=rule, **kwargs)  # type: ignore[arg-type]
    assert resumed.converged and resumed.counts == result.counts


def test_refit_rows_keep_out_of_time_data_point_in_time() -> None:
    assert final_fit_rows(TrainParams(), "stratified") == "train_valid"
    assert final_fit_rows(TrainParams(), "out_of_time") == "train"
    with pytest.raises(ValueError, match="validation labels mature after the test snapshot"):
        final_fit_rows(TrainParams(final_fit="train_valid"), "out_of_time")
    with pytest.raises(ValueError, match="expected auto, train or train_valid"):
        final_fit_rows(TrainParams(final_fit="all"), "stratified")


def test_corrected_interval_is_wider_than_the_naive_one() -> None:
    values = [0.76, 0.77, 0.78, 0.77, 0.775, 0.765, 0.772, 0.768, 0.779, 0.771]
    corrected = corrected_interval(values, 0.25)
    naive_half = 2.262 * np.std(values, ddof=1) / np.sqrt(len(values))
    assert corrected["value"] == pytest.approx(np.mean(values))
    assert corrected["high"] - corrected["value"] > 1.5 * naive_half
    assert corrected_interval([0.7], 0.25) == {"value": 0.7, "low": 0.7, "high": 0.7}


def test_bootstrap_pairs_the_models_on_the_same_resamples() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random(800) < 0.25).astype(int)
    good = np.clip(0.25 + 0.4 * (y - 0.25) + rng.normal(0, 0.15, 800), 0, 1)
    scores = {CHAMPION: (good, 0.35), BASELINE: (good, 0.35)}
    same = bootstrap(y, scores, resamples=100, seed=0)
    for metric in ("roc_auc", "pr_auc", "f1"):
        assert same["difference"][metric] == {"value": 0.0, "low": 0.0, "high": 0.0}
        row = same["models"][CHAMPION][metric]
        assert row["low"] < row["value"] < row["high"]
    noisy = np.clip(good + rng.normal(0, 0.3, 800), 0, 1)
    worse = bootstrap(y, {CHAMPION: (good, 0.35), BASELINE: (noisy, 0.35)}, 100, 0)
    assert worse["difference"]["roc_auc"]["low"] > 0


def test_fold_summary_differences_are_paired() -> None:
    folds = [
        {"train": 80, "test": 20, CHAMPION: {"roc_auc": a, "pr_auc": a, "f1": a},
         BASELINE: {"roc_auc": a - 0.01, "pr_auc": a - 0.01, "f1": a - 0.01}}
        for a in (0.70, 0.80, 0.75, 0.72)
    ]  # fmt: skip
    summary = summarise_folds(folds, [CHAMPION, BASELINE])
    assert summary["difference"]["roc_auc"]["value"] == pytest.approx(0.01)
    assert summary["difference"]["f1"]["high"] - summary["difference"]["f1"]["low"] < 1e-9
    assert summary["models"][CHAMPION]["f1"]["high"] > summary["models"][CHAMPION]["f1"]["low"]


def test_sigmoid_calibrator_round_trips() -> None:
    # Guards the pickled bundle: the calibrator is a plain object with fit / predict.
    import pickle

    from training.evaluate import make_calibrator

    p = np.linspace(0.01, 0.99, 200)
    y = (p > 0.5).astype(int)
    calibrator = pickle.loads(pickle.dumps(make_calibrator("sigmoid").fit(p, y)))
    assert isinstance(calibrator.model_, LogisticRegression)
    assert calibrator.predict([0.9])[0] > 0.5 > calibrator.predict([0.1])[0]
