"""Live model performance: served scores joined to the outcomes that have since matured.

The outcome of account a scored at t is the label default_30d of (a, s), where s is the
feature snapshot behind the score: the logged `ts__account_payment_velocity` when the log
has it, else the newest snapshot at or before t. A score counts only once it has matured,
t + 30 days + grace <= labels_as_of (when outcomes had been observed, from the features
manifest), and only if the label table has that (a, s): an account with nothing left
outstanding at s has no label, since "will not pay" means nothing there.

An account scored several times on one snapshot asks the same question several times; the
newest score stands for it, so busy accounts do not outweigh quiet ones.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss

from collectwise.errors import InvalidInputError
from feature_repo.transformations import DEFAULT_LABEL_GRACE_DAYS, LABEL_WINDOW_DAYS
from monitoring.job_result import JobResult
from monitoring.served import as_utc, stamp
from training.evaluate import safe_auc, threshold_metrics

log = logging.getLogger(__name__)

JOB = "performance"
LABEL = "default_30d"
SNAPSHOT_TS = "ts__account_payment_velocity"
MATURED, NOT_MATURED, NO_LABEL = "matured", "not matured", "no label"
# The registry's test metrics (training.registry) the live figures are held against.
TEST_METRICS = {"auc": "test_roc_auc", "f1": "test_f1", "brier": "test_brier"}


class PerformanceInputError(InvalidInputError, ValueError):
    """Nothing to measure (no scores, no matured outcomes); the message says why."""


@dataclass(frozen=True)
class Maturity:
    # The label's definition and the pipeline's late-recording grace (feature_repo).
    label_window_days: int = LABEL_WINDOW_DAYS
    label_grace_days: int = DEFAULT_LABEL_GRACE_DAYS

    @property
    def delay(self) -> timedelta:
        return timedelta(days=self.label_window_days + self.label_grace_days)

    def latest_matured_score(self, labels_as_of: datetime) -> datetime:
        """Scores at or before this moment have a final outcome by labels_as_of."""
        return as_utc(labels_as_of) - self.delay


# --------------------------------------------------------------------------- outcomes


def snapshot_of(served: pd.DataFrame, snapshots: pd.Series) -> pd.Series:
    """The feature snapshot behind each score (see the module docstring)."""
    times = pd.Series(pd.to_datetime(snapshots, utc=True).unique()).sort_values()
    scored = pd.to_datetime(served["scored_at"], utc=True)
    position = np.searchsorted(times.to_numpy(), scored.to_numpy(), side="right") - 1
    fallback = pd.Series(
        [times.iloc[i] if i >= 0 else pd.NaT for i in position], index=served.index, dtype=object
    )
    fallback = pd.to_datetime(fallback, utc=True)
    if SNAPSHOT_TS in served.columns:
        logged = pd.to_datetime(served[SNAPSHOT_TS], utc=True)
        return logged.where(logged.notna(), fallback)
    return fallback


def attach_outcomes(
    served: pd.DataFrame,
    labels: pd.DataFrame,
    snapshots: pd.Series,
    labels_as_of: datetime,
    maturity: Maturity | None = None,
) -> pd.DataFrame:
    """One row per (account, snapshot) with its newest score, `default_30d` (NaN when not
    known) and `outcome` in {matured, not matured, no label}."""
    maturity = maturity or Maturity()
    frame = served.copy()
    frame["scored_at"] = pd.to_datetime(frame["scored_at"], utc=True)
    frame["snapshot"] = snapshot_of(frame, snapshots)
    frame = frame.sort_values("scored_at", kind="stable").drop_duplicates(
        ["account_id", "snapshot"], keep="last"
    )
    known = labels.loc[:, ["account_id", "event_timestamp", LABEL]].rename(
        columns={"event_timestamp": "snapshot"}
    )
    known["snapshot"] = pd.to_datetime(known["snapshot"], utc=True)
    frame = frame.drop(columns=[LABEL], errors="ignore").merge(
        known, on=["account_id", "snapshot"], how="left", validate="many_to_one"
    )
    ripe = frame["scored_at"] <= maturity.latest_matured_score(labels_as_of)
    frame.loc[~ripe, LABEL] = np.nan
    frame["outcome"] = np.where(
        ~ripe, NOT_MATURED, np.where(frame[LABEL].isna(), NO_LABEL, MATURED)
    )
    return frame.sort_values(["scored_at", "account_id"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- metrics


def headline(y: np.ndarray, p: np.ndarray, decision: np.ndarray) -> dict[str, float | None]:
    """AUC, Brier and the logged decisions' precision / recall / F1 on matured rows."""
    flagged = threshold_metrics(y, decision)
    return {
        "n": float(len(y)),
        "auc": safe_auc(y, p),
        "brier": float(brier_score_loss(y, p, labels=[0, 1])),
        "f1": flagged["f1"],
        "precision": flagged["precision"],
        "recall": flagged["recall"],
        "default_rate": float(y.mean()),
        "mean_probability": float(p.mean()),
        "flagged_share": flagged["flagged_share"],
    }


def band_calibration(matured: pd.DataFrame) -> list[dict[str, Any]]:
    """Per logged band: mean predicted vs observed default, and the share that paid."""
    rows = []
    for band, group in matured.groupby("band", sort=True):
        observed = float(group[LABEL].mean())
        predicted = float(group["probability"].mean())
        rows.append(
            {
                "band": str(band),
                "n": len(group),
                "mean_predicted": predicted,
                "observed_default_rate": observed,
                "calibration_gap": predicted - observed,
                "collection_success_rate": 1.0 - observed,
            }
        )
    return rows


