"""The champion beside the untuned raw-column baseline, on the same rows.

Two views, each with intervals, of ROC AUC, PR AUC and F1 (default class, at each model's
own threshold):
- the project's own split: the fitted bundle on the test rows against the baseline fitted
  on train with its best-F1 threshold on validation (exactly the validation report's
  benchmark); 95% intervals from a stratified bootstrap of the test rows, the difference
  paired (both models on the same resample);
- repeated stratified cross-validation over every labelled row (by account): in each fold
  both recipes start from the fold's training rows alone. The champion's recipe is the
  shipped configuration with fit's refit (cross-fitted calibration, threshold on
  out-of-fold scores); the baseline's is fit on three quarters, threshold on the rest (the
  60/20 of the project's split). Intervals are Nadeau and Bengio's corrected resampled t
  intervals, since CV folds share training rows and the plain t interval is too narrow.

The baseline is scikit-learn's HistGradientBoostingClassifier with its defaults on the
training set's raw numeric feature columns as Feast returns them (nothing derived, columns
with no value at all left out).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats  # type: ignore[import-untyped]
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score
from sklearn.model_selection import train_test_split

from training.estimators import build_estimator
from training.evaluate import best_f1_threshold, choose_threshold, cross_fit, safe_auc
from training.model_matrix import monotone_constraints
from training.scoring_model import ScoringModel, load_bundle
from training.splits import choose_splitter, stratified_cv
from training.train import FIT_SUMMARY, MODEL_FILE, Prepared, TrainParams, prepare
from training.validation.checks import raw_numeric_inputs

log = logging.getLogger(__name__)

CHAMPION = "champion"
BASELINE = "untuned raw-column GBM"
METRICS = ("roc_auc", "pr_auc", "f1")
JSON_NAME = "comparison.json"
MARKDOWN_NAME = "comparison.md"
# Fit on three quarters of a fold's training rows, threshold on the last quarter: 60/20.
BASELINE_THRESHOLD_SHARE = 0.25
# Each CV repeat shuffles with its own seed, apart from the split and tuner seeds.
REPEAT_SEED_OFFSET = 10

# (training rows, scored rows) -> (scores of the scored rows, decision threshold)
Recipe = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, float]]


def figures(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC AUC, PR AUC and F1 at the threshold."""
    flagged = p >= threshold
    tp = float(np.sum(flagged & (y == 1)))
    f1 = 2 * tp / max(float(flagged.sum() + y.sum()), 1e-12)
    return {
        "roc_auc": float(safe_auc(y, p) or float("nan")),
        "pr_auc": float(average_precision_score(y, p)),
        "f1": f1,
    }


def baseline_recipe(raw: pd.DataFrame, y: np.ndarray, seed: int) -> Recipe:
    def run(train: np.ndarray, scored: np.ndarray) -> tuple[np.ndarray, float]:
        fit_rows, threshold_rows = train_test_split(
            train, test_size=BASELINE_THRESHOLD_SHARE, stratify=y[train], random_state=seed
        )
        model = HistGradientBoostingClassifier(random_state=seed)
        model.fit(raw.iloc[fit_rows], y[fit_rows])
        cut = best_f1_threshold(
            y[threshold_rows], model.predict_proba(raw.iloc[threshold_rows])[:, 1]
        )
        return model.predict_proba(raw.iloc[scored])[:, 1], cut

    return run


def champion_recipe(data: Prepared, chosen: dict[str, Any], params: TrainParams) -> Recipe:
    """The shipped configuration, refitted as fit refits it, on the given rows alone."""
    monotone = dict(zip(data.x.columns, monotone_constraints(list(data.x.columns)), strict=True))

    def run(train: np.ndarray, scored: np.ndarray) -> tuple[np.ndarray, float]:
        model = build_estimator(
            chosen["kind"], chosen["params"], chosen["imbalance"], monotone,
            chosen.get("select_k"), params.seed,
        )  # fmt: skip
        frame = data.frame.iloc[train].reset_index(drop=True)
        folds = choose_splitter(frame, seed=params.split_seed + 2).cv(
            frame, params.calibration_folds
        )
        x, y = data.x.iloc[train].reset_index(drop=True), data.y[train]
        fitted = cross_fit(model, x, y, folds, seed=params.seed)
        cut = choose_threshold(y, fitted.oof, params.threshold_objective, params.costs)
        p = fitted.model.predict_proba(data.x.iloc[scored])[:, 1]
        if fitted.calibrator is not None:
            p = fitted.calibrator.predict(p)
        return np.asarray(p, dtype=np.float64), cut

    return run


