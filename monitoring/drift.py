"""Feature and score drift: the champion's training reference against what was served.

The columns come from the model's feature service (feature_repo definitions, built in
memory), so drift watches exactly what training and serving share:
- numeric features (Float/Int): PSI;
- the categorical payment_channel_preference: Jensen-Shannon distance;
- array features (payment_history, balance_history, days_past_due_history) expand to one
  column per element, named like training.model_matrix names them (`<name>_0` = newest month):
  each element is one month's value, and a shock shows in the newest months before the
  6-month aggregates move;
- timestamps (overdue_since) are skipped: a date moves with the calendar, not with the
  population, and its information is in the overdue counts that are watched.
Score drift compares the model's `probability` on both sides with PSI.

Evidently (0.7 API: Report, Dataset, DataDefinition, DataDriftPreset, ValueDrift) computes
the statistics and renders the HTML; this module picks columns, guards the inputs and turns
the result into flat metrics. Everything up to the report files is a pure function of
(reference, current) frames, so tests need neither MLflow nor Feast.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from collectwise.errors import InvalidInputError
from feature_repo.feature_services import COLLECTION_RISK_V1
from ingestion import retrieval
from monitoring.job_result import JobResult
from monitoring.served import stamp
from training.model_matrix import HISTORY_LENGTH, expand_arrays

if TYPE_CHECKING:
    from feast import FeatureStore
    from mlflow import MlflowClient

    from collectwise.settings import MlflowSettings, MonitoringSettings
    from training.scoring_model import ScoringModel

log = logging.getLogger(__name__)

JOB = "drift"
SCORE_COLUMN = "probability"
Kind = Literal["numeric", "categorical", "array", "skip"]
_NUMERIC_DTYPES = {"Float32", "Float64", "Int32", "Int64", "Bool"}
_ARRAY_DTYPES = {"Array(Float32)", "Array(Float64)", "Array(Int32)", "Array(Int64)"}


class DriftInputError(InvalidInputError, ValueError):
    """The frames cannot be compared (empty window, nothing in common); the message says why."""


@dataclass(frozen=True)
class FeatureSpec:
    """One service feature and how drift treats it."""

    name: str
    kind: Kind
    reason: str = ""

    def columns(self) -> list[str]:
        """The frame columns the feature becomes once arrays are expanded."""
        if self.kind == "array":
            return [f"{self.name}_{i}" for i in range(HISTORY_LENGTH)]
        return [] if self.kind == "skip" else [self.name]


@dataclass(frozen=True)
class DriftConfig:
    num_method: str = "psi"
    cat_method: str = "jensenshannon"
    num_threshold: float = 0.1
    cat_threshold: float = 0.1
    score_threshold: float = 0.1
    drift_share: float = 0.5

    @classmethod
    def from_settings(cls, settings: MonitoringSettings) -> DriftConfig:
        return cls(
            num_method=settings.drift_num_method,
            cat_method=settings.drift_cat_method,
            num_threshold=settings.drift_num_threshold,
            cat_threshold=settings.drift_cat_threshold,
            score_threshold=settings.score_drift_threshold,
            drift_share=settings.drift_share,
        )


@dataclass
class DriftOutcome:
    """What one comparison found; `snapshot` is Evidently's, for the HTML and JSON."""

    features: pd.DataFrame
    score: dict[str, Any] | None
    skipped: dict[str, str]
    dataset_drift: bool
    n_reference: int
    n_current: int
    snapshot: Any = field(default=None, repr=False)

    @property
    def n_drifted(self) -> int:
        return int(self.features["drifted"].sum()) if len(self.features) else 0

    @property
    def share_drifted(self) -> float:
        return self.n_drifted / len(self.features) if len(self.features) else 0.0


# --------------------------------------------------------------------------- columns


