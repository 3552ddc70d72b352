"""Serving health as data: the scorer's /metrics turned into a monitoring job's metrics.

The scorer's counters run from its start; what the alert rules need is a window. Each run
keeps the counters it read (a small JSON state file), and the next run reports the
difference: error rate by status class and latency quantiles of the scoring routes, requests
per model alias and version, and the process's CPU share and memory, against the previous
read. A counter that went down means the scorer restarted: the new value is the window.

With several uvicorn workers the scorer's /metrics already merges every worker's counters
(prometheus_client's multiprocess mode), so one read covers them all.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import requests
from prometheus_client.parser import text_string_to_metric_families

from collectwise.errors import InvalidInputError, UnavailableError
from monitoring.health import LATENCY, SCORES, histogram_quantile
from monitoring.job_result import JobResult
from monitoring.served import SCORING_ROUTES

if TYPE_CHECKING:
    from collectwise.settings import Settings

log = logging.getLogger(__name__)

REQUESTS = "collectwise_requests_total"
RSS = "process_resident_memory_bytes"
CPU = "process_cpu_seconds_total"
# The routes whose latency the p50 / p99 describe: a score, one account or a batch.
JOB = "serving"


class ScorerUnreachableError(UnavailableError):
    """The scorer's /metrics could not be read (exit 3)."""


class ScorerMetricsError(InvalidInputError):
    """What came back is not the scorer's metrics (no collectwise_requests_total)."""


@dataclass
class Snapshot:
    """The cumulative counters of one /metrics read."""

    read_at: str
    requests: dict[str, float] = field(default_factory=dict)  # status class -> scoring requests
    latency: dict[str, float] = field(default_factory=dict)  # upper bound -> cumulative count
    scores: dict[str, float] = field(default_factory=dict)  # "alias.vN" -> count
    rss_bytes: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def at(self) -> datetime:
        return datetime.fromisoformat(self.read_at)


def parse_snapshot(text: str, read_at: datetime) -> Snapshot:
    """The counters serving health needs, summed over routes and workers."""
    snap = Snapshot(read_at.isoformat())
    requests_seen = False
    latency: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        # The family is declared before any request is counted (a counter's family name
        # drops its _total suffix).
        requests_seen |= family.name in (REQUESTS, REQUESTS.removesuffix("_total"))
        for sample in family.samples:
            labels = sample.labels
            if sample.name == REQUESTS:
                # Health and metrics answers (a 503 from /readyz) are signals, not failures.
                if labels.get("route") not in SCORING_ROUTES:
                    continue
                key = labels.get("status_class", "unknown")
                snap.requests[key] = snap.requests.get(key, 0.0) + sample.value
            elif sample.name == f"{LATENCY}_bucket" and labels.get("route") in SCORING_ROUTES:
                latency[labels["le"]] += sample.value
            elif sample.name == SCORES:
                key = f"{labels.get('alias', 'unknown')}.v{labels.get('version', '0')}"
                snap.scores[key] = snap.scores.get(key, 0.0) + sample.value
            elif sample.name == RSS:
                snap.rss_bytes += sample.value
            elif sample.name == CPU:
                snap.cpu_seconds += sample.value
    if not requests_seen:
        raise ScorerMetricsError(f"no {REQUESTS} in the metrics read: is this the scorer?")
    snap.latency = dict(latency)
    return snap


def _delta(now: float, before: float) -> float:
    # A counter below its previous value: the scorer restarted and counts from zero.
    return now - before if now >= before else now


def window_metrics(now: Snapshot, before: Snapshot | None) -> dict[str, float]:
    """The alert rules' inputs over the window since `before` (or since the scorer began)."""
    prev = before or Snapshot(now.read_at)
    by_class = {k: _delta(v, prev.requests.get(k, 0.0)) for k, v in now.requests.items()}
    total = sum(by_class.values())
    metrics: dict[str, float] = {"serving.requests": total}
    if total:
        metrics["serving.error_rate"] = by_class.get("5xx", 0.0) / total
        metrics["serving.client_error_rate"] = by_class.get("4xx", 0.0) / total
    buckets = [
        (float(le), _delta(count, prev.latency.get(le, 0.0))) for le, count in now.latency.items()
    ]
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        value = histogram_quantile(q, buckets)
        if value is not None and not math.isinf(value):
            metrics[f"serving.latency_{name}_ms"] = 1000 * value
    for key, count in now.scores.items():
        metrics[f"serving.scores.{key}"] = _delta(count, prev.scores.get(key, 0.0))
    metrics["serving.process_rss_mb"] = now.rss_bytes / 2**20
    if before is not None:
        seconds = (now.at - before.at).total_seconds()
        if seconds > 0:
            used = _delta(now.cpu_seconds, before.cpu_seconds)
            metrics["serving.process_cpu_share"] = used / seconds
        if before.rss_bytes > 0:
            metrics["serving.memory_growth"] = now.rss_bytes / before.rss_bytes
    return metrics


def read_metrics(url: str, timeout: float = 5.0) -> str:
    try:
        response = requests.get(url, timeout=timeout)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise ScorerUnreachableError(f"scorer metrics at {url}: {exc}") from exc
    return response.text


def load_state(path: Path) -> Snapshot | None:
    """The previous run's counters; None when there is none or it cannot be read."""
    try:
        return Snapshot(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        # A damaged state file costs one window's deltas, never the job.
        log.warning("ignoring unreadable serving-health state %s: %s", path, exc)
        return None


def save_state(path: Path, snap: Snapshot) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(snap)))
    tmp.replace(path)  # atomic: a crash leaves the old state or the new, never half


def serving_health_job(
    metrics_text: str, state_path: Path, now: datetime | None = None
) -> JobResult:
    """One run: the window since the last run's read, recorded as the next run's start."""
    read_at = now or datetime.now(UTC)
    snap = parse_snapshot(metrics_text, read_at)
    before = load_state(state_path)
    metrics = window_metrics(snap, before)
    save_state(state_path, snap)
    return JobResult(
        JOB,
        before.at if before else None,
        read_at,
        metrics,
        labels={"window": "since last run" if before else "since the scorer started"},
        rows=int(metrics["serving.requests"]),
    )


def serving_health_state(settings: Settings) -> Path:
    """Where the last read's counters are kept, beside the monitoring reports."""
    return settings.paths.monitoring_reports_dir / "serving_health_state.json"


def run_serving_health(settings: Settings, url: str | None = None) -> JobResult:
    """Read the scorer's /metrics (url, else monitoring.scorer_metrics_url) and compute."""
    where = url or settings.monitoring.scorer_metrics_url
    if not where:
        raise ScorerMetricsError(
            "no scorer metrics URL: pass --url or set COLLECTWISE_MONITORING__SCORER_METRICS_URL"
        )
    return serving_health_job(read_metrics(where), serving_health_state(settings))
