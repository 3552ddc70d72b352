"""Fairness at training time: per-group figures and the disparate-impact ratio.

"Selected" means flagged as a likely defaulter (score >= threshold), the decision that
sends an account to intensive collection. The disparate-impact ratio of an attribute is
the lowest group selection rate over the highest; the four-fifths (80%) rule passes
when it is at least 0.8. Protected attributes (age band, sex) are never model features;
they are joined back only here.

Groups smaller than `min_group_size` are reported but left out of the ratio: a handful of
accounts can swing a selection rate anywhere and would decide the flag by chance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, count, selection_rate

from training.evaluate import safe_auc

log = logging.getLogger(__name__)

FOUR_FIFTHS = 0.8
MIN_GROUP_SIZE = 30
MISSING_GROUP = "unknown"


def _at(threshold: float, metric: Callable[..., Any]) -> Callable[[Any, Any], float]:
    # MetricFrame hands every metric the scores; threshold them for the label metrics.
    def scored(y_true: Any, scores: Any) -> float:
        flagged = (np.asarray(scores, dtype=float) >= threshold).astype(int)
        return float(metric(np.asarray(y_true), flagged))

    return scored


def _auc(y_true: Any, scores: Any) -> float:
    auc = safe_auc(y_true, scores)
    return float("nan") if auc is None else auc


def _positives(y_true: Any, scores: Any) -> float:
    return float(np.sum(np.asarray(y_true)))


def group_metrics(y: Any, p: Any, threshold: float, group: pd.Series) -> pd.DataFrame:
    """One row per group: count, defaults, selection rate, TPR, FPR, AUC (NaN if one class)."""
    metrics = {
        "count": count,
        "defaults": _positives,
        "selection_rate": _at(threshold, selection_rate),
        "tpr": _at(threshold, _rate_among(1)),
        "fpr": _at(threshold, _rate_among(0)),
        "auc": _auc,
    }
    labels = pd.Series(group).astype("object").where(pd.Series(group).notna(), MISSING_GROUP)
    frame = MetricFrame(
        metrics=metrics,
        y_true=np.asarray(y).astype(int),
        y_pred=np.asarray(p, dtype=float),
        sensitive_features=labels.astype(str).to_numpy(),
    )
    table = frame.by_group
    table["count"] = table["count"].astype(int)
    table["defaults"] = table["defaults"].astype(int)
    return table


def _rate_among(label: int) -> Callable[[Any, Any], float]:
    """Share flagged among accounts with outcome `label`: TPR for 1, FPR for 0.

    NaN when the group has no such account: the rate is undefined there, not zero.
    """

    def rate(y_true: Any, flagged: Any) -> float:
        among = np.asarray(y_true) == label
        return float(np.asarray(flagged)[among].mean()) if among.any() else float("nan")

    return rate


def disparate_impact(table: pd.DataFrame, min_group_size: int = MIN_GROUP_SIZE) -> float | None:
    """min / max selection rate over groups with enough accounts; 1.0 if nobody is selected."""
    rates = table.loc[table["count"] >= min_group_size, "selection_rate"]
    if len(rates) < 2:
        return None
    highest = float(rates.max())
    return 1.0 if highest == 0 else float(rates.min()) / highest


def fairness_table(
    y: Any,
    p: Any,
    threshold: float,
    groups: Mapping[str, pd.Series],
    min_ratio: float = FOUR_FIFTHS,
    min_group_size: int = MIN_GROUP_SIZE,
) -> dict[str, Any]:
    """Per protected attribute: group figures, disparate-impact ratio and a pass flag.

    The flag is None when fewer than two groups are large enough to compare.
    """
    result: dict[str, Any] = {
        "threshold": float(threshold),
        "min_ratio": min_ratio,
        "min_group_size": min_group_size,
        "attributes": {},
    }
    for name, group in groups.items():
        table = group_metrics(y, p, threshold, group)
        ratio = disparate_impact(table, min_group_size)
        passes = None if ratio is None else ratio >= min_ratio
        result["attributes"][name] = {
            "groups": _records(table),
            "disparate_impact": ratio,
            "passes_four_fifths": passes,
        }
        log.info("fairness %s: disparate impact %s, passes %s", name, ratio, passes)
    return result


def _records(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for group, row in table.iterrows():
        records[str(group)] = {
            str(key): (None if isinstance(value, float) and np.isnan(value) else value)
            for key, value in row.items()
        }
        records[str(group)]["count"] = int(row["count"])
        records[str(group)]["defaults"] = int(row["defaults"])
    return records