def classify(name: str, dtype: str) -> FeatureSpec:
    """How drift treats a feature of a Feast dtype (str(Field.dtype))."""
    if dtype in _NUMERIC_DTYPES:
        return FeatureSpec(name, "numeric")
    if dtype == "String":
        return FeatureSpec(name, "categorical")
    if dtype in _ARRAY_DTYPES:
        return FeatureSpec(name, "array")
    if dtype == "UnixTimestamp":
        return FeatureSpec(name, "skip", "timestamp: moves with the calendar, not the data")
    return FeatureSpec(name, "skip", f"type {dtype} has no drift statistic here")


@cache
def service_features(service_name: str = COLLECTION_RISK_V1) -> tuple[FeatureSpec, ...]:
    """The service's features in service order, classified for drift."""
    # Imported here: building Feast objects imports Feast, which costs seconds.
    from feature_repo.definitions import build_definitions  # noqa: PLC0415

    # The path only feeds the sources' file locations, which are never read here.
    services = {s.name: s for s in build_definitions(Path(".")).services}
    if service_name not in services:
        raise KeyError(f"unknown feature service {service_name!r}; known: {sorted(services)}")
    return tuple(
        classify(f"{p.name_to_use()}__{f.name}", str(f.dtype))
        for p in services[service_name].feature_view_projections
        for f in p.features
    )


def _array_block(values: pd.Series, width: int) -> np.ndarray:
    """Lists, numpy arrays or missing per row -> (rows, width) floats, NaN where short."""
    objects = np.empty(len(values), dtype=object)
    # A scalar NaN or None means no history; expand_arrays takes None for that.
    objects[:] = [None if v is None or np.ndim(v) == 0 else v for v in values.to_numpy(object)]
    # The model matrix's own expansion, so drift sees arrays exactly as the model does.
    return expand_arrays(objects, width)


def prepare(
    frame: pd.DataFrame, specs: tuple[FeatureSpec, ...] | list[FeatureSpec]
) -> pd.DataFrame:
    """The drift columns of a frame: arrays expanded, numerics float, categories str or NaN.

    A feature missing from the frame is simply absent here; plan_columns reports it.
    """
    parts: dict[str, Any] = {}
    for spec in specs:
        if spec.name not in frame.columns or spec.kind == "skip":
            continue
        column = frame[spec.name]
        if spec.kind == "array":
            block = _array_block(column, HISTORY_LENGTH)
            parts.update({name: block[:, i] for i, name in enumerate(spec.columns())})
        elif spec.kind == "numeric":
            parts[spec.name] = pd.to_numeric(column, errors="coerce").astype("float64")
        else:
            parts[spec.name] = column.astype(str).where(column.notna(), np.nan)
    if SCORE_COLUMN in frame.columns:
        parts[SCORE_COLUMN] = pd.to_numeric(frame[SCORE_COLUMN], errors="coerce").astype(float)
    return pd.DataFrame(parts, index=frame.index).reset_index(drop=True)


@dataclass(frozen=True)
class ColumnPlan:
    numeric: list[str]
    categorical: list[str]
    skipped: dict[str, str]
    score: bool


def plan_columns(
    specs: tuple[FeatureSpec, ...] | list[FeatureSpec],
    reference: pd.DataFrame,
    current: pd.DataFrame,
) -> ColumnPlan:
    """Which prepared columns both sides can compare, and why each other one is left out."""
    numeric: list[str] = []
    categorical: list[str] = []
    skipped: dict[str, str] = {}
    for spec in specs:
        if spec.kind == "skip":
            skipped[spec.name] = spec.reason
            continue
        for column in spec.columns():
            why = _unusable(column, reference, current)
            if why:
                skipped[column] = why
            elif spec.kind == "categorical":
                categorical.append(column)
            else:
                numeric.append(column)
    score_why = _unusable(SCORE_COLUMN, reference, current)
    if score_why:
        skipped[SCORE_COLUMN] = score_why
    return ColumnPlan(numeric, categorical, skipped, score=not score_why)


def _unusable(column: str, reference: pd.DataFrame, current: pd.DataFrame) -> str:
    for side, frame in (("reference", reference), ("current", current)):
        if column not in frame.columns:
            return f"missing from the {side} data"
    for side, frame in (("reference", reference), ("current", current)):
        if frame[column].isna().all():
            return f"all values null in the {side} data"
    return ""


