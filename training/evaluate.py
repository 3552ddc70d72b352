"""Calibration, decision threshold, risk bands and the evaluation metrics of a run.

Everything that is chosen (calibration method, threshold, band cutoffs) is chosen on
validation data and only then applied to test data, so test figures stay honest.

The cost matrix prices the four outcomes of flagging an account as a likely defaulter
(positive class = default_30d). Units are arbitrary (e.g. "one collector call"); only the
ratios matter for the threshold. Defaults: missing a defaulter (fn) costs 5, working an
account (tp or fp) costs 1, leaving a payer alone (tn) costs nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from training.estimators import Monotone, build_estimator

log = logging.getLogger(__name__)

DEFAULT_COSTS: Mapping[str, float] = MappingProxyType({"fn": 5.0, "fp": 1.0, "tp": 1.0, "tn": 0.0})
CALIBRATION_METHODS = ("isotonic", "sigmoid")
BAND_NAMES = ("low", "medium", "high")
CURVE_POINTS = 200


# --- costs and thresholds -------------------------------------------------------------


def _costs(costs: Mapping[str, float] | None) -> dict[str, float]:
    merged = {**DEFAULT_COSTS, **(costs or {})}
    return {key: float(merged[key]) for key in ("fn", "fp", "tp", "tn")}


def expected_cost(
    y: Any,
    flagged: Any,
    costs: Mapping[str, float] | None = None,
    amounts: Any = None,
) -> float:
    """Mean cost per account of the decisions `flagged` (weighted by `amounts` if given)."""
    c = _costs(costs)
    y_arr = np.asarray(y).astype(bool)
    f_arr = np.asarray(flagged).astype(bool)
    cell = np.select(
        [y_arr & f_arr, ~y_arr & f_arr, y_arr & ~f_arr], [c["tp"], c["fp"], c["fn"]], c["tn"]
    )
    weights = np.ones(len(y_arr)) if amounts is None else np.asarray(amounts, dtype=float)
    return float(np.sum(cell * weights) / max(np.sum(weights), 1e-12))


def cost_curve(
    y: Any, p: Any, costs: Mapping[str, float] | None = None, amounts: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds, mean cost) for flagging p >= threshold, one point per distinct score.

    The last point flags nobody (a cut just above the top score). O(n log n): accounts are
    flagged in order of falling score and the four cells are running sums.
    """
    c = _costs(costs)
    y_arr = np.asarray(y).astype(float)
    p_arr = np.asarray(p, dtype=float)
    w = np.ones(len(y_arr)) if amounts is None else np.asarray(amounts, dtype=float)
    order = np.argsort(-p_arr, kind="stable")
    ys, ps, ws = y_arr[order], p_arr[order], w[order]
    flagged_pos = np.cumsum(ws * ys)
    flagged_neg = np.cumsum(ws * (1 - ys))
    total_pos, total_neg = flagged_pos[-1], flagged_neg[-1]
    # Only the last account of a run of equal scores is a valid cut.
    last_of_tie = np.r_[ps[1:] != ps[:-1], True]
    tp, fp = flagged_pos[last_of_tie], flagged_neg[last_of_tie]
    cost = c["tp"] * tp + c["fp"] * fp + c["fn"] * (total_pos - tp) + c["tn"] * (total_neg - fp)
    nobody = c["fn"] * total_pos + c["tn"] * total_neg
    # A finite cut just above the top score keeps the threshold JSON-safe.
    thresholds = np.r_[ps[last_of_tie], np.nextafter(ps[0], np.inf)]
    return thresholds, np.r_[cost, nobody] / max(float(ws.sum()), 1e-12)


def min_cost_threshold(
    y: Any, p: Any, costs: Mapping[str, float] | None = None, amounts: Any = None
) -> tuple[float, float]:
    """(threshold, mean cost) of the cheapest cut on these scores."""
    thresholds, cost = cost_curve(y, p, costs, amounts)
    best = int(np.argmin(cost))
    return float(thresholds[best]), float(cost[best])


def best_f1_threshold(y: Any, p: Any) -> float:
    """The score cut (flag p >= cut) with the highest F1 on the default class."""
    precision, recall, thresholds = precision_recall_curve(np.asarray(y), np.asarray(p))
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    # The last precision/recall pair has no threshold (it is the "flag nobody" end).
    return float(thresholds[int(np.argmax(f1[:-1]))])


