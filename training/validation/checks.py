"""The validation report's challenge sections: benchmarks, stability (PSI), sensitivity to
small input changes and fairness. Each takes the gathered ValidationInputs."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import equalized_odds_difference
from sklearn.ensemble import HistGradientBoostingClassifier

from training.dataset import LABEL_COL, PROTECTED_PREFIX
from training.estimators import build_estimator
from training.evaluate import best_f1_threshold, curves
from training.fairness import MISSING_GROUP, fairness_table
from training.model_matrix import MONOTONE_DECREASING, MONOTONE_INCREASING, column_sources
from training.validation.inputs import Incumbent, ValidationInputs
from training.validation.stats import group_figures, psi, psi_label

log = logging.getLogger(__name__)

# Sensitivity step: a tenth of a column's standard deviation, up and down.
STEP_STD = 0.1
SENSITIVITY_ROWS = 2000
# A month with fewer rows gets no PSI: a handful of accounts fills ten bins by chance.
MIN_PSI_ROWS = 50
_NOT_INPUTS = (PROTECTED_PREFIX, "oracle__", "segment__")


# --- benchmarks -----------------------------------------------------------------------


def benchmarks(inp: ValidationInputs) -> dict[str, Any]:
    """Test figures of the model beside simpler or incumbent models on the same rows; each
    benchmark's threshold is its own best-F1 cut on validation, as the model's was chosen."""
    test = inp.split.test
    rows = [_row(inp.model_label, "this version", inp.y[test], inp.p[test], inp.bundle.threshold)]
    rows.append(
        _fitted_row(inp, "logistic scorecard", "class-weighted logistic regression", _logistic)
    )
    rows.append(
        _fitted_row(
            inp,
            "untuned raw-input GBM",
            "HistGradientBoosting, defaults, raw numeric columns",
            _raw_gbm,
        )
    )
    if inp.incumbent is not None:
        rows.append(_incumbent_row(inp, inp.incumbent))
    return {
        "rows": [{k: v for k, v in r.items() if k != "roc"} for r in rows],
        "roc": {r["model"]: r["roc"] for r in rows if r.get("roc")},
        "candidates_on_validation": inp.fitted.get("comparison", []),
    }


def _row(model: str, what: str, y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    figures = group_figures(y, p, threshold)
    return {
        "model": model,
        "what": what,
        "threshold": threshold,
        **figures,
        "roc": curves(y, p, 60)["roc"],
    }


def _fitted_row(inp: ValidationInputs, name: str, what: str, fit: Any) -> dict[str, Any]:
    train, valid, test = inp.split.train, inp.split.valid, inp.split.test
    predict = fit(inp, train)
    threshold = best_f1_threshold(inp.y[valid], predict(valid))
    return _row(name, what, inp.y[test], predict(test), threshold)


def _logistic(inp: ValidationInputs, train: np.ndarray) -> Any:
    model = build_estimator("logistic", None, "class_weight", None, None, inp.params.seed)
    model.fit(inp.x.iloc[train], inp.y[train])
    return lambda rows: model.predict_proba(inp.x.iloc[rows])[:, 1]


def raw_numeric_inputs(frame: pd.DataFrame) -> pd.DataFrame:
    """The training set's numeric feature columns as Feast returns them, nothing derived,
    without a column that holds no value at all (e.g. contact history on the UCI data): it
    breaks the booster's binning and carries nothing."""
    keep = [
        c
        for c in frame.columns
        if "__" in str(c)
        and not str(c).startswith(_NOT_INPUTS)
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    ]
    return frame[keep].astype("float64").dropna(axis=1, how="all")


def _raw_gbm(inp: ValidationInputs, train: np.ndarray) -> Any:
    raw = raw_numeric_inputs(inp.frame)
    model = HistGradientBoostingClassifier(random_state=inp.params.seed)
    model.fit(raw.iloc[train], inp.y[train])
    return lambda rows: model.predict_proba(raw.iloc[rows])[:, 1]


def _incumbent_row(inp: ValidationInputs, incumbent: Incumbent) -> dict[str, Any]:
    model, test = incumbent.model, inp.split.test
    p = model.predict_proba(inp.x.iloc[test].reindex(columns=model.feature_columns))
    return _row(incumbent.label, "registered incumbent", inp.y[test], p, model.threshold)


# --- stability ------------------------------------------------------------------------


def stability(inp: ValidationInputs) -> dict[str, Any]:
    """PSI of the score and of each input per snapshot month against the training rows."""
    month = inp.month.to_numpy()
    inputs = _psi_inputs(inp)
    by_month = [
        _month_psi(inp, inputs, str(value), np.flatnonzero(month == value))
        for value in sorted(pd.unique(month))
    ]
    largest = {
        name: max((m["features"].get(name, 0.0) for m in by_month), default=0.0)
        for name in inputs.columns
    }
    ranked = sorted(largest.items(), key=lambda kv: -kv[1])
    return {
        "reference": "training rows",
        "months": [{k: v for k, v in m.items() if k != "features"} for m in by_month],
        "features": [{"feature": k, "max_psi": v, "reading": psi_label(v)} for k, v in ranked],
    }