# --------------------------------------------------------------------------- drift


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    specs: tuple[FeatureSpec, ...] | list[FeatureSpec],
    config: DriftConfig | None = None,
) -> DriftOutcome:
    """Compare raw full-named frames (as Feast and the served log hold them).

    Raises DriftInputError when either side has no rows or no column can be compared;
    all-null and one-sided columns are skipped and listed in `skipped`.
    """
    config = config or DriftConfig()
    if current.empty:
        raise DriftInputError("the current data has no rows (nothing was served in the window)")
    if reference.empty:
        raise DriftInputError("the reference data has no rows")
    ref, cur = prepare(reference, specs), prepare(current, specs)
    plan = plan_columns(specs, ref, cur)
    for column, why in plan.skipped.items():
        log.warning("drift: %s skipped: %s", column, why)
    if not plan.numeric and not plan.categorical:
        raise DriftInputError(f"no feature column can be compared: {plan.skipped}")
    snapshot = _run_report(ref, cur, plan, config)
    features, score = _read_snapshot(snapshot, plan)
    outcome = DriftOutcome(
        features=features,
        score=score,
        skipped=plan.skipped,
        dataset_drift=False,
        n_reference=len(ref),
        n_current=len(cur),
        snapshot=snapshot,
    )
    outcome.dataset_drift = outcome.share_drifted >= config.drift_share
    return outcome


def _run_report(ref: pd.DataFrame, cur: pd.DataFrame, plan: ColumnPlan, config: DriftConfig) -> Any:
    # Evidently costs seconds to import; only a drift run pays for it.
    from evidently import DataDefinition, Dataset, Report  # noqa: PLC0415
    from evidently.metrics import ValueDrift  # noqa: PLC0415
    from evidently.presets import DataDriftPreset  # noqa: PLC0415

    numeric = plan.numeric + ([SCORE_COLUMN] if plan.score else [])
    columns = numeric + plan.categorical
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=plan.categorical)
    metrics: list[Any] = [
        DataDriftPreset(
            columns=plan.numeric + plan.categorical,
            num_method=config.num_method,
            cat_method=config.cat_method,
            num_threshold=config.num_threshold,
            cat_threshold=config.cat_threshold,
            drift_share=config.drift_share,
        )
    ]
    if plan.score:
        metrics.append(
            ValueDrift(
                column=SCORE_COLUMN, method=config.num_method, threshold=config.score_threshold
            )
        )
    report = Report(metrics, include_tests=True)
    return report.run(
        Dataset.from_pandas(cur[columns], data_definition=definition),
        Dataset.from_pandas(ref[columns], data_definition=definition),
    )


def score_psi(reference: pd.Series, current: pd.Series) -> float:
    """PSI of one score column, current against reference, as the drift job computes it
    (Evidently's ValueDrift): for a probation's few hundred scores, not a whole report."""
    from evidently import DataDefinition, Dataset, Report  # noqa: PLC0415
    from evidently.metrics import ValueDrift  # noqa: PLC0415

    if current.dropna().empty or reference.dropna().empty:
        raise DriftInputError("score PSI needs scores on both sides")
    definition = DataDefinition(numerical_columns=[SCORE_COLUMN])
    frames = [
        pd.DataFrame({SCORE_COLUMN: side.astype("float64").to_numpy()})
        for side in (current, reference)
    ]
    sides = [Dataset.from_pandas(frame, data_definition=definition) for frame in frames]
    result = Report([ValueDrift(column=SCORE_COLUMN, method="psi")]).run(*sides).dict()
    return float(result["metrics"][0]["value"])


