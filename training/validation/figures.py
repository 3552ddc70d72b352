"""The validation report's plots, as base64 PNGs for a self-contained page.

matplotlib's Figure is used directly, never pyplot, as in training.report: no GUI backend
and no global figure state, so reports can be built in servers and threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from training.report import _labels, _png, _short

TOP = 15


def figures(report: Mapping[str, Any]) -> dict[str, str]:
    """Name -> base64 PNG; a plot whose data is empty is left out."""
    drawers: dict[str, tuple[Callable[[Figure, Any], None], Any]] = {
        "benchmark_roc": (_benchmark_roc, report["benchmarks"]["roc"]),
        "calibration": (_calibration, report["performance"]["calibration_curve"]),
        "months": (_months, report["performance"]["months"]),
        "segments": (_segments, report["performance"]["segments"]),
        "stability": (_stability, report["stability"]),
        "sensitivity": (_sensitivity, report["sensitivity"]["features"]),
    }
    out = {}
    for name, (draw, data) in drawers.items():
        if data:
            fig = Figure(figsize=(6.0, 4.0), layout="constrained")
            draw(fig, data)
            out[name] = _png(fig)
    return out


def _benchmark_roc(fig: Figure, roc: Mapping[str, Any]) -> None:
    ax = fig.subplots()
    for name, curve in roc.items():
        ax.plot(curve["fpr"], curve["tpr"], label=name)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    _labels(ax, "ROC on test: model and benchmarks", "false positive rate", "true positive rate")


def _calibration(fig: Figure, rows: list[Mapping[str, Any]]) -> None:
    ax = fig.subplots()
    ax.plot(
        [r["mean_predicted"] for r in rows], [r["observed_rate"] for r in rows], "o-", label="model"
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    _labels(ax, "Calibration on test", "mean predicted probability", "observed default rate")


def _months(fig: Figure, rows: list[Mapping[str, Any]]) -> None:
    ax = fig.subplots()
    names = [r["month"] for r in rows]
    for key in ("roc_auc", "default_rate", "mean_score"):
        ax.plot(names, [np.nan if r.get(key) is None else r[key] for r in rows], "o-", label=key)
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    _labels(ax, "Per snapshot month (out-of-time stability)", "snapshot month", "value")


def _segments(fig: Figure, segments: Mapping[str, list[Mapping[str, Any]]]) -> None:
    ax = fig.subplots()
    labels, values = [], []
    for segment, groups in segments.items():
        for g in groups:
            labels.append(f"{segment}: {g['group']}")
            values.append(np.nan if g.get("roc_auc") is None else g["roc_auc"])
    ax.barh(labels[::-1], values[::-1])
    ax.set_xlim(0.5, 1.0)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title("Test ROC AUC by segment")


def _stability(fig: Figure, stability: Mapping[str, Any]) -> None:
    fig.set_size_inches(9.0, 4.0)
    left, right = fig.subplots(1, 2)
    months = stability["months"]
    left.bar([m["month"] for m in months], [m.get("score_psi") or 0 for m in months])
    left.axhline(0.1, linestyle="--", color="orange")
    left.axhline(0.25, linestyle="--", color="red")
    left.tick_params(axis="x", labelrotation=60, labelsize=7)
    _labels(left, "Score PSI vs training rows", "snapshot month", "PSI", legend=False)
    top = stability["features"][:TOP][::-1]
    right.barh([_short(f["feature"]) for f in top], [f["max_psi"] for f in top])
    right.tick_params(axis="y", labelsize=7)
    right.set_title("Largest monthly PSI per input")


def _sensitivity(fig: Figure, rows: list[Mapping[str, Any]]) -> None:
    ax = fig.subplots()
    top = rows[:TOP][::-1]
    ax.barh([_short(r["feature"]) for r in top], [r["mean_abs_change"] for r in top])
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title("Mean |score change| at +/- 0.1 std")