def choose_threshold(
    y: Any,
    p: Any,
    objective: str = "f1",
    costs: Mapping[str, float] | None = None,
    amounts: Any = None,
) -> float:
    """Decision threshold on validation scores: maximise F1 or minimise expected cost."""
    if objective == "f1":
        return best_f1_threshold(y, p)
    if objective == "cost":
        return min_cost_threshold(y, p, costs, amounts)[0]
    raise ValueError(f"unknown threshold objective {objective!r}; expected 'f1' or 'cost'")


# --- risk bands -----------------------------------------------------------------------


def risk_bands(p_valid: Any, quantiles: tuple[float, float] = (0.5, 0.8)) -> tuple[float, float]:
    """Two cutoffs: below the first is low risk, at or above the second is high risk.

    Cut at validation quantiles of the score, so by default about half the book is low,
    30% medium and 20% high; the operations team sizes its queues by these shares.
    """
    lower, upper = sorted(quantiles)
    low_cut, high_cut = np.quantile(np.asarray(p_valid, dtype=float), [lower, upper])
    return float(low_cut), float(max(high_cut, low_cut))


def assign_bands(p: Any, bands: Sequence[float]) -> np.ndarray:
    """'low' / 'medium' / 'high' per score for cutoffs (low_cut, high_cut)."""
    p_arr = np.asarray(p, dtype=float)
    index = (p_arr >= bands[0]).astype(int) + (p_arr >= bands[1]).astype(int)
    return np.asarray(BAND_NAMES, dtype=object)[index]


# --- calibration ----------------------------------------------------------------------


@dataclass
class Calibration:
    """A calibrated model (predict_proba) and why its method was chosen."""

    model: Any
    method: str
    brier: dict[str, float] = field(default_factory=dict)


def calibrate(
    model: Any,
    x_valid: pd.DataFrame,
    y_valid: Any,
    methods: Sequence[str] = CALIBRATION_METHODS,
    folds: int = 5,
    seed: int = 0,
) -> Calibration:
    """Calibrate a fitted model on validation rows with the method of lowest Brier score.

    Each method is scored by cross-validation within the validation rows (the calibrator
    is fitted on 4/5, scored on 1/5), so isotonic's flexibility is not rewarded for
    memorising; the uncalibrated model ("none") competes too. The winner is refitted on
    all validation rows.
    """
    y_arr = np.asarray(y_valid)
    brier = {"none": float(brier_score_loss(y_arr, model.predict_proba(x_valid)[:, 1]))}
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    frozen = FrozenEstimator(model)
    for method in methods:
        calibrator = CalibratedClassifierCV(frozen, method=method)
        oof = cross_val_predict(calibrator, x_valid, y_arr, cv=cv, method="predict_proba")
        brier[method] = float(brier_score_loss(y_arr, oof[:, 1]))
    best = min(brier, key=lambda name: brier[name])
    log.info("calibration Brier by method %s -> %s", _rounded(brier), best)
    if best == "none":
        return Calibration(model=model, method="none", brier=brier)
    fitted = CalibratedClassifierCV(frozen, method=best).fit(x_valid, y_arr)
    return Calibration(model=fitted, method=best, brier=brier)


class SigmoidCalibrator:
    """Platt scaling of a score: a logistic regression on its log-odds.

    On the log-odds (not the probability, as sklearn's internal sigmoid does) so scores
    near 0 or 1 keep their spread; a 1-D map with two parameters cannot memorise.
    """

    def fit(self, p: Any, y: Any) -> SigmoidCalibrator:
        self.model_ = LogisticRegression(C=1e6).fit(_log_odds(p), np.asarray(y).astype(int))
        return self

    def predict(self, p: Any) -> np.ndarray:
        return np.asarray(self.model_.predict_proba(_log_odds(p))[:, 1], dtype=np.float64)


def _log_odds(p: Any) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q)).reshape(-1, 1)


def make_calibrator(method: str) -> Any:
    """An unfitted score calibrator: fit(p, y), predict(p)."""
    if method == "isotonic":
        return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    if method == "sigmoid":
        return SigmoidCalibrator()
    raise ValueError(f"unknown calibration {method!r}; expected one of {CALIBRATION_METHODS}")