# --- the project's split ----------------------------------------------------------------


def on_split(
    data: Prepared, bundle: ScoringModel, params: TrainParams, raw: pd.DataFrame
) -> dict[str, Any]:
    """Bundle and baseline on the test rows, with paired bootstrap intervals."""
    split, y = data.split, data.y
    model = HistGradientBoostingClassifier(random_state=params.seed)
    model.fit(raw.iloc[split.train], y[split.train])
    cut = best_f1_threshold(y[split.valid], model.predict_proba(raw.iloc[split.valid])[:, 1])
    scores = {
        CHAMPION: (bundle.predict_proba(data.x.iloc[split.test]), bundle.threshold),
        BASELINE: (model.predict_proba(raw.iloc[split.test])[:, 1], cut),
    }
    return bootstrap(y[split.test], scores, params.bootstrap, params.seed)


def bootstrap(
    y: np.ndarray, scores: dict[str, tuple[np.ndarray, float]], resamples: int, seed: int
) -> dict[str, Any]:
    """Point figures, 95% percentile intervals and the paired champion - baseline difference,
    from resamples drawn within each class (every resample keeps the default rate)."""
    rng = np.random.default_rng(seed)
    classes = [np.flatnonzero(y == c) for c in (0, 1)]
    draws: dict[str, list[dict[str, float]]] = {name: [] for name in scores}
    for _ in range(resamples):
        rows = np.concatenate([rng.choice(c, len(c), replace=True) for c in classes])
        for name, (p, cut) in scores.items():
            draws[name].append(figures(y[rows], p[rows], cut))
    out: dict[str, Any] = {"rows": len(y), "resamples": resamples, "models": {}}
    for name, (p, cut) in scores.items():
        point = figures(y, p, cut)
        frame = pd.DataFrame(draws[name])
        out["models"][name] = {
            m: _interval(point[m], frame[m].to_numpy()) | {"threshold": cut} for m in METRICS
        }
    champion, baseline = pd.DataFrame(draws[CHAMPION]), pd.DataFrame(draws[BASELINE])
    out["difference"] = {
        m: _interval(
            out["models"][CHAMPION][m]["value"] - out["models"][BASELINE][m]["value"],
            (champion[m] - baseline[m]).to_numpy(),
        )
        for m in METRICS
    }
    return out


def _interval(value: float, draws: np.ndarray) -> dict[str, float]:
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    return {"value": float(value), "low": float(low), "high": float(high)}


# --- repeated cross-validation ----------------------------------------------------------


def repeated_cv(data: Prepared, recipes: dict[str, Recipe], params: TrainParams) -> dict[str, Any]:
    """Every recipe on the same repeated stratified folds of all labelled rows."""
    rows = np.sort(np.concatenate([data.split.train, data.split.valid, data.split.test]))
    frame = data.frame.iloc[rows].reset_index(drop=True)
    per_fold: list[dict[str, Any]] = []
    for repeat in range(params.compare_repeats):
        seed = params.split_seed + REPEAT_SEED_OFFSET + repeat
        for k, (train, test) in enumerate(
            stratified_cv(frame, n_splits=params.compare_splits, seed=seed)
        ):
            started = time.perf_counter()
            fold: dict[str, Any] = {
                "repeat": repeat,
                "fold": k,
                "train": len(train),
                "test": len(test),
            }
            for name, recipe in recipes.items():
                p, cut = recipe(rows[train], rows[test])
                fold[name] = figures(data.y[rows[test]], p, cut) | {"threshold": cut}
            per_fold.append(fold)
            log.info("repeat %d fold %d in %.0fs: %s", repeat, k, time.perf_counter() - started,
                     {n: round(fold[n]["f1"], 4) for n in recipes})  # fmt: skip
    return summarise_folds(per_fold, list(recipes))


