"""`collectwise monitor ...`: the monitoring jobs from the command line.

Each command reads its inputs (served-features log, registry, feature tables, Feast), runs
one pure job of the monitoring package, writes its reports, logs a one-screen summary and
hands the JobResult to monitoring.jobs.finish_job, which stores the metrics and evaluates
the alert rules (skipped with --no-alerts). Bad input (an empty window, no matured outcome,
an unknown model) ends with one clear line and exit code 1.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import pandas as pd

    from collectwise.settings import MonitoringSettings, PathSettings
    from monitoring.results import JobResult
    from training.registry import ModelMetadata

app = typer.Typer(
    help="Drift, live performance, online/offline skew and fairness of the served model.",
    no_args_is_help=True,
)
log = logging.getLogger("collectwise.monitor")

WindowOpt = Annotated[str, typer.Option(help="how far back from --end: 12h, 7d, 2w")]
EndOpt = Annotated[str | None, typer.Option(help="window end, ISO date/time in UTC")]
ModelOpt = Annotated[str, typer.Option(help="champion, challenger or a version (3, v3)")]
PathOpt = Annotated[Path | None, typer.Option(help="defaults from the settings")]
NoAlertsOpt = Annotated[
    bool, typer.Option("--no-alerts", help="write reports only; store no metrics, raise no alert")
]
# Headline metrics of each job for the summary; per-feature metrics go to the reports.
HEADLINES = {
    "drift": ("drift.share_drifted", "drift.n_drifted", "drift.n_features", "drift.score_psi"),
    "performance": (
        "performance.n_matured",
        "performance.auc",
        "performance.test_auc",
        "performance.auc_drop",
        "performance.f1",
        "performance.brier",
    ),
    "skew": ("skew.n_replayed", "skew.max_mismatch_rate", "skew.rows_with_mismatch_rate"),
}


# --------------------------------------------------------------------------- shared


@contextmanager
def _clear_errors(*errors: type[BaseException]) -> Iterator[None]:
    """A domain error becomes one clear line and exit code 1, without a traceback."""
    try:
        yield
    except errors as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        raise typer.Exit(code=1) from exc


def _settings() -> MonitoringSettings:
    from collectwise.settings import get_settings  # noqa: PLC0415

    return get_settings().monitoring


def _paths() -> PathSettings:
    from collectwise.settings import get_settings  # noqa: PLC0415

    return get_settings().paths


def _window(
    window: str, end: str | None, default_end: datetime | None = None
) -> tuple[datetime, datetime, timedelta]:
    from monitoring.served import WindowError, parse_moment, parse_window  # noqa: PLC0415

    with _clear_errors(WindowError):
        span = parse_window(window)
        stop = parse_moment(end, default_end)
    return stop - span, stop, span


def _model(model: str) -> ModelMetadata:
    from training.registry import RegistryError, show  # noqa: PLC0415

    with _clear_errors(RegistryError):
        return show(model)


def _served(directory: Path, start: datetime, end: datetime) -> pd.DataFrame:
    from monitoring.served import read_served  # noqa: PLC0415

    served = read_served(directory, start, end)
    if served.empty:
        log.error("no served rows in [%s, %s) under %s: nothing to monitor", start, end, directory)
        raise typer.Exit(code=1)
    return served


def _of_version(served: pd.DataFrame, version: int) -> pd.DataFrame:
    """Only the rows this model version scored: another version's scores say nothing of it."""
    if "model_version" not in served.columns:
        return served
    keep = served[served["model_version"].astype("Int64") == version]
    if keep.empty:
        versions = sorted(served["model_version"].dropna().unique().tolist())
        log.error("no row in the window was scored by v%s (scored by %s)", version, versions)
        raise typer.Exit(code=1)
    return keep.reset_index(drop=True)


def _finish(result: JobResult, no_alerts: bool) -> None:
    """Log the summary, then store the metrics and evaluate alerts unless told not to."""
    _summarise(result)
    if no_alerts:
        log.info("--no-alerts: metrics not stored, alert rules not evaluated")
        return
    # Imported here: the alerting side pulls in SQLAlchemy and delivery clients.
    from collectwise.settings import get_settings  # noqa: PLC0415
    from monitoring.jobs import finish_job  # noqa: PLC0415

    alerts = finish_job(result, get_settings().monitoring)
    opened = ", ".join(f"#{getattr(a, 'id', '?')} {getattr(a, 'rule_name', a)}" for a in alerts)
    log.info("%d new alert(s)%s", len(alerts), f": {opened}" if alerts else "")


