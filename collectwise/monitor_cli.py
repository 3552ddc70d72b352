"""`collectwise monitor ...`: the monitoring jobs from the command line.

Each command reads its inputs (served-features log, registry, feature tables, Feast), runs
one pure job of the monitoring package, writes its reports, logs a one-screen summary and
hands the JobResult to monitoring.job_finish.finish_job, which stores the metrics and evaluates
the alert rules (skipped with --no-alerts). Bad input (an empty window, no matured outcome,
an unknown model) ends with one clear line and exit code 1.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from collectwise.shell import new_app

if TYPE_CHECKING:
    import pandas as pd

    from collectwise.settings import Settings
    from monitoring.job_result import JobResult

app = new_app(
    help="Drift, live performance, online/offline skew and fairness of the served model.",
    no_args_is_help=True,
)
log = logging.getLogger("collectwise.monitor")

WindowOpt = Annotated[str, typer.Option(help="how far back from --end: 12h, 7d, 2w")]
EndOpt = Annotated[str | None, typer.Option(help="window end, ISO date/time in UTC")]
# Jobs on matured outcomes end, by default, where the outcomes end.
OutcomeEndOpt = Annotated[
    str | None,
    typer.Option(help="window end (UTC); default: the newest score with a final outcome"),
]
ModelOpt = Annotated[str, typer.Option(help="champion, challenger or a version (3, v3)")]
PathOpt = Annotated[Path | None, typer.Option(help="defaults from the settings")]
ScorerUrlOpt = Annotated[
    str | None,
    typer.Option(help="the scorer's /metrics URL; default monitoring.scorer_metrics_url"),
]
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
    "experiment": (
        "experiment.champion.auc",
        "experiment.challenger.auc",
        "experiment.auc_difference.difference",
        "experiment.auc_difference.low",
        "experiment.outcomes_still_needed",
    ),
    "skew": ("skew.n_replayed", "skew.max_mismatch_rate", "skew.rows_with_mismatch_rate"),
    "probation": (
        "probation.requests",
        "probation.error_rate",
        "probation.latency_p99_ms",
        "probation.scores",
        "probation.score_psi",
        "probation.rolled_back",
    ),
}


# --------------------------------------------------------------------------- shared


def _platform() -> Settings:
    from collectwise.settings import get_settings  # noqa: PLC0415

    return get_settings()


def _finish(result: JobResult, no_alerts: bool) -> None:
    """Log the summary, then store the metrics and evaluate alerts unless told not to."""
    _summarise(result)
    if no_alerts:
        log.info("--no-alerts: metrics not stored, alert rules not evaluated")
        return
    # Imported here: the alerting side pulls in SQLAlchemy and delivery clients.
    from collectwise.settings import get_settings  # noqa: PLC0415
    from monitoring.job_finish import finish_job  # noqa: PLC0415

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
    from monitoring import job_inputs as inputs  # noqa: PLC0415
    from monitoring.drift import DriftConfig, drift_job, record_drift_score  # noqa: PLC0415
    from training.registry import load_reference, show  # noqa: PLC0415

    settings = _platform()
    span = inputs.window(window, end)
    start: datetime | None = span.start
    stop = span.stop
    meta = show(model)
    log.info("drift of %s v%s over [%s, %s)", meta.name, meta.version, start, stop)
    # The served window is cheap to read and the commonest bad input: read it first.
    current: pd.DataFrame | None = None
    if not batch_as_of:
        current = inputs.served_current(settings, served_dir, span, meta.version)
    reference = load_reference(meta.version)
    if current is None:
        current, stop = inputs.batch_current(settings, batch_as_of or "", meta.version)
        start = None
    result = drift_job(
        reference,
        current,
        window_start=start,
        window_end=stop,
        reports_dir=reports_dir or settings.paths.monitoring_reports_dir,
        config=DriftConfig.from_settings(settings.monitoring),
        labels=inputs.job_labels(meta, model, window, "batch" if batch_as_of else "served"),
    )
    _finish(result, no_alerts)
    if not no_alerts:
        # After the metrics are stored: the version keeps its latest drift score
        # (data_drift_score tag) for the registry and the console.
        record_drift_score(result)


# --------------------------------------------------------------------------- performance


@app.command()
def performance(
    window: WindowOpt = "30d",
    end: OutcomeEndOpt = None,
    model: ModelOpt = "champion",
    served_dir: PathOpt = None,
    features_dir: PathOpt = None,
    reports_dir: PathOpt = None,
    no_alerts: NoAlertsOpt = False,
) -> None:
    """AUC, F1, Brier, calibration and collection success by band on matured outcomes."""
    from monitoring.job_inputs import job_labels, outcomes  # noqa: PLC0415
    from monitoring.performance import performance_job  # noqa: PLC0415

    settings = _platform()
    found = outcomes(settings, window, end, model, served_dir, features_dir)
    result = performance_job(
        found.joined,
        found.meta.metrics,
        window_start=found.span.start,
        window_end=found.span.stop,
        reports_dir=reports_dir or settings.paths.monitoring_reports_dir,
        labels=job_labels(found.meta, model, window, "served"),
    )
    _finish(result, no_alerts)


# --------------------------------------------------------------------------- experiment


@app.command()
def experiment(
    window: WindowOpt = "90d",
    end: OutcomeEndOpt = None,
    champion_version: Annotated[
        int | None, typer.Option(min=1, help="the champion arm's version; default: newest logged")
    ] = None,
    challenger_version: Annotated[
        int | None, typer.Option(min=1, help="the challenger arm's version; default: newest logged")
    ] = None,
    served_dir: PathOpt = None,
    features_dir: PathOpt = None,
    reports_dir: PathOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    no_alerts: NoAlertsOpt = False,
) -> None:
    """Champion vs challenger on matured outcomes: AUC with DeLong intervals, calibration,
    cost and collection success by band, the AUC difference and the outcomes still needed."""
    from monitoring.experiment import run_experiment  # noqa: PLC0415

    settings = _platform()
    versions = {"champion": champion_version, "challenger": challenger_version}
    result, report, table = run_experiment(
        settings, window, end, versions, served_dir, features_dir, reports_dir
    )
    typer.echo(json.dumps(report, indent=2) if as_json else table)
    _finish(result, no_alerts)


# --------------------------------------------------------------------------- fairness


@app.command()
def fairness(
    window: WindowOpt = "30d",
    end: OutcomeEndOpt = None,
    model: ModelOpt = "champion",
    served_dir: PathOpt = None,
    features_dir: PathOpt = None,
    validated_dir: PathOpt = None,
    reports_dir: PathOpt = None,
    no_alerts: NoAlertsOpt = False,
) -> None:
    """Disparate impact by protected attribute on recent scores with matured outcomes."""
    from monitoring.fairness_watch import fairness_job  # noqa: PLC0415
    from monitoring.job_inputs import job_labels, outcomes  # noqa: PLC0415
    from training.dataset import attach_protected  # noqa: PLC0415

    settings = _platform()
    found = outcomes(settings, window, end, model, served_dir, features_dir)
    joined = attach_protected(found.joined, validated_dir or settings.paths.validated_dir)
    result = fairness_job(
        joined,
        found.meta.threshold,
        window_start=found.span.start,
        window_end=found.span.stop,
        reports_dir=reports_dir or settings.paths.monitoring_reports_dir,
        min_ratio=settings.monitoring.fairness_min_ratio,
        min_group_size=settings.monitoring.fairness_min_group_size,
        labels=job_labels(found.meta, model, window, "served"),
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
    from ingestion.feast_store import open_store  # noqa: PLC0415
    from monitoring import job_inputs as inputs  # noqa: PLC0415
    from monitoring.drift import service_features  # noqa: PLC0415
    from monitoring.skew import entity_rows, replay, sample_served, skew_job  # noqa: PLC0415

    settings = _platform()
    job = settings.monitoring
    span = inputs.window(window, end)
    served = inputs.served_rows(served_dir or settings.paths.served_dir, span.start, span.stop)
    logged = sample_served(served, sample or job.skew_sample, job.seed)
    log.info("replaying %d of %d served rows with Feast", len(logged), len(served))
    home = settings if repo is None else settings.model_copy(update={"home": repo})
    replayed = replay(open_store(home, feature_store_yaml), entity_rows(logged))
    result = skew_job(
        logged,
        replayed,
        [spec.name for spec in service_features()],
        window_start=span.start,
        window_end=span.stop,
        reports_dir=reports_dir or settings.paths.monitoring_reports_dir,
        rel_tol=job.skew_rel_tolerance,
        labels={"window": window, "sample": str(len(logged))},
    )
    _finish(result, no_alerts)


# --------------------------------------------------------------------------- serving health


@app.command("serving-health")
def serving_health(
    url: ScorerUrlOpt = None,
    no_alerts: NoAlertsOpt = False,
) -> None:
    """Error rate by status class, latency p50/p99, requests per model version, CPU and
    memory of the scorer since the last run, from its /metrics."""
    from monitoring.serving_health import run_serving_health  # noqa: PLC0415

    _finish(run_serving_health(_platform(), url), no_alerts)


# --------------------------------------------------------------------------- probation


@app.command("probation")
def probation(
    url: ScorerUrlOpt = None,
    no_alerts: NoAlertsOpt = False,
) -> None:
    """Judge a champion on probation (errors, p99 latency, score PSI since its promotion) and
    roll it back to the previous champion when it crosses a limit."""
    from monitoring.probation import SYSTEM, run_probation  # noqa: PLC0415

    settings = _platform()
    result = run_probation(settings, url)
    if result.metrics.get("probation.rolled_back"):
        # The console's audit trail shows the platform's own rollbacks beside people's.
        from admin_app.actions import ActionLog  # noqa: PLC0415

        target = f"v{result.labels['version']} -> v{result.labels.get('rolled_back_to', '?')}"
        ActionLog(settings.paths.users_db).record(
            SYSTEM, "rollback", "ok", target=target, detail=result.labels.get("reasons")
        )
    _finish(result, no_alerts)