def _month_psi(
    inp: ValidationInputs, inputs: pd.DataFrame, month: str, rows: np.ndarray
) -> dict[str, Any]:
    if len(rows) < MIN_PSI_ROWS:
        return {"month": month, "rows": len(rows), "reading": "too few rows", "features": {}}
    reference = inp.split.train
    score_psi = psi(inp.p[reference], inp.p[rows])
    features = {
        c: psi(inputs[c].to_numpy()[reference], inputs[c].to_numpy()[rows]) or 0.0
        for c in inputs.columns
    }
    worst = max(features, key=lambda c: features[c]) if features else None
    return {
        "month": month,
        "rows": len(rows),
        "score_psi": score_psi,
        "reading": psi_label(score_psi),
        "worst_feature": worst,
        "worst_feature_psi": features[worst] if worst else None,
        "features": features,
    }


def _psi_inputs(inp: ValidationInputs) -> pd.DataFrame:
    # One column per feature: arrays by their newest element, categories by their code.
    sources = column_sources(inp.bundle.feature_service)
    chosen: dict[str, pd.Series] = {}
    for column, source in sources.items():
        if source in chosen or column not in inp.x.columns:
            continue
        if column == source or column.endswith("_0"):
            chosen[source] = inp.x[column]
        else:
            block = inp.x[[c for c, s in sources.items() if s == source]].to_numpy()
            chosen[source] = pd.Series(block.argmax(axis=1).astype(float), index=inp.x.index)
    return pd.DataFrame(chosen)


# --- sensitivity ----------------------------------------------------------------------


def sensitivity(inp: ValidationInputs) -> dict[str, Any]:
    """Mean and largest |score change| when one feature's columns move by STEP_STD standard
    deviations, up and down, on test rows; one-hot categories are left alone."""
    x = inp.x.iloc[inp.split.test]
    if len(x) > SENSITIVITY_ROWS:
        x = x.sample(SENSITIVITY_ROWS, random_state=inp.params.seed)
    base = inp.bundle.predict_proba(x)
    rows = [
        _perturbed(inp, x, base, source, columns)
        for source, columns in _numeric_sources(inp, x).items()
    ]
    rows.sort(key=lambda r: -r["mean_abs_change"])
    return {"step_std": STEP_STD, "rows_scored": len(x), "features": rows}


def _numeric_sources(inp: ValidationInputs, x: pd.DataFrame) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for column, source in column_sources(inp.bundle.feature_service).items():
        if column in x.columns and (
            column == source or (column[-2:-1] == "_" and column[-1].isdigit())
        ):
            grouped.setdefault(source, []).append(column)
    return grouped


def _perturbed(
    inp: ValidationInputs, x: pd.DataFrame, base: np.ndarray, source: str, columns: list[str]
) -> dict[str, Any]:
    step = np.nan_to_num(x[columns].std().to_numpy() * STEP_STD)
    changes = {}
    for sign in (1, -1):
        moved = x.copy()
        moved[columns] = x[columns].to_numpy() + sign * step
        changes[sign] = inp.bundle.predict_proba(moved) - base
    direction = 1 if source in MONOTONE_INCREASING else -1 if source in MONOTONE_DECREASING else 0
    both = np.abs(np.concatenate([changes[1], changes[-1]]))
    up = float(np.mean(changes[1]))
    return {
        "feature": source,
        "mean_abs_change": float(both.mean()),
        "max_abs_change": float(both.max()),
        "mean_change_up": up,
        "monotone": direction,
        "against_direction": bool(direction and up * direction < -1e-9),
    }


# --- fairness -------------------------------------------------------------------------


def fairness(inp: ValidationInputs) -> dict[str, Any]:
    """Four-fifths rule (training.fairness) and fairlearn's equalized-odds difference per
    protected attribute, on test rows at the model's threshold."""
    test = inp.split.test
    frame = inp.frame.iloc[test]
    y, p = frame[LABEL_COL].to_numpy(dtype=int), inp.p[test]
    groups = {
        str(c).removeprefix(PROTECTED_PREFIX): frame[c]
        for c in frame.columns
        if str(c).startswith(PROTECTED_PREFIX)
    }
    table = fairness_table(y, p, inp.bundle.threshold, groups)
    flagged = (p >= inp.bundle.threshold).astype(int)
    for name, group in groups.items():
        labels = group.astype("object").fillna(MISSING_GROUP).astype(str).to_numpy()
        table["attributes"][name]["equalized_odds_difference"] = _equalized_odds(
            y, flagged, labels, table["min_group_size"]
        )
    table["protected_are_inputs"] = [
        c for c in inp.bundle.feature_columns if c.startswith(PROTECTED_PREFIX)
    ]
    return table


def _equalized_odds(
    y: np.ndarray, flagged: np.ndarray, labels: np.ndarray, min_size: int
) -> float | None:
    """fairlearn's equalized-odds difference over the groups the four-fifths rule compares
    (at least min_size accounts, both outcomes present): a group of three accounts has a
    TPR of 0 or 1 by chance. None when fewer than two groups qualify."""
    names, counts = np.unique(labels, return_counts=True)
    eligible = [
        g for g, n in zip(names, counts, strict=True)
        if n >= min_size and len(np.unique(y[labels == g])) == 2
    ]  # fmt: skip
    if len(eligible) < 2:
        return None
    keep = np.isin(labels, eligible)
    return float(equalized_odds_difference(y[keep], flagged[keep], sensitive_features=labels[keep]))
