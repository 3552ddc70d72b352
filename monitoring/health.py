"""System health for the admin console and `collectwise alerts health`.

Three questions, each a pure function over what was read plus a thin reader:
- did the pipeline stages run, and how did the last run of each end (monitoring store);
- are the feature tables fresh: newest event_timestamp per feature view against now and
  against the view's ttl (a view older than its ttl serves nulls online);
- how is the scorer doing: latency per route, errors by type, scores by band, from its
  Prometheus /metrics text. These are counters since the scorer started, not a window.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import requests
from prometheus_client.parser import text_string_to_metric_families

from monitoring.monitor_db import MonitoringStore, PipelineRun

log = logging.getLogger(__name__)

LATENCY = "collectwise_request_latency_seconds"
ERRORS = "collectwise_errors_total"
SCORES = "collectwise_scores_total"
QUANTILES = (0.5, 0.95, 0.99)
FRESHNESS_COLUMNS = ["view", "newest_event", "age_hours", "ttl_hours", "status", "path"]
RUN_COLUMNS = ["stage", "status", "started_at", "ended_at", "seconds", "rows", "message"]


@dataclass(frozen=True)
class ViewSource:
    """Where a feature view's table lies and how old its values may be (0 = no limit)."""

    view: str
    path: Path
    ttl: timedelta


@dataclass(frozen=True)
class ScorerHealth:
    """The scorer's counters: per-route latency table, errors by type, scores by band."""

    routes: pd.DataFrame
    errors: dict[str, float]
    scores: dict[str, float]

    @property
    def requests(self) -> float:
        return float(self.routes["requests"].sum()) if not self.routes.empty else 0.0

    @property
    def error_rate(self) -> float | None:
        total = self.requests
        return sum(self.errors.values()) / total if total else None


@dataclass(frozen=True)
class SystemHealth:
    checked_at: datetime
    runs: pd.DataFrame
    freshness: pd.DataFrame
    open_alerts: int
    scorer: ScorerHealth | None = None
    scorer_error: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# ---------------------------------------------------------------------- pipeline runs


def runs_frame(runs: Sequence[PipelineRun]) -> pd.DataFrame:
    """The newest run of each stage (runs come newest first), with its duration."""
    latest: dict[str, PipelineRun] = {}
    for run in runs:
        latest.setdefault(run.stage, run)
    rows = [
        {
            "stage": r.stage,
            "status": r.status,
            "started_at": r.started_at,
            "ended_at": r.ended_at,
            "seconds": (r.ended_at - r.started_at).total_seconds() if r.ended_at else None,
            "rows": r.rows,
            "message": r.message,
        }
        for r in sorted(latest.values(), key=lambda r: r.stage)
    ]
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


# ---------------------------------------------------------------------- feature freshness


def freshness_frame(
    sources: Sequence[ViewSource], newest: Mapping[str, datetime | None], now: datetime
) -> pd.DataFrame:
    """Status per view: fresh, stale (older than ttl), empty, or missing (no table)."""
    rows = []
    for source in sources:
        stamp = newest.get(source.view)
        age = (now - stamp).total_seconds() / 3600 if stamp is not None else None
        ttl = source.ttl.total_seconds() / 3600
        if source.view not in newest:
            status = "missing"
        elif stamp is None:
            status = "empty"
        else:
            status = "stale" if ttl and age is not None and age > ttl else "fresh"
        rows.append(
            {
                "view": source.view,
                "newest_event": stamp,
                "age_hours": age,
                "ttl_hours": ttl or None,
                "status": status,
                "path": str(source.path),
            }
        )
    return pd.DataFrame(rows, columns=FRESHNESS_COLUMNS)


def view_sources(features_dir: Path) -> list[ViewSource]:
    """Every feature view of the repo with its parquet path and ttl."""
    from feature_repo.views import make_views  # noqa: PLC0415 - Feast is slow to import

    return [
        ViewSource(view.name, Path(view.batch_source.path), view.ttl or timedelta(0))  # type: ignore[union-attr]
        for view in make_views(features_dir).all()
    ]


