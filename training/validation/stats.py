"""The numbers of the validation report: discrimination and calibration of a group of rows,
the population stability index, and the expected calibration error.

Pure functions over arrays; the sections module decides which rows they see.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss

from training.evaluate import safe_auc, threshold_metrics

PSI_BINS = 10
# Empty bins would make PSI infinite; a tiny share keeps the log finite without hiding a
# population that moved into a bin the reference never filled.
PSI_FLOOR = 1e-4
ECE_BINS = 10


def group_figures(y: Any, p: Any, threshold: float) -> dict[str, Any]:
    """Discrimination and calibration of one group: AUC, PR AUC, F1 at the threshold,
    Brier, ECE, mean score against observed default rate; AUC is None with one class."""
    y_arr = np.asarray(y).astype(int)
    p_arr = np.asarray(p, dtype=float)
    if not len(y_arr):
        return {"n": 0}
    decisions = threshold_metrics(y_arr, p_arr >= threshold)
    return {
        "n": len(y_arr),
        "defaults": int(y_arr.sum()),
        "default_rate": float(y_arr.mean()),
        "mean_score": float(p_arr.mean()),
        "roc_auc": safe_auc(y_arr, p_arr),
        "pr_auc": float(average_precision_score(y_arr, p_arr)) if y_arr.any() else None,
        "f1": decisions["f1"],
        "brier": float(brier_score_loss(y_arr, p_arr, labels=[0, 1])),
        "ece": expected_calibration_error(y_arr, p_arr),
    }


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Mean |observed rate - mean score| over equal-width score bins, weighted by rows."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in np.unique(index):
        inside = index == b
        total += inside.sum() * abs(float(y[inside].mean()) - float(p[inside].mean()))
    return total / max(len(y), 1)


def psi(reference: Any, current: Any, bins: int = PSI_BINS) -> float | None:
    """Population stability index of `current` against `reference` on the reference's
    quantile bins; missing values form a bin of their own. None when either side is empty."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    if not len(ref) or not len(cur):
        return None
    known = ref[~np.isnan(ref)]
    edges: Any = np.unique(np.quantile(known, np.linspace(0, 1, bins + 1))) if len(known) else []
    ref_share, cur_share = _shares(ref, edges), _shares(cur, edges)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def _shares(values: np.ndarray, edges: Any) -> np.ndarray:
    missing = np.isnan(values)
    inner = np.asarray(edges, dtype=float)[1:-1]
    index = np.digitize(values[~missing], inner) if len(inner) else np.zeros((~missing).sum(), int)
    counts = np.bincount(index, minlength=max(len(inner) + 1, 1)).astype(float)
    counts = np.append(counts, missing.sum())
    return np.maximum(counts / max(len(values), 1), PSI_FLOOR)


def psi_label(value: float | None) -> str:
    """The usual reading of a PSI: below 0.1 stable, up to 0.25 a shift, above a change."""
    if value is None:
        return "n/a"
    return "stable" if value < 0.1 else "shift" if value < 0.25 else "changed"