def _read_snapshot(snapshot: Any, plan: ColumnPlan) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """Per-column score, method, threshold and verdict from Evidently's result dict."""
    result = snapshot.dict()
    # A column drifted when its ValueDrift test failed: Evidently knows whether the method
    # is a distance (drift above the threshold) or a p-value (drift below it).
    failed = {
        t["metric_config"]["metric_id"]
        for t in result["tests"]
        if str(getattr(t["status"], "value", t["status"])) == "FAIL"
    }
    rows: list[dict[str, Any]] = []
    for metric in result["metrics"]:
        conf = metric["config"]
        if not str(conf.get("type", "")).endswith(":ValueDrift"):
            continue
        rows.append(
            {
                "column": conf["column"],
                "method": conf.get("method") or "",
                "threshold": float(conf.get("threshold") or np.nan),
                "score": float(metric["value"]),
                "drifted": metric["id"] in failed,
            }
        )
    table = pd.DataFrame(rows, columns=["column", "method", "threshold", "score", "drifted"])
    kinds = {c: "numeric" for c in plan.numeric} | {c: "categorical" for c in plan.categorical}
    features = table[table["column"].isin(list(kinds))].copy()
    features.insert(1, "kind", features["column"].map(kinds))
    score_rows = table[table["column"] == SCORE_COLUMN].to_dict("records")
    score = {str(k): v for k, v in score_rows[0].items()} if score_rows else None
    return features.reset_index(drop=True), score


# --------------------------------------------------------------------------- results


def drift_metrics(outcome: DriftOutcome) -> dict[str, float]:
    """Flat metrics for the store and the alert rules."""
    metrics: dict[str, float] = {
        "drift.share_drifted": round(outcome.share_drifted, 6),
        "drift.n_drifted": float(outcome.n_drifted),
        "drift.n_features": float(len(outcome.features)),
        "drift.n_skipped": float(len(outcome.skipped)),
        "drift.dataset_drift": float(outcome.dataset_drift),
        "drift.n_current": float(outcome.n_current),
        "drift.n_reference": float(outcome.n_reference),
    }
    for row in outcome.features.to_dict("records"):
        metrics[f"drift.feature.{row['column']}.{row['method']}"] = float(row["score"])
        metrics[f"drift.feature.{row['column']}.drifted"] = float(bool(row["drifted"]))
    if outcome.score is not None:
        metrics[f"drift.score_{outcome.score['method']}"] = float(outcome.score["score"])
        metrics["drift.score_drifted"] = float(bool(outcome.score["drifted"]))
    return metrics


def summary(outcome: DriftOutcome, labels: dict[str, str]) -> dict[str, Any]:
    """The JSON beside Evidently's: what was compared, found and left out."""
    return {
        "labels": labels,
        "rows": {"reference": outcome.n_reference, "current": outcome.n_current},
        "dataset_drift": outcome.dataset_drift,
        "share_drifted": outcome.share_drifted,
        "n_drifted": outcome.n_drifted,
        "drifted": outcome.features.loc[outcome.features["drifted"], "column"].tolist(),
        "score": outcome.score,
        "features": outcome.features.to_dict("records"),
        "skipped": outcome.skipped,
    }