@dataclass
class CrossFitted:
    """A model refitted on all rows, its calibrator learnt from out-of-fold scores, and
    those scores: `oof_raw` from fold models that never saw the row, `oof` after the
    final calibrator (a monotone map, so it ranks the rows as `oof_raw` does)."""

    model: Any
    calibrator: Any | None
    method: str
    brier: dict[str, float]
    oof_raw: np.ndarray
    oof: np.ndarray


def out_of_fold_scores(
    estimator: Any, x: pd.DataFrame, y: Any, folds: Sequence[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Each row's score from a clone of `estimator` fitted on the other folds."""
    oof = cross_val_predict(
        clone(estimator), x, np.asarray(y), cv=list(folds), method="predict_proba"
    )
    return np.asarray(oof[:, 1], dtype=np.float64)


def choose_calibration(
    p: Any, y: Any, methods: Sequence[str] = CALIBRATION_METHODS, folds: int = 5, seed: int = 0
) -> tuple[str, dict[str, float]]:
    """The method of lowest Brier score on out-of-fold scores `p`, each calibrator itself
    scored on rows it was not fitted on (so isotonic's flexibility earns nothing); "none"
    competes too."""
    p_arr, y_arr = np.asarray(p, dtype=float), np.asarray(y).astype(int)
    brier = {"none": float(brier_score_loss(y_arr, p_arr))}
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for method in methods:
        calibrated = np.empty_like(p_arr)
        for fit_rows, score_rows in cv.split(p_arr.reshape(-1, 1), y_arr):
            calibrator = make_calibrator(method).fit(p_arr[fit_rows], y_arr[fit_rows])
            calibrated[score_rows] = calibrator.predict(p_arr[score_rows])
        brier[method] = float(brier_score_loss(y_arr, calibrated))
    best = min(brier, key=lambda name: brier[name])
    log.info("cross-fitted calibration Brier by method %s -> %s", _rounded(brier), best)
    return best, brier


def cross_fit(
    estimator: Any,
    x: pd.DataFrame,
    y: Any,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    methods: Sequence[str] = CALIBRATION_METHODS,
    seed: int = 0,
) -> CrossFitted:
    """Refit `estimator` on all rows with cross-fitted calibration: out-of-fold scores from
    the folds' models train the calibrator, which then maps the all-rows model's scores.

    Unlike calibrating on a held-out slice, every row serves both the model and the
    calibrator; unlike sklearn's ensemble=True, one model serves (exact tree SHAP reasons,
    the fast scoring path). len(folds) + 1 fits.
    """
    y_arr = np.asarray(y).astype(int)
    oof_raw = out_of_fold_scores(estimator, x, y_arr, folds)
    method, brier = choose_calibration(oof_raw, y_arr, methods, seed=seed)
    model = clone(estimator).fit(x, y_arr)
    if method == "none":
        return CrossFitted(model, None, method, brier, oof_raw, oof_raw)
    calibrator = make_calibrator(method).fit(oof_raw, y_arr)
    return CrossFitted(model, calibrator, method, brier, oof_raw, calibrator.predict(oof_raw))


def _rounded(values: Mapping[str, float]) -> dict[str, float]:
    return {key: round(value, 5) for key, value in values.items()}


# --- metrics --------------------------------------------------------------------------


def safe_auc(y: Any, p: Any) -> float | None:
    """ROC AUC, or None when only one class is present (AUC is undefined there)."""
    y_arr = np.asarray(y)
    if len(np.unique(y_arr)) < 2:
        return None
    return float(roc_auc_score(y_arr, np.asarray(p, dtype=float)))


def evaluate(
    y: Any,
    p: Any,
    threshold: float,
    bands: Sequence[float],
    amounts: Any = None,
    oracle: Any = None,
    costs: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """All figures of the evaluation report for scores `p` against outcomes `y`.

    `amounts` (debt per account) adds amount figures per band and amount-weighted cost;
    `oracle` (the generator's true probabilities, NaN where unknown) adds the oracle AUC
    and model AUC / oracle AUC on the rows where the oracle is known.
    """
    y_arr = np.asarray(y).astype(int)
    p_arr = np.asarray(p, dtype=float)
    flagged = p_arr >= threshold
    if amounts is not None:
        # An unknown debt amount weighs nothing rather than turning every sum into NaN.
        amounts = np.nan_to_num(np.asarray(amounts, dtype=float), nan=0.0)
    result: dict[str, Any] = {
        "n": len(y_arr),
        "positives": int(y_arr.sum()),
        "default_rate": float(y_arr.mean()) if len(y_arr) else None,
        "roc_auc": safe_auc(y_arr, p_arr),
        "pr_auc": float(average_precision_score(y_arr, p_arr)) if y_arr.any() else None,
        "brier": float(brier_score_loss(y_arr, p_arr)),
        "threshold": float(threshold),
        **threshold_metrics(y_arr, flagged),
        "expected_cost": expected_cost(y_arr, flagged, costs),
        "costs": _costs(costs),
        "calibration_curve": calibration_table(y_arr, p_arr),
        "deciles": lift_table(y_arr, p_arr),
        "bands": band_table(y_arr, p_arr, bands, amounts),
        "curves": curves(y_arr, p_arr),
    }
    if amounts is not None:
        result["expected_cost_by_amount"] = expected_cost(y_arr, flagged, costs, amounts)
    if oracle is not None:
        result.update(oracle_metrics(y_arr, p_arr, oracle))
    return result


def threshold_metrics(y: np.ndarray, flagged: np.ndarray) -> dict[str, Any]:
    """Precision, recall, F1 (default class) and the confusion matrix of the decisions."""
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, flagged, labels=[0, 1]).ravel())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "flagged_share": float(np.mean(flagged)) if len(flagged) else 0.0,
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }


