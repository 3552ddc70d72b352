"""Probation: a newly promoted champion watched, and rolled back by the platform if it fails.

For `monitoring.probation_minutes` after its promotion (the version's `promoted_at` tag) a
champion is judged on its own traffic, never on the scorer's as a whole:

- its error rate and p99 latency, from the scorer's /metrics
  (collectwise_model_requests_total and collectwise_model_request_latency_seconds, labelled
  by the champion version that answered; every worker's counters merged by the scorer);
- its score distribution: PSI of the probabilities it served since the promotion (the
  served-feature log, one score per account) against the probabilities stored with the
  version at training (its drift reference).

A limit is judged only once enough requests or scores exist. When one is crossed and a
previous champion exists, the job rolls back (training.registry.rollback, by "system", with
the reasons as the why: recorded on the version and in the champion history) and reports
`probation.rolled_back` = 1, which the default rule "champion rolled back" turns into an
alert. The scorer follows the alias within its model refresh interval.

The counters run from the scorer's start: a version promoted again after a rollback, in the
same scorer process, carries its earlier requests into its new probation.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

from monitoring.drift import score_psi
from monitoring.health import histogram_quantile
from monitoring.job_result import JobResult
from monitoring.served import as_utc, read_served
from monitoring.serving_health import ScorerMetricsError, read_metrics

if TYPE_CHECKING:
    from collectwise.settings import MonitoringSettings, Settings
    from training.registry import ModelMetadata

log = logging.getLogger(__name__)

JOB = "probation"
SYSTEM = "system"
MODEL_REQUESTS = "collectwise_model_requests_total"
MODEL_LATENCY = "collectwise_model_request_latency_seconds"
# The alias label the scorer puts on its metrics and served log (training.registry.CHAMPION,
# not imported: the registry module pulls in MLflow, which the judging functions do not need).
CHAMPION = "champion"


@dataclass(frozen=True)
class Limits:
    window: timedelta
    max_error_rate: float
    max_p99_ms: float
    max_psi: float
    min_requests: int
    min_scores: int

    @classmethod
    def from_settings(cls, settings: MonitoringSettings) -> Limits:
        return cls(
            window=timedelta(minutes=settings.probation_minutes),
            max_error_rate=settings.probation_max_error_rate,
            max_p99_ms=settings.probation_max_p99_ms,
            max_psi=settings.probation_max_psi,
            min_requests=settings.probation_min_requests,
            min_scores=settings.probation_min_scores,
        )


@dataclass
class Evidence:
    """What one champion version did since its promotion."""

    ok: float = 0.0
    errors: float = 0.0
    latency: dict[float, float] = field(default_factory=dict)  # upper bound -> cumulative
    psi: float | None = None
    scores: int = 0

    @property
    def requests(self) -> float:
        return self.ok + self.errors

    @property
    def p99_ms(self) -> float | None:
        value = histogram_quantile(0.99, self.latency.items())
        return None if value is None else 1000.0 * value


def read_requests(metrics_text: str, version: int, evidence: Evidence) -> None:
    """The champion version's request outcomes and latency buckets, into evidence."""
    wanted = {"alias": CHAMPION, "version": str(version)}
    latency: dict[float, float] = defaultdict(float)
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if any(sample.labels.get(k) != v for k, v in wanted.items()):
                continue
            if sample.name == MODEL_REQUESTS:
                if sample.labels.get("outcome") == "ok":
                    evidence.ok += sample.value
                else:
                    evidence.errors += sample.value
            elif sample.name == f"{MODEL_LATENCY}_bucket":
                latency[float(sample.labels["le"])] += sample.value
    evidence.latency = dict(latency)


def served_scores(served: pd.DataFrame, version: int) -> pd.Series:
    """The version's champion scores, the latest per account (a population, as drift reads
    it: one account scored a hundred times is still one account)."""
    if served.empty or "model_version" not in served.columns:
        return pd.Series(dtype="float64")
    mine = served[(served["model_version"] == version) & (served["model_alias"] == CHAMPION)]
    return mine.drop_duplicates("account_id", keep="last")["probability"].reset_index(drop=True)


def breaches(evidence: Evidence, limits: Limits) -> list[str]:
    """Each limit crossed, as a sentence; empty when the champion passes (or is not judged)."""
    found = []
    if evidence.requests >= limits.min_requests:
        rate = evidence.errors / evidence.requests
        if rate > limits.max_error_rate:
            found.append(
                f"error rate {rate:.1%} of {evidence.requests:.0f} requests is above "
                f"{limits.max_error_rate:.1%}"
            )
        p99 = evidence.p99_ms
        if p99 is not None and p99 > limits.max_p99_ms:
            found.append(f"p99 latency {p99:.0f} ms is above {limits.max_p99_ms:.0f} ms")
    psi = evidence.psi if evidence.scores >= limits.min_scores else None
    if psi is not None and psi > limits.max_psi:
        found.append(
            f"score PSI {psi:.3f} over {evidence.scores} accounts is above {limits.max_psi:.2f}"
        )
    return found


