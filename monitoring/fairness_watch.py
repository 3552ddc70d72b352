"""Fairness over time: training.fairness figures on recent scored accounts whose outcomes
have matured.

The served log holds ids only; the protected attributes (age band, sex) are joined back by
customer from the validated customers table, as training.dataset does for the training
set, and never reach a model. "Selected" means flagged as a likely defaulter
(probability >= the model's threshold, which is the decision the scorer logged), so the
disparate-impact ratio compares how often each group is sent to intensive collection.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from monitoring.job_result import JobResult
from monitoring.performance import LABEL, MATURED, PerformanceInputError
from monitoring.served import stamp
from training.dataset import PROTECTED_ATTRIBUTES, PROTECTED_PREFIX
from training.fairness import FOUR_FIFTHS, MIN_GROUP_SIZE, fairness_table

log = logging.getLogger(__name__)

JOB = "fairness"


def fairness_report(
    joined: pd.DataFrame,
    threshold: float,
    attributes: Sequence[str] = PROTECTED_ATTRIBUTES,
    min_ratio: float = FOUR_FIFTHS,
    min_group_size: int = MIN_GROUP_SIZE,
) -> dict[str, Any]:
    """training.fairness.fairness_table over the matured rows of an outcome-joined log.

    `joined` holds `outcome`, `default_30d`, `probability` and `protected__<attr>` columns
    (monitoring.performance.attach_outcomes, then training.dataset.attach_protected).
    """
    matured = joined[joined["outcome"] == MATURED] if "outcome" in joined else joined
    if matured.empty:
        raise PerformanceInputError(
            "no matured outcome to judge fairness on: labels mature 30 days + grace after "
            "scoring; choose an earlier --end"
        )
    if not math.isfinite(threshold):
        raise PerformanceInputError(
            f"the model's threshold is {threshold}: cannot tell who was selected"
        )
    missing = [a for a in attributes if f"{PROTECTED_PREFIX}{a}" not in matured.columns]
    if missing:
        raise PerformanceInputError(f"no protected attribute column for {missing}")
    groups = {a: matured[f"{PROTECTED_PREFIX}{a}"] for a in attributes}
    result = fairness_table(
        matured[LABEL].astype(int),
        matured["probability"].astype(float),
        threshold,
        groups,
        min_ratio=min_ratio,
        min_group_size=min_group_size,
    )
    result["n"] = len(matured)
    return result


def fairness_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """fairness.<attr>.disparate_impact and .passes_80 (0/1); an attribute with fewer than
    two groups large enough to compare gets neither (see details)."""
    metrics: dict[str, float] = {"fairness.n": float(result.get("n", 0))}
    for attr, figures in result["attributes"].items():
        ratio = figures["disparate_impact"]
        if ratio is None:
            continue
        metrics[f"fairness.{attr}.disparate_impact"] = float(ratio)
        metrics[f"fairness.{attr}.passes_80"] = float(bool(figures["passes_four_fifths"]))
    return metrics


def fairness_job(
    joined: pd.DataFrame,
    threshold: float,
    *,
    window_start: datetime | None,
    window_end: datetime,
    reports_dir: Path,
    attributes: Sequence[str] = PROTECTED_ATTRIBUTES,
    min_ratio: float = FOUR_FIFTHS,
    min_group_size: int = MIN_GROUP_SIZE,
    labels: dict[str, str] | None = None,
) -> JobResult:
    """fairness_report + a JSON report under reports_dir/fairness/<window end stamp>/."""
    labels = dict(labels or {})
    result = fairness_report(joined, threshold, attributes, min_ratio, min_group_size)
    out_dir = Path(reports_dir) / JOB / stamp(window_end)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "fairness.json"
    path.write_text(json.dumps({"labels": labels, **result}, indent=2, default=str))
    not_comparable = [a for a, f in result["attributes"].items() if f["disparate_impact"] is None]
    if not_comparable:
        log.warning(
            "fairness: fewer than two groups of %d+ accounts for %s", min_group_size, not_comparable
        )
    return JobResult(
        job=JOB,
        window_start=window_start,
        window_end=window_end,
        metrics=fairness_metrics(result),
        labels=labels,
        reports={"json": path},
        details={
            "not_comparable": not_comparable,
            "threshold": threshold,
            "failing": [
                a for a, f in result["attributes"].items() if f["passes_four_fifths"] is False
            ],
        },
        rows=int(result["n"]),
    )
