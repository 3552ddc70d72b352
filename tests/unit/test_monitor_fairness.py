"""Fairness monitoring on a hand-made outcome-joined log whose answers are known."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from monitoring.fairness_watch import fairness_job, fairness_metrics, fairness_report
from monitoring.performance import MATURED, NOT_MATURED, PerformanceInputError

pytestmark = pytest.mark.unit


def joined() -> pd.DataFrame:
    """Sex a: 10 matured, 4 flagged; sex b: 10 matured, 2 flagged; ages even; one unmatured."""
    rows = [
        *[("a", "26-35", 1, 0.9)] * 3, ("a", "26-35", 0, 0.7), *[("a", "36-45", 0, 0.1)] * 6,
        *[("b", "26-35", 1, 0.8)] * 2, *[("b", "36-45", 0, 0.3)] * 8,
    ]  # fmt: skip
    frame = pd.DataFrame(
        rows, columns=["protected__sex", "protected__age_band", "default_30d", "probability"]
    )
    frame["outcome"] = MATURED
    late = {"protected__sex": "b", "protected__age_band": "26-35", "default_30d": None}
    extra = pd.DataFrame([{**late, "probability": 0.99, "outcome": NOT_MATURED}])
    return pd.concat([frame, extra], ignore_index=True)


def test_disparate_impact_on_matured_scores() -> None:
    result = fairness_report(joined(), 0.5, min_group_size=5)
    assert result["n"] == 20
    assert result["attributes"]["sex"]["disparate_impact"] == pytest.approx(0.5)
    metrics = fairness_metrics(result)
    assert metrics["fairness.sex.disparate_impact"] == pytest.approx(0.5)
    assert metrics["fairness.sex.passes_80"] == 0.0
    # age 26-35: 6 of 6 flagged; 36-45: 0 of 14 -> 0.0
    assert metrics["fairness.age_band.disparate_impact"] == pytest.approx(0.0)


def test_groups_too_small_give_no_verdict(tmp_path: Path) -> None:
    result = fairness_job(
        joined(),
        0.5,
        window_start=None,
        window_end=datetime(2026, 3, 1, tzinfo=UTC),
        reports_dir=tmp_path,
        min_group_size=11,
    )
    assert "fairness.sex.passes_80" not in result.metrics
    assert result.details["not_comparable"] == ["age_band", "sex"]
    saved = json.loads(result.reports["json"].read_text())
    assert saved["attributes"]["sex"]["disparate_impact"] is None


def test_bad_input_is_refused() -> None:
    with pytest.raises(PerformanceInputError, match="no matured outcome"):
        fairness_report(joined().tail(1), 0.5)
    with pytest.raises(ValueError, match="threshold"):
        fairness_report(joined(), math.nan)
    with pytest.raises(ValueError, match="protected attribute"):
        fairness_report(joined().drop(columns=["protected__sex"]), 0.5)