def newest_event(path: Path) -> datetime | None:
    """The newest event_timestamp in a parquet table (None when it has no rows)."""
    import pyarrow.compute as pc  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    from feature_repo.views import EVENT_TS  # noqa: PLC0415

    column = pq.read_table(path, columns=[EVENT_TS]).column(EVENT_TS)
    value = pc.max(column).as_py()
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def feature_freshness(features_dir: Path, now: datetime | None = None) -> pd.DataFrame:
    sources = view_sources(features_dir)
    newest = {s.view: newest_event(s.path) for s in sources if s.path.exists()}
    return freshness_frame(sources, newest, now or datetime.now(UTC))


# ---------------------------------------------------------------------- scorer metrics


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile over (upper bound, cumulative count) buckets."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # as Prometheus: the highest finite bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def _route_row(
    route: str, stats: Mapping[str, float], buckets: Mapping[float, float]
) -> dict[str, object]:
    count = stats.get("count", 0.0)
    row: dict[str, object] = {
        "route": route,
        "requests": count,
        "mean_ms": 1000 * stats.get("sum", 0.0) / count if count else None,
    }
    for q in QUANTILES:
        value = histogram_quantile(q, buckets.items())
        row[f"p{round(q * 100)}_ms"] = None if value is None else 1000 * value
    return row


def parse_scorer_metrics(text: str) -> ScorerHealth:
    """Latency per route, errors by type and scores by band from /metrics text."""
    stats: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    errors: dict[str, float] = defaultdict(float)
    scores: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == f"{LATENCY}_bucket":
                buckets[labels.get("route", "")][float(labels["le"])] += sample.value
            elif sample.name in (f"{LATENCY}_count", f"{LATENCY}_sum"):
                stats[labels.get("route", "")][sample.name.rsplit("_", 1)[1]] += sample.value
            elif sample.name == ERRORS:
                errors[labels.get("type", "unknown")] += sample.value
            elif sample.name == SCORES:
                scores[labels.get("band", "unknown")] += sample.value
    columns = ["route", "requests", "mean_ms", *(f"p{round(q * 100)}_ms" for q in QUANTILES)]
    routes = pd.DataFrame(
        [_route_row(r, stats[r], buckets[r]) for r in sorted(stats.keys() | buckets.keys())],
        columns=columns,
    )
    return ScorerHealth(routes, dict(errors), dict(scores))


def fetch_scorer_health(url: str, timeout: float = 3.0) -> ScorerHealth:
    response = requests.get(url, timeout=timeout)
    response.raise_for_status()
    return parse_scorer_metrics(response.text)


# ---------------------------------------------------------------------- all together


def _problems(runs: pd.DataFrame, freshness: pd.DataFrame, scorer_error: str | None) -> list[str]:
    found = [
        f"stage {r['stage']} last {r['status']}"
        for r in runs.to_dict("records")
        if r["status"] == "failed"
    ]
    found += [
        f"feature view {r['view']} is {r['status']}"
        for r in freshness.to_dict("records")
        if r["status"] in ("stale", "missing", "empty")
    ]
    if scorer_error:
        found.append(f"scorer metrics unavailable: {scorer_error}")
    return found


def system_health(
    store: MonitoringStore,
    features_dir: Path,
    scorer_metrics_url: str | None = None,
    now: datetime | None = None,
) -> SystemHealth:
    """Runs, freshness and (when a URL is given) the scorer; problems lists what is wrong."""
    now = now or datetime.now(UTC)
    runs = runs_frame(store.list_runs(limit=500))
    freshness = feature_freshness(features_dir, now)
    scorer, scorer_error = None, None
    if scorer_metrics_url:
        try:
            scorer = fetch_scorer_health(scorer_metrics_url)
        except (requests.RequestException, ValueError) as exc:
            log.warning("could not read scorer metrics: %s", exc)
            scorer_error = str(exc)
    return SystemHealth(
        checked_at=now,
        runs=runs,
        freshness=freshness,
        open_alerts=len(store.open_alerts()),
        scorer=scorer,
        scorer_error=scorer_error,
        problems=_problems(runs, freshness, scorer_error),
    )
