"""Online/offline skew replay: rebuild logged online vectors offline and compare them.

For a sample of served rows, Feast's get_historical_features rebuilds the service's vector
at the moment the online one stood for, and every feature is compared with what the scorer
logged. A mismatch means serving and training do not see the same value for the same
account and moment: a transformation that differs, a stale or partial materialisation, or
a corrupted online store.

Which moment? Not the logged scored_at: the online store serves the newest materialised row
whatever the clock says, so a row materialised "ahead" of the wall clock (or a scorer whose
clock lags the data) would be replayed against an older snapshot and look skewed when it is
not. The point-in-time-equal moment is the newest feature timestamp the scorer logged for
the row (`ts__<view>`): at that moment the point-in-time join picks exactly the row the
online store served for that view, and any other view whose served row is older than a row
available offline by then shows up as skew (a stale view), as it should. Rows without any
logged feature timestamp (nothing was found online) fall back to scored_at. The request
data (scoring_time, reported_monthly_income) come from the log, so the on-demand features
are recomputed with what the request carried.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from collectwise.errors import InvalidInputError
from feature_repo.feature_services import COLLECTION_RISK_V1
from ingestion import retrieval
from monitoring.job_result import JobResult
from monitoring.served import TS_PREFIX, stamp

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)

JOB = "skew"
ROW_KEY = "replay_row"
EXAMPLES_PER_FEATURE = 5


class SkewInputError(InvalidInputError, ValueError):
    """Nothing to replay, or the replay came back incomplete; the message says why."""


# --------------------------------------------------------------------------- equality


def is_missing(value: Any) -> bool:
    """None, NaN, NaT and pd.NA are all "no value"; containers never are."""
    if value is None or isinstance(value, (list, tuple, np.ndarray)):
        return value is None
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _scalar(value: Any) -> Any:
    # Datetimes compare as epoch seconds, so a timestamp logged as a number still matches.
    if isinstance(value, (datetime, np.datetime64, pd.Timestamp)):
        ts = pd.Timestamp(value)
        return (ts.tz_localize("UTC") if ts.tzinfo is None else ts).timestamp()
    if isinstance(value, np.generic):
        return value.item()
    return value


def values_equal(a: Any, b: Any, rel_tol: float = 1e-9) -> bool:
    """Equal within a relative tolerance; arrays element-wise; missing equals only missing."""
    if is_missing(a) or is_missing(b):
        return is_missing(a) and is_missing(b)
    if isinstance(a, (list, tuple, np.ndarray)) or isinstance(b, (list, tuple, np.ndarray)):
        if not (
            isinstance(a, (list, tuple, np.ndarray)) and isinstance(b, (list, tuple, np.ndarray))
        ):
            return False
        return len(a) == len(b) and all(
            values_equal(x, y, rel_tol) for x, y in zip(a, b, strict=True)
        )
    a, b = _scalar(a), _scalar(b)
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=0.0)
    return bool(a == b)


# --------------------------------------------------------------------------- entities


def replay_time(served: pd.DataFrame) -> pd.Series:
    """The point-in-time-equal moment of each row (see the module docstring)."""
    ts_columns = [c for c in served.columns if str(c).startswith(TS_PREFIX)]
    scored = pd.to_datetime(served["scored_at"], utc=True)
    if not ts_columns:
        return scored
    newest = pd.concat([pd.to_datetime(served[c], utc=True) for c in ts_columns], axis=1).max(
        axis=1
    )
    return newest.where(newest.notna(), scored)


def entity_rows(served: pd.DataFrame) -> pd.DataFrame:
    """Entity rows plus the request data the scorer logged, keyed by ROW_KEY."""
    return retrieval.entity_rows(
        served["account_id"].astype(str),
        # An account unknown online has no customer; "" matches no customer row offline,
        # exactly as the scorer's lookup did.
        served["customer_id"].fillna("").astype(str),
        # Through numpy, as the replay always built them: nanosecond UTC whatever was logged.
        replay_time(served).to_numpy(),
        pd.to_datetime(served["scoring_time"], utc=True).to_numpy(),
        served.get("reported_monthly_income"),
        extra={ROW_KEY: np.arange(len(served))},
    )


def sample_served(served: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """A seeded sample of at most n rows, in log order."""
    if len(served) <= n:
        return served.reset_index(drop=True)
    return served.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


def replay(
    store: FeatureStore, entities: pd.DataFrame, service_name: str = COLLECTION_RISK_V1
) -> pd.DataFrame:
    """The service's vectors offline, as training reads them, in ROW_KEY order."""
    # filter_by_created_timestamp as in training (ingestion.retrieval): the question is
    # whether serving saw what a training row for the same moment would have seen.
    frame = retrieval.point_in_time_vectors(store, entities, service_name)
    if len(frame) != len(entities):
        raise SkewInputError(f"Feast returned {len(frame)} rows for {len(entities)} entity rows")
    return frame.sort_values(ROW_KEY).reset_index(drop=True)