def weekly(matured: pd.DataFrame) -> list[dict[str, Any]]:
    """Headline figures per week of scoring (weeks start on Monday, UTC)."""
    week = matured["scored_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period("W-SUN")
    rows = []
    for period, group in matured.groupby(week, sort=True):
        y, p, d = _arrays(group)
        rows.append({"week": str(period.start_time.date()), **headline(y, p, d)})
    return rows


def _arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = frame[LABEL].to_numpy(dtype=int)
    p = frame["probability"].to_numpy(dtype=float)
    d = frame["decision"].fillna(False).to_numpy(dtype=bool)
    return y, p, d


def against_test(live: Mapping[str, float | None], test: Mapping[str, float]) -> dict[str, float]:
    """Test minus live for AUC and F1 (a drop is positive); live minus test for Brier."""
    out: dict[str, float] = {}
    for name, key in TEST_METRICS.items():
        value = live.get(name)
        if value is None or key not in test:
            continue
        out[f"test_{name}"] = float(test[key])
        gap = value - test[key] if name == "brier" else test[key] - value
        out[f"{name}_rise" if name == "brier" else f"{name}_drop"] = float(gap)
    return out


def evaluate_live(joined: pd.DataFrame, test_metrics: Mapping[str, float]) -> dict[str, Any]:
    """Every figure of the report; raises PerformanceInputError without matured rows."""
    matured = joined[joined["outcome"] == MATURED]
    counts = joined["outcome"].value_counts().to_dict()
    if matured.empty:
        raise PerformanceInputError(
            f"no matured outcome among {len(joined)} scored account snapshots ({counts}): "
            "labels mature 30 days + grace after scoring; choose an earlier --end"
        )
    live = headline(*_arrays(matured))
    return {
        "live": live,
        "vs_test": against_test(live, test_metrics),
        "bands": band_calibration(matured),
        "weekly": weekly(matured),
        "outcomes": {str(k): int(v) for k, v in counts.items()},
    }


def performance_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """Flat metrics: performance.auc, .f1, .auc_drop, .n_matured, per-band success rates..."""
    live, vs_test = report["live"], report["vs_test"]
    metrics = {f"performance.{k}": float(v) for k, v in live.items() if v is not None and k != "n"}
    metrics["performance.n_matured"] = float(live["n"])
    metrics.update({f"performance.{k}": v for k, v in vs_test.items()})
    for row in report["bands"]:
        prefix = f"performance.band.{row['band']}"
        metrics[f"{prefix}.collection_success_rate"] = row["collection_success_rate"]
        metrics[f"{prefix}.calibration_gap"] = row["calibration_gap"]
    return metrics


# --------------------------------------------------------------------------- reports


def write_reports(report: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "performance.json", "html": out_dir / "performance.html"}
    paths["json"].write_text(json.dumps(report, indent=2, default=str))
    paths["html"].write_text(render_html(report))
    return paths


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row.values()) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "n/a" if value is None else str(value)


def render_html(report: Mapping[str, Any]) -> str:
    """A one-page report: headline vs test, calibration and success by band, weekly trend."""
    headline_rows = [{"metric": k, "live": v} for k, v in report["live"].items()]
    test_rows = [{"metric": k, "value": v} for k, v in report["vs_test"].items()]
    title = html.escape(f"Live performance {report.get('labels', {}).get('window', '')}")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>body{{font-family:sans-serif}}"
        "td,th{padding:2px 8px;text-align:right}</style></head><body>"
        f"<h1>{title}</h1><h2>Matured outcomes</h2>{_table(headline_rows)}"
        f"<h2>Against the model's test set</h2>{_table(test_rows)}"
        f"<h2>By band</h2>{_table(report['bands'])}"
        f"<h2>By week</h2>{_table(report['weekly'])}"
        f"<h2>Scores by outcome status</h2>{_table([report['outcomes']])}"
        "</body></html>"
    )


def performance_job(
    joined: pd.DataFrame,
    test_metrics: Mapping[str, float],
    *,
    window_start: datetime | None,
    window_end: datetime,
    reports_dir: Path,
    labels: dict[str, str] | None = None,
) -> JobResult:
    """evaluate_live + reports under reports_dir/performance/<window end stamp>/."""
    labels = dict(labels or {})
    report = {"labels": labels, **evaluate_live(joined, test_metrics)}
    reports = write_reports(report, Path(reports_dir) / JOB / stamp(window_end))
    return JobResult(
        job=JOB,
        window_start=window_start,
        window_end=window_end,
        metrics=performance_metrics(report),
        labels=labels,
        reports=reports,
        details={"outcomes": report["outcomes"], "bands": report["bands"]},
        rows=int(report["live"]["n"] or 0),
    )


# --------------------------------------------------------------------------- inputs


def read_outcome_inputs(features_dir: Path) -> tuple[pd.DataFrame, pd.Series, datetime]:
    """Labels, the snapshot times and labels_as_of from a feature build."""
    features_dir = Path(features_dir)
    manifest = features_dir / "_manifest.json"
    labels_path = features_dir / "labels.parquet"
    profile = features_dir / "account_profile.parquet"
    for path in (manifest, labels_path, profile):
        if not path.exists():
            raise PerformanceInputError(f"{path} not found: run `collectwise build-features`")
    stated = json.loads(manifest.read_text())
    # The builder states labels_as_of only when it differs from the data cutoff.
    labels_as_of = as_utc(datetime.fromisoformat(stated.get("labels_as_of") or stated["as_of"]))
    labels = pd.read_parquet(labels_path, columns=["account_id", "event_timestamp", LABEL])
    snapshots = pd.read_parquet(profile, columns=["event_timestamp"])["event_timestamp"]
    return labels, pd.Series(snapshots.unique()), labels_as_of