def write_reports(outcome: DriftOutcome, out_dir: Path, labels: dict[str, str]) -> dict[str, Path]:
    """report.html and evidently.json (Evidently's), summary.json (ours) under out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "html": out_dir / "report.html",
        "json": out_dir / "evidently.json",
        "summary": out_dir / "summary.json",
    }
    if outcome.snapshot is not None:
        # save_html silently writes nothing when handed a Path: it wants a str.
        outcome.snapshot.save_html(str(paths["html"]))
        outcome.snapshot.save_json(str(paths["json"]))
    paths["summary"].write_text(json.dumps(summary(outcome, labels), indent=2, default=_jsonable))
    return paths


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def drift_job(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    window_start: datetime | None,
    window_end: datetime,
    reports_dir: Path,
    specs: tuple[FeatureSpec, ...] | list[FeatureSpec] | None = None,
    config: DriftConfig | None = None,
    labels: dict[str, str] | None = None,
) -> JobResult:
    """compute_drift + reports under reports_dir/drift/<window end stamp>/ as a JobResult."""
    specs = service_features() if specs is None else specs
    labels = dict(labels or {})
    outcome = compute_drift(reference, current, specs, config)
    reports = write_reports(outcome, Path(reports_dir) / JOB / stamp(window_end), labels)
    return JobResult(
        job=JOB,
        window_start=window_start,
        window_end=window_end,
        metrics=drift_metrics(outcome),
        labels=labels,
        reports=reports,
        details={
            "skipped": outcome.skipped,
            "drifted": outcome.features.loc[outcome.features["drifted"], "column"].tolist(),
            "score": outcome.score,
        },
        rows=outcome.n_current,
    )


def record_drift_score(
    result: JobResult, *, client: MlflowClient | None = None, settings: MlflowSettings | None = None
) -> float | None:
    """Tag the drift run's model version with its data_drift_score (the share of drifted
    features) in the registry; None, and nothing tagged, when the run names no version."""
    from training.registry import record_data_drift  # noqa: PLC0415

    version = result.labels.get("model_version")
    score = result.metrics.get("drift.share_drifted")
    if not version or score is None:
        log.info("drift run names no model version: no data_drift_score recorded")
        return None
    record_data_drift(version, float(score), result.window_end, client=client, settings=settings)
    return float(score)


# --------------------------------------------------------------------------- inputs


def current_from_served(
    served: pd.DataFrame,
    *,
    model_version: int | None = None,
    dedupe_accounts: bool = True,
    max_rows: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The served rows to compare: newest per account, scores only of `model_version`.

    Scores of another version (an older champion inside the window) would mix two models'
    scales, so they become NaN: they still count for feature drift, not for score drift.
    """
    frame = served
    if dedupe_accounts and "account_id" in frame.columns and len(frame):
        frame = frame.sort_values("scored_at", kind="stable").drop_duplicates(
            "account_id", keep="last"
        )
    if max_rows is not None and len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=seed)
    frame = frame.copy()
    if model_version is not None and {"model_version", SCORE_COLUMN} <= set(frame.columns):
        other = pd.to_numeric(frame["model_version"], errors="coerce") != model_version
        frame.loc[other, SCORE_COLUMN] = np.nan
    return frame.reset_index(drop=True)


def batch_population(features_dir: Path, as_of: datetime) -> pd.DataFrame:
    """Accounts (and customers) of the newest snapshot at or before as_of."""
    from ingestion.features import connect  # noqa: PLC0415

    path = Path(features_dir) / "account_profile.parquet"
    if not path.exists():
        raise DriftInputError(f"{path} not found: run `collectwise build-features` first")
    sql = (
        f"WITH p AS (SELECT * FROM read_parquet('{path}')) "  # nosec B608  # the path is ours, values are parameters
        "SELECT account_id, customer_id FROM p WHERE event_timestamp = "
        "(SELECT max(event_timestamp) FROM p WHERE event_timestamp <= CAST($as_of AS TIMESTAMPTZ)) "
        "ORDER BY account_id"
    )
    con = connect()
    try:
        return con.execute(sql, {"as_of": as_of}).df()
    finally:
        con.close()


def batch_current(
    store: FeatureStore,
    population: pd.DataFrame,
    as_of: datetime,
    model: ScoringModel,
    service_name: str = COLLECTION_RISK_V1,
) -> pd.DataFrame:
    """Features of a population as of a moment, built as training builds them, and scored.

    Entity rows carry as_of as event and scoring time and no reported income, and Feast
    reads with filter_by_created_timestamp (ingestion.retrieval, as training reads); rows
    keep the population's order.
    """
    from training.batch_scoring import score_vectors  # noqa: PLC0415

    if population.empty:
        raise DriftInputError(f"no account had a feature snapshot at or before {as_of}")
    entities = retrieval.entity_rows(population["account_id"], population["customer_id"], as_of)
    frame = retrieval.point_in_time_vectors(store, entities, service_name)
    frame[SCORE_COLUMN] = score_vectors(model, frame)["probability"].to_numpy()
    return frame