def calibration_table(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> list[dict[str, Any]]:
    """Reliability diagram on 10 equal-width probability bins (empty bins omitted)."""
    index = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = index == b
        if mask.any():
            rows.append(
                {
                    "bin": b,
                    "lower": b / n_bins,
                    "upper": (b + 1) / n_bins,
                    "count": int(mask.sum()),
                    "mean_predicted": float(p[mask].mean()),
                    "observed_rate": float(y[mask].mean()),
                }
            )
    return rows


def lift_table(y: np.ndarray, p: np.ndarray, groups: int = 10) -> list[dict[str, Any]]:
    """Lift and cumulative gains by decile of score, decile 1 holding the highest scores."""
    order = np.argsort(-p, kind="stable")
    total = max(int(y.sum()), 1)
    base_rate = y.mean() if len(y) else 0.0
    rows, seen, captured = [], 0, 0
    for decile, idx in enumerate(np.array_split(order, groups), start=1):
        if len(idx) == 0:
            continue
        defaults = int(y[idx].sum())
        seen, captured = seen + len(idx), captured + defaults
        rate = defaults / len(idx)
        rows.append(
            {
                "decile": decile,
                "count": len(idx),
                "defaults": defaults,
                "default_rate": rate,
                "lift": rate / base_rate if base_rate else None,
                "cumulative_gain": captured / total,
                "cumulative_lift": (captured / seen) / base_rate if base_rate else None,
                "min_score": float(p[idx].min()),
                "max_score": float(p[idx].max()),
            }
        )
    return rows


def band_table(
    y: np.ndarray, p: np.ndarray, bands: Sequence[float], amounts: Any = None
) -> dict[str, Any]:
    """Per band: size, default rate and collection success rate (share that paid)."""
    names = assign_bands(p, bands)
    amt = None if amounts is None else np.asarray(amounts, dtype=float)
    table: dict[str, Any] = {"cutoffs": [float(bands[0]), float(bands[1])]}
    for name in BAND_NAMES:
        mask = names == name
        count = int(mask.sum())
        row: dict[str, Any] = {
            "count": count,
            "share": count / len(y) if len(y) else 0.0,
            "default_rate": float(y[mask].mean()) if count else None,
            "collection_success_rate": float(1 - y[mask].mean()) if count else None,
            "mean_score": float(p[mask].mean()) if count else None,
        }
        if amt is not None:
            total = float(amt[mask].sum())
            row["amount"] = total
            paid = float(amt[mask & (y == 0)].sum())
            row["amount_paying_share"] = paid / total if total else None
        table[name] = row
    return table


def curves(y: np.ndarray, p: np.ndarray, points: int = CURVE_POINTS) -> dict[str, Any]:
    """ROC and precision-recall curves, thinned to at most `points` points each for the report."""
    if len(np.unique(y)) < 2:
        return {}
    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    return {
        "roc": {"fpr": _thin(fpr, points), "tpr": _thin(tpr, points)},
        "pr": {"recall": _thin(recall, points), "precision": _thin(precision, points)},
    }


def _thin(values: np.ndarray, points: int) -> list[float]:
    if len(values) > points:
        values = values[np.unique(np.linspace(0, len(values) - 1, points).round().astype(int))]
    return [round(float(v), 5) for v in values]


def oracle_metrics(y: np.ndarray, p: np.ndarray, oracle: Any) -> dict[str, Any]:
    """Oracle AUC and the model's share of it, both on the rows where the oracle is known."""
    o = np.asarray(oracle, dtype=float)
    known = ~np.isnan(o)
    oracle_auc = safe_auc(y[known], o[known])
    model_auc = safe_auc(y[known], p[known])
    ratio = model_auc / oracle_auc if oracle_auc and model_auc is not None else None
    return {
        "oracle_rows": int(known.sum()),
        "oracle_auc": oracle_auc,
        "model_auc_on_oracle_rows": model_auc,
        "auc_ratio_to_oracle": ratio,
    }


# --- model comparison -----------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One row of the comparison: a model kind with its imbalance strategy and options."""

    kind: str
    imbalance: str = "class_weight"
    select_k: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    # How the comparison names the row (default: the kind), e.g. "tuned" or "stack of top 3".
    name: str | None = None

    def spec(self) -> dict[str, Any]:
        """What build_estimator (or a stack member) needs to rebuild the model."""
        return {
            "kind": self.kind,
            "imbalance": self.imbalance,
            "select_k": self.select_k,
            "params": dict(self.params),
        }


def compare_candidates(
    candidates: Sequence[Candidate],
    x_train: pd.DataFrame,
    y_train: Any,
    x_valid: pd.DataFrame,
    y_valid: Any,
    monotone: Monotone | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Fit each candidate on train and score it on validation: one comparison row each.

    F1 is at the candidate's own best-F1 threshold on validation; Brier is of the raw
    (uncalibrated) scores, so it shows how far class weights or resampling skew them.
    """
    rows = []
    for candidate in candidates:
        started = time.perf_counter()
        model = build_estimator(
            candidate.kind,
            candidate.params,
            candidate.imbalance,
            monotone,
            candidate.select_k,
            seed,
        ).fit(x_train, y_train)
        fit_seconds = time.perf_counter() - started
        p = model.predict_proba(x_valid)[:, 1]
        rows.append(_comparison_row(candidate, np.asarray(y_valid), p, fit_seconds))
        log.info("candidate %s", rows[-1])
    return rows


def stack_of_best(
    candidates: Sequence[Candidate], rows: Sequence[Mapping[str, Any]], size: int, cv: int = 5
) -> Candidate | None:
    """A stacking candidate over the `size` comparison rows of highest validation AUC
    (stacks and duplicates left out); None when fewer than two models qualify."""
    ranked = sorted(
        zip(candidates, rows, strict=True), key=lambda pair: -(pair[1]["roc_auc"] or 0.0)
    )
    members: list[dict[str, Any]] = []
    names: list[str] = []
    for candidate, _ in ranked:
        spec = candidate.spec()
        if candidate.kind == "stacking" or spec in members or len(members) == size:
            continue
        members.append(spec)
        names.append(candidate.name or candidate.kind)
    if len(members) < 2:
        return None
    return Candidate(
        kind="stacking",
        imbalance="none",
        params={"members": members, "cv": cv},
        name=f"stack of {' + '.join(names)}",
    )


def _comparison_row(
    candidate: Candidate, y: np.ndarray, p: np.ndarray, fit_seconds: float
) -> dict[str, Any]:
    flagged = p >= best_f1_threshold(y, p)
    return {
        "name": candidate.name or candidate.kind,
        "kind": candidate.kind,
        "imbalance": candidate.imbalance,
        "select_k": candidate.select_k,
        "roc_auc": safe_auc(y, p),
        "pr_auc": float(average_precision_score(y, p)),
        "f1": threshold_metrics(y, flagged)["f1"],
        "brier": float(brier_score_loss(y, p)),
        "fit_seconds": round(fit_seconds, 2),
    }