def summarise_folds(per_fold: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Mean and corrected interval per model and metric, and of the paired difference."""
    share = float(np.mean([f["test"] / f["train"] for f in per_fold]))
    models = {
        name: {m: corrected_interval([f[name][m] for f in per_fold], share) for m in METRICS}
        for name in names
    }
    difference = {
        m: corrected_interval([f[CHAMPION][m] - f[BASELINE][m] for f in per_fold], share)
        for m in METRICS
    }
    return {"folds": per_fold, "models": models, "difference": difference}


def corrected_interval(values: list[float], test_train_ratio: float) -> dict[str, float]:
    """Mean with the 95% corrected resampled t interval (Nadeau and Bengio 2003): the
    variance of the mean is (1/n + n_test/n_train) s^2 rather than s^2 / n."""
    arr = np.asarray(values, dtype=float)
    n, mean = len(arr), float(arr.mean())
    if n < 2:
        return {"value": mean, "low": mean, "high": mean}
    spread = float(stats.t.ppf(0.975, n - 1)) * np.sqrt(
        (1.0 / n + test_train_ratio) * float(arr.var(ddof=1))
    )
    return {"value": mean, "low": mean - spread, "high": mean + spread}


# --- the report ---------------------------------------------------------------------------


def compare_with_baseline(
    dataset_dir: Path, model_dir: Path, out_dir: Path, params: TrainParams
) -> dict[str, Any]:
    """Both views, written as comparison.json and a markdown table under out_dir."""
    started = time.perf_counter()
    data = prepare(dataset_dir, params)
    if data.splitter_kind != "stratified":
        log.warning("repeated stratified CV ignores time on %s data", data.splitter_kind)
    bundle = load_bundle(Path(model_dir) / MODEL_FILE)
    chosen = json.loads((Path(model_dir) / FIT_SUMMARY).read_text())["chosen"]
    raw = raw_numeric_inputs(data.frame)
    recipes = {
        CHAMPION: champion_recipe(data, chosen, params),
        BASELINE: baseline_recipe(raw, data.y, params.seed),
    }
    report: dict[str, Any] = {
        "dataset": str(dataset_dir),
        "model": str(model_dir),
        "champion": {k: chosen.get(k) for k in ("kind", "imbalance", "select_k", "source")},
        "baseline": {
            "model": "HistGradientBoostingClassifier, defaults",
            "columns": list(raw.columns),
        },
        "split": on_split(data, bundle, params, raw),
        "cv": {
            "splits": params.compare_splits,
            "repeats": params.compare_repeats,
            **repeated_cv(data, recipes, params),
        },
    }
    report["champion_at_least_baseline"] = at_least_baseline(report)
    report["seconds"] = round(time.perf_counter() - started, 1)
    write_comparison(report, Path(out_dir))
    return report


def at_least_baseline(report: dict[str, Any]) -> dict[str, bool]:
    """Per view, whether the champion's AUC and F1 are at least the baseline's."""
    out = {}
    for view in ("split", "cv"):
        models = report[view]["models"]
        for metric in ("roc_auc", "f1"):
            champion, baseline = (
                models[CHAMPION][metric]["value"],
                models[BASELINE][metric]["value"],
            )
            out[f"{view}.{metric}"] = bool(champion >= baseline)
    return out


def markdown(report: dict[str, Any]) -> str:
    """The table: a row per view and model, a column per metric, value [low, high]."""
    lines = [
        "| view | model | ROC AUC | PR AUC | F1 |",
        "|---|---|---|---|---|",
    ]
    views = {
        "split": f"own test split ({report['split']['rows']} rows, bootstrap)",
        "cv": f"{report['cv']['repeats']}x{report['cv']['splits']} repeated stratified CV",
    }
    for view, label in views.items():
        block = report[view]
        for name, values in [
            *block["models"].items(),
            ("champion - baseline", block["difference"]),
        ]:
            cells = [_cell(values[m]) for m in METRICS]
            lines.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(v: dict[str, float]) -> str:
    return f"{v['value']:.4f} [{v['low']:.4f}, {v['high']:.4f}]"


def write_comparison(report: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / JSON_NAME).write_text(json.dumps(report, indent=2, default=str))
    table = markdown(report)
    (out_dir / MARKDOWN_NAME).write_text(table)
    log.info("champion vs baseline (%.0fs) -> %s\n%s", report["seconds"], out_dir, table)