def promoted_at(meta: ModelMetadata) -> datetime | None:
    try:
        return as_utc(datetime.fromisoformat(meta.promoted_at)) if meta.promoted_at else None
    except ValueError:
        log.warning("v%s has an unreadable promoted_at %r", meta.version, meta.promoted_at)
        return None


def gather(
    settings: Settings, meta: ModelMetadata, since: datetime, now: datetime, url: str | None
) -> Evidence:
    """The champion's requests from the scorer (when its metrics URL is known) and its scores."""
    # Imported here: the registry pulls in MLflow, which the job module need not pay for.
    from training.registry import load_reference  # noqa: PLC0415

    evidence = Evidence()
    if url:
        read_requests(read_metrics(url), meta.version, evidence)
    else:
        log.warning("no monitoring.scorer_metrics_url: errors and latency are not judged")
    scores = served_scores(read_served(settings.paths.served_dir, since, now), meta.version)
    evidence.scores = len(scores)
    if evidence.scores >= settings.monitoring.probation_min_scores:
        reference = load_reference(meta.version, settings=settings.mlflow)["probability"]
        evidence.psi = score_psi(reference, scores)
    return evidence


def _metrics(evidence: Evidence, failed: bool, rolled_back: bool) -> dict[str, float]:
    metrics = {
        "probation.active": 1.0,
        "probation.requests": evidence.requests,
        "probation.scores": float(evidence.scores),
        # Failed and still serving: the one case a person must act on at once.
        "probation.failed": float(failed and not rolled_back),
        "probation.rolled_back": float(rolled_back),
    }
    if evidence.requests:
        metrics["probation.error_rate"] = evidence.errors / evidence.requests
    if evidence.p99_ms is not None:
        metrics["probation.latency_p99_ms"] = evidence.p99_ms
    if evidence.psi is not None:
        metrics["probation.score_psi"] = evidence.psi
    return metrics


def _idle(now: datetime, why: str, labels: dict[str, str] | None = None) -> JobResult:
    log.info("probation: %s", why)
    return JobResult(
        JOB, None, now, {"probation.active": 0.0}, labels={"state": why, **(labels or {})}
    )


def run_probation(
    settings: Settings, url: str | None = None, now: datetime | None = None
) -> JobResult:
    """Judge the champion if it is on probation; roll it back when it fails a limit. `url`:
    the scorer's /metrics (default monitoring.scorer_metrics_url)."""
    from training import registry  # noqa: PLC0415

    url = url or settings.monitoring.scorer_metrics_url
    if url and not url.startswith(("http://", "https://")):
        raise ScorerMetricsError(f"scorer metrics URL {url!r} is not an http(s):// URL")
    now = now or datetime.now(UTC)
    limits = Limits.from_settings(settings.monitoring)
    if registry.resolve_alias(CHAMPION, settings=settings.mlflow) is None:
        return _idle(now, "no champion")
    meta = registry.show(CHAMPION, settings=settings.mlflow)
    since = promoted_at(meta)
    labels = {"version": str(meta.version)}
    if since is None or now - since > limits.window:
        return _idle(now, "the champion is past its probation", labels)
    evidence = gather(settings, meta, since, now, url)
    found = breaches(evidence, limits)
    restored = _roll_back(settings, meta, found) if found else None
    rolled_back = restored is not None
    labels |= {"until": (since + limits.window).isoformat(), "state": _state(found, rolled_back)}
    if found:
        labels["reasons"] = "; ".join(found)
    if restored is not None:
        labels["rolled_back_to"] = str(restored)
    log.info("probation of v%s: %s", meta.version, labels["state"])
    return JobResult(
        JOB, since, now, _metrics(evidence, bool(found), rolled_back), labels=labels,
        rows=int(evidence.requests),
    )  # fmt: skip


def _state(found: list[str], rolled_back: bool) -> str:
    if not found:
        return "passing"
    return "rolled back" if rolled_back else "failing, with no previous champion to roll back to"


def _roll_back(settings: Settings, meta: ModelMetadata, found: list[str]) -> int | None:
    """The version restored; None when the champion moved meanwhile or there is nothing to
    go back to."""
    from training import registry  # noqa: PLC0415

    if registry.resolve_alias(CHAMPION, settings=settings.mlflow) != meta.version:
        log.warning("v%s is no longer the champion: no rollback", meta.version)
        return None
    if registry.resolve_alias(registry.PREVIOUS_CHAMPION, settings=settings.mlflow) is None:
        log.error("v%s failed its probation and there is no previous champion", meta.version)
        return None
    why = f"failed probation: {'; '.join(found)}"
    restored = registry.rollback(SYSTEM, why, settings=settings.mlflow)
    log.warning("v%s rolled back to v%s: %s", meta.version, restored.version, why)
    return restored.version
