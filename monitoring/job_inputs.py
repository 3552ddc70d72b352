"""What each monitoring job reads, assembled in one place: the window asked for, the served
rows of that window (of one model version), the matured outcomes joined to them, and the
population of a feature snapshot scored as training would score it.

The `collectwise monitor` commands and any scheduler call these, then the job itself
(drift_job, performance_job, fairness_job, skew_job). Every problem with the input is a
domain error naming what is missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from collectwise.errors import InvalidInputError
from collectwise.settings import Settings
from monitoring.served import SCORING_ROUTES, parse_moment, parse_window, read_served

if TYPE_CHECKING:
    from training.registry import ModelMetadata

log = logging.getLogger(__name__)


class NothingToMonitorError(InvalidInputError):
    """The window holds no served rows (of the model asked for); the message says where."""


@dataclass(frozen=True)
class Window:
    start: datetime
    stop: datetime
    span: timedelta


def window(text: str, end: str | None, default_end: datetime | None = None) -> Window:
    """'7d' back from `end` (ISO, UTC), or from default_end, or from now."""
    span = parse_window(text)
    stop = parse_moment(end, default_end)
    return Window(stop - span, stop, span)


def served_rows(directory: Path, start: datetime, stop: datetime) -> pd.DataFrame:
    """The served-feature log's rows scored in [start, stop) by the scoring routes."""
    served = read_served(directory, start, stop)
    if "route" in served.columns:
        served = served[served["route"].isin(SCORING_ROUTES)].reset_index(drop=True)
    if served.empty:
        raise NothingToMonitorError(
            f"no served rows in [{start}, {stop}) under {directory}: nothing to monitor"
        )
    return served


def of_version(served: pd.DataFrame, version: int) -> pd.DataFrame:
    """Only the rows this model version scored: another version's scores say nothing of it."""
    if "model_version" not in served.columns:
        return served
    keep = served[served["model_version"].astype("Int64") == version]
    if keep.empty:
        versions = sorted(served["model_version"].dropna().unique().tolist())
        raise NothingToMonitorError(
            f"no row in the window was scored by v{version} (scored by {versions})"
        )
    return keep.reset_index(drop=True)


def served_current(
    settings: Settings, served_dir: Path | None, span: Window, version: int
) -> pd.DataFrame:
    """The drift job's current data: the window's served vectors of one model version."""
    from monitoring.drift import current_from_served  # noqa: PLC0415

    served = served_rows(served_dir or settings.paths.served_dir, span.start, span.stop)
    job = settings.monitoring
    return current_from_served(
        served,
        model_version=version,
        dedupe_accounts=job.drift_dedupe_accounts,
        max_rows=job.drift_max_rows,
        seed=job.seed,
    )


def batch_current(
    settings: Settings, as_of_text: str, version: int
) -> tuple[pd.DataFrame, datetime]:
    """Every account of the newest snapshot at or before the date, built as training builds
    it and scored by the version: drift without served traffic."""
    from ingestion.feast_store import open_store  # noqa: PLC0415
    from monitoring.drift import batch_current as scored_population  # noqa: PLC0415
    from monitoring.drift import batch_population  # noqa: PLC0415
    from training.registry import load_version  # noqa: PLC0415

    as_of = parse_moment(as_of_text)
    population = batch_population(settings.paths.features_dir, as_of)
    log.info("batch drift: %d accounts as of %s", len(population), as_of)
    model = load_version(version).model
    return scored_population(open_store(settings), population, as_of, model), as_of


@dataclass(frozen=True)
class Outcomes:
    joined: pd.DataFrame
    meta: ModelMetadata
    span: Window


def outcomes(
    settings: Settings,
    span_text: str,
    end: str | None,
    model: str,
    served_dir: Path | None = None,
    features_dir: Path | None = None,
) -> Outcomes:
    """Served scores of the model in the window, joined to their outcomes; by default the
    window ends at the newest score whose outcome is final by the labels' date."""
    from monitoring.performance import Maturity, attach_outcomes, read_outcome_inputs  # noqa: PLC0415
    from training.registry import show  # noqa: PLC0415

    maturity = Maturity()
    labels, snapshots, labels_as_of = read_outcome_inputs(
        features_dir or settings.paths.features_dir
    )
    span = window(span_text, end, maturity.latest_matured_score(labels_as_of))
    meta = show(model)
    served = served_rows(served_dir or settings.paths.served_dir, span.start, span.stop)
    joined = attach_outcomes(
        of_version(served, meta.version), labels, snapshots, labels_as_of, maturity
    )
    counts = {str(k): int(v) for k, v in joined["outcome"].value_counts().items()}
    log.info("outcomes of %d scored account snapshots: %s", len(joined), counts)
    return Outcomes(joined, meta, span)


def job_labels(meta: ModelMetadata, model: str, span_text: str, source: str) -> dict[str, str]:
    """The labels a job's metrics are stored under (which model, which window, which data)."""
    return {
        "model_name": meta.name,
        "model_version": str(meta.version),
        "model": model,
        "window": span_text,
        "source": source,
    }