# --------------------------------------------------------------------------- compare


@dataclass
class SkewOutcome:
    rows: int
    mismatches: dict[str, int]
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rows_with_mismatch: int = 0
    not_logged: list[str] = field(default_factory=list)

    def rate(self, feature: str) -> float:
        return self.mismatches[feature] / self.rows if self.rows else 0.0

    @property
    def max_rate(self) -> float:
        return max((self.rate(f) for f in self.mismatches), default=0.0)


def compare(
    logged: pd.DataFrame,
    replayed: pd.DataFrame,
    features: Sequence[str],
    rel_tol: float = 1e-9,
) -> SkewOutcome:
    """Mismatches per feature between logged rows and their replay (same order, same length).

    A feature the log does not hold is reported in `not_logged`; one the replay lacks is an
    error, since it means the replay did not rebuild the service.
    """
    if len(logged) != len(replayed):
        raise SkewInputError(f"{len(logged)} logged rows but {len(replayed)} replayed")
    absent = [f for f in features if f not in replayed.columns]
    if absent:
        raise SkewInputError(f"the replay has no column for {absent}")
    present = [f for f in features if f in logged.columns]
    outcome = SkewOutcome(
        rows=len(logged), mismatches={}, not_logged=sorted(set(features) - set(present))
    )
    any_bad = np.zeros(len(logged), dtype=bool)
    for feature in present:
        left = logged[feature].to_numpy(dtype=object)
        right = replayed[feature].to_numpy(dtype=object)
        bad = np.array(
            [not values_equal(a, b, rel_tol) for a, b in zip(left, right, strict=True)], dtype=bool
        )
        outcome.mismatches[feature] = int(bad.sum())
        outcome.examples[feature] = _examples(logged, left, right, bad)
        any_bad |= bad
    outcome.rows_with_mismatch = int(any_bad.sum())
    return outcome


def _examples(
    logged: pd.DataFrame, left: np.ndarray, right: np.ndarray, bad: np.ndarray
) -> list[dict[str, Any]]:
    out = []
    for i in np.flatnonzero(bad)[:EXAMPLES_PER_FEATURE]:
        out.append(
            {
                "request_id": str(logged["request_id"].iloc[i]) if "request_id" in logged else None,
                "account_id": str(logged["account_id"].iloc[i]),
                "logged": _plain(left[i]),
                "replayed": _plain(right[i]),
            }
        )
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if is_missing(value):
        return None
    value = _scalar(value)
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def skew_metrics(outcome: SkewOutcome) -> dict[str, float]:
    metrics = {
        "skew.max_mismatch_rate": outcome.max_rate,
        "skew.rows_with_mismatch_rate": (
            outcome.rows_with_mismatch / outcome.rows if outcome.rows else 0.0
        ),
        "skew.n_replayed": float(outcome.rows),
    }
    for feature in outcome.mismatches:
        metrics[f"skew.feature.{feature}.mismatch_rate"] = outcome.rate(feature)
    return metrics


def skew_report(outcome: SkewOutcome, labels: dict[str, str], rel_tol: float) -> dict[str, Any]:
    """The JSON report: rates per feature and a few mismatching rows of each to look at."""
    return {
        "labels": labels,
        "rows": outcome.rows,
        "rows_with_mismatch": outcome.rows_with_mismatch,
        "mismatch_rate": {f: outcome.rate(f) for f in outcome.mismatches},
        "examples": {f: e for f, e in outcome.examples.items() if e},
        "not_logged": outcome.not_logged,
        "rel_tolerance": rel_tol,
    }


def skew_job(
    logged: pd.DataFrame,
    replayed: pd.DataFrame,
    features: Sequence[str],
    *,
    window_start: datetime | None,
    window_end: datetime,
    reports_dir: Path,
    rel_tol: float = 1e-9,
    labels: dict[str, str] | None = None,
) -> JobResult:
    """compare + a JSON report under reports_dir/skew/<window end stamp>/."""
    if logged.empty:
        raise SkewInputError("no served rows to replay in the window")
    labels = dict(labels or {})
    outcome = compare(logged, replayed, features, rel_tol)
    report = skew_report(outcome, labels, rel_tol)
    out_dir = Path(reports_dir) / JOB / stamp(window_end)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "skew.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    return JobResult(
        job=JOB,
        window_start=window_start,
        window_end=window_end,
        metrics=skew_metrics(outcome),
        labels=labels,
        reports={"json": path},
        details={
            "skewed": sorted(f for f, n in outcome.mismatches.items() if n),
            "not_logged": outcome.not_logged,
            "examples": report["examples"],
        },
        rows=outcome.rows,
    )