def _summarise(result: JobResult) -> None:
    log.info(
        "%s over [%s, %s): %d rows, labels %s",
        result.job,
        result.window_start,
        result.window_end,
        result.rows,
        result.labels,
    )
    for name in HEADLINES.get(result.job, ()):
        if name in result.metrics:
            log.info("  %-40s %.4f", name, result.metrics[name])
    if result.job == "fairness":
        for name, value in sorted(result.metrics.items()):
            log.info("  %-40s %.4f", name, value)
    for key in ("drifted", "skipped", "skewed", "failing", "not_comparable", "outcomes"):
        if result.details.get(key):
            log.info("  %s: %s", key, result.details[key])
    for kind, path in result.reports.items():
        log.info("  report %-8s %s", kind, path)


# --------------------------------------------------------------------------- drift


@app.command()
def drift(
    window: WindowOpt = "7d",
    end: EndOpt = None,
    model: ModelOpt = "champion",
    batch_as_of: Annotated[
        str | None,
        typer.Option(help="compare features built as of this date (as training builds them)"),
    ] = None,
    served_dir: PathOpt = None,
    reports_dir: PathOpt = None,
    no_alerts: NoAlertsOpt = False,
) -> None:
    """Feature and score drift: the model's training reference vs the served window."""
    from monitoring.drift import DriftConfig, DriftInputError, drift_job  # noqa: PLC0415
    from training.registry import RegistryError, load_reference  # noqa: PLC0415

    settings = _settings()
    window_start, stop, _ = _window(window, end)
    start: datetime | None = window_start
    meta = _model(model)
    log.info("drift of %s v%s over [%s, %s)", meta.name, meta.version, start, stop)
    # The served window is cheap to read and the commonest bad input: read it first.
    current: pd.DataFrame | None = None
    if not batch_as_of:
        current = _served_current(settings, served_dir, window_start, stop, meta.version)
    with _clear_errors(RegistryError):
        reference = load_reference(meta.version)
    if current is None:
        current, start, stop = _batch_current(batch_as_of or "", meta.version)
    labels = _labels(meta, model, window, "batch" if batch_as_of else "served")
    with _clear_errors(DriftInputError):
        result = drift_job(
            reference,
            current,
            window_start=start,
            window_end=stop,
            reports_dir=reports_dir or _paths().monitoring_reports_dir,
            config=DriftConfig.from_settings(settings),
            labels=labels,
        )
    _finish(result, no_alerts)


def _labels(meta: ModelMetadata, model: str, window: str, source: str) -> dict[str, str]:
    return {
        "model_name": meta.name,
        "model_version": str(meta.version),
        "model": model,
        "window": window,
        "source": source,
    }


def _served_current(
    settings: MonitoringSettings,
    served_dir: Path | None,
    start: datetime,
    stop: datetime,
    version: int,
) -> pd.DataFrame:
    from monitoring.drift import current_from_served  # noqa: PLC0415

    served = _served(served_dir or _paths().served_dir, start, stop)
    return current_from_served(
        served,
        model_version=version,
        dedupe_accounts=settings.drift_dedupe_accounts,
        max_rows=settings.drift_max_rows,
        seed=settings.seed,
    )


def _batch_current(as_of_text: str, version: int) -> tuple[pd.DataFrame, None, datetime]:
    """Features of every account of the newest snapshot at or before the date, scored."""
    from collectwise.settings import get_settings  # noqa: PLC0415
    from ingestion.store import open_store  # noqa: PLC0415
    from monitoring.drift import DriftInputError, batch_current, batch_population  # noqa: PLC0415
    from monitoring.served import WindowError, parse_moment  # noqa: PLC0415
    from training.registry import load_version  # noqa: PLC0415

    with _clear_errors(WindowError):
        as_of = parse_moment(as_of_text)
    s = get_settings()
    with _clear_errors(DriftInputError):
        population = batch_population(s.paths.features_dir, as_of)
        log.info("batch drift: %d accounts as of %s", len(population), as_of)
        store = open_store(s)
        model = load_version(version).model
        return batch_current(store, population, as_of, model), None, as_of


# --------------------------------------------------------------------------- performance


def _outcomes(
    window: str,
    end: str | None,
    model: str,
    served_dir: Path | None,
    features_dir: Path | None,
) -> tuple[pd.DataFrame, ModelMetadata, datetime, datetime]:
    """Served scores of the model in the window, joined to their (matured) outcomes."""
    from collectwise.settings import get_settings  # noqa: PLC0415
    from monitoring.performance import (  # noqa: PLC0415
        Maturity,
        PerformanceInputError,
        attach_outcomes,
        read_outcome_inputs,
    )

    maturity = Maturity()
    with _clear_errors(PerformanceInputError):
        labels, snapshots, labels_as_of = read_outcome_inputs(
            features_dir or get_settings().paths.features_dir
        )
    # By default the window ends at the newest score whose outcome is final by now.
    start, stop, _ = _window(window, end, maturity.latest_matured_score(labels_as_of))
    meta = _model(model)
    served = _of_version(_served(served_dir or _paths().served_dir, start, stop), meta.version)
    joined = attach_outcomes(served, labels, snapshots, labels_as_of, maturity)
    log.info("outcomes of %d scored account snapshots: %s", len(joined), _counts(joined))
    return joined, meta, start, stop


def _counts(joined: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in joined["outcome"].value_counts().items()}


@app.command()
def performance(
    window: WindowOpt = "30d",
    end: Annotated[
        str | None,
        typer.Option(help="window end (UTC); default: the newest score with a final outcome"),
    ] = None,
    model: ModelOpt = "champion",
    served_dir: PathOpt = None,
    features_dir: PathOpt = None,
    reports_dir: PathOpt = None,
    no_alerts: NoAlertsOpt = False,
) -> None:
    """AUC, F1, Brier, calibration and collection success by band on matured outcomes."""
    from monitoring.performance import PerformanceInputError, performance_job  # noqa: PLC0415

    joined, meta, start, stop = _outcomes(window, end, model, served_dir, features_dir)
    with _clear_errors(PerformanceInputError):
        result = performance_job(
            joined,
            meta.metrics,
            window_start=start,
            window_end=stop,
            reports_dir=reports_dir or _paths().monitoring_reports_dir,
            labels=_labels(meta, model, window, "served"),
        )
    _finish(result, no_alerts)


# --------------------------------------------------------------------------- fairness


@app.command()
def fairness(
    window: WindowOpt = "30d",
    end: Annotated[
        str | None,
        typer.Option(help="window end (UTC); default: the newest score with a final outcome"),
    ] = None,
    model: ModelOpt = "champion",
    served_dir: PathOpt = None,
    features_dir: PathOpt = None,
    validated_dir: PathOpt = None,
    reports_dir: PathOpt = None,
    no_alerts: NoAlertsOpt = False,
) -> None:
    """Disparate impact by protected attribute on recent scores with matured outcomes."""
    from collectwise.settings import get_settings  # noqa: PLC0415
    from monitoring.fairness_watch import fairness_job  # noqa: PLC0415
    from monitoring.performance import PerformanceInputError  # noqa: PLC0415
    from training.dataset import DatasetBuildError, attach_protected  # noqa: PLC0415

    settings = _settings()
    joined, meta, start, stop = _outcomes(window, end, model, served_dir, features_dir)
    with _clear_errors(DatasetBuildError, PerformanceInputError, ValueError):
        joined = attach_protected(joined, validated_dir or get_settings().paths.validated_dir)
        result = fairness_job(
            joined,
            meta.threshold,
            window_start=start,
            window_end=stop,
            reports_dir=reports_dir or _paths().monitoring_reports_dir,
            min_ratio=settings.fairness_min_ratio,
            min_group_size=settings.fairness_min_group_size,
            labels=_labels(meta, model, window, "served"),
        )
    _finish(result, no_alerts)


# --------------------------------------------------------------------------- skew


@app.command()
def skew(
    window: WindowOpt = "1d",
    end: EndOpt = None,
    sample: Annotated[int | None, typer.Option(min=1, help="rows to replay")] = None,
    served_dir: PathOpt = None,
    repo: Annotated[Path | None, typer.Option(help="Feast repo root")] = None,
    feature_store_yaml: Annotated[Path | None, typer.Option(help="Feast profile yaml")] = None,
    reports_dir: PathOpt = None,
    no_alerts: NoAlertsOpt = False,
) -> None:
    """Replay logged online vectors with get_historical_features; mismatch rate per feature."""
    from collectwise.settings import get_settings  # noqa: PLC0415
    from ingestion.store import open_store  # noqa: PLC0415
    from monitoring.drift import service_features  # noqa: PLC0415
    from monitoring.skew import SkewInputError, entity_rows, replay, sample_served, skew_job  # noqa: PLC0415

    settings, s = _settings(), get_settings()
    start, stop, _ = _window(window, end)
    served = _served(served_dir or _paths().served_dir, start, stop)
    logged = sample_served(served, sample or settings.skew_sample, settings.seed)
    log.info("replaying %d of %d served rows with Feast", len(logged), len(served))
    home = s if repo is None else s.model_copy(update={"home": repo})
    store = open_store(home, feature_store_yaml)
    with _clear_errors(SkewInputError):
        replayed = replay(store, entity_rows(logged))
        result = skew_job(
            logged,
            replayed,
            [spec.name for spec in service_features()],
            window_start=start,
            window_end=stop,
            reports_dir=reports_dir or _paths().monitoring_reports_dir,
            rel_tol=settings.skew_rel_tolerance,
            labels={"window": window, "sample": str(len(logged))},
        )
    _finish(result, no_alerts)
