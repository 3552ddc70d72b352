"""Prometheus metrics of one app instance (its own registry, so tests can build many apps).

With several uvicorn workers `collectwise serve` sets the setting serving.metrics_dir (and
PROMETHEUS_MULTIPROC_DIR, where prometheus_client's workers write), and /metrics merges every
worker's files (prometheus_client's multiprocess mode). Our own setting decides, not
PROMETHEUS_MULTIPROC_DIR alone: importing feast.metrics sets that variable in any process,
which would hide this app's registry.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


class ServiceMetrics:
    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "collectwise_request_latency_seconds",
            "Request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "collectwise_requests_total",
            "Requests answered, by route template and status class (2xx, 4xx, 5xx)",
            ["route", "status_class"],
            registry=r,
        )
        self.scores = Counter(
            "collectwise_scores_total",
            "Accounts scored, by band, model alias and model version",
            ["band", "alias", "version"],
            registry=r,
        )
        self.errors = Counter("collectwise_errors_total", "Errors by type", ["type"], registry=r)
        # By the champion that answered: a promoted version's probation
        # (monitoring.probation) judges its own failures and latency, not the scorer's.
        self.model_requests = Counter(
            "collectwise_model_requests_total",
            "Scoring requests by the champion version that answered; outcome ok, or error "
            "when the model raised",
            ["alias", "version", "outcome"],
            registry=r,
        )
        self.model_latency = Histogram(
            "collectwise_model_request_latency_seconds",
            "Latency of the scoring requests a champion version answered",
            ["alias", "version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.staleness = Gauge(
            "collectwise_feature_staleness_seconds",
            "Age of the newest online feature values seen, by view",
            ["view"],
            registry=r,
            multiprocess_mode="max",
        )
        self.model_version = Gauge(
            "collectwise_model_version",
            "Served model version by alias",
            ["alias"],
            registry=r,
            multiprocess_mode="max",
        )
        self.ready = Gauge(
            "collectwise_ready",
            "1 when the service is ready to score",
            registry=r,
            multiprocess_mode="min",
        )
        self.circuit_state = Gauge(
            "collectwise_online_store_circuit_state",
            "Online store circuit breaker: 0 closed, 1 half-open, 2 open",
            registry=r,
            multiprocess_mode="max",
        )
        self.backend_up = Gauge(
            "collectwise_backend_up",
            "1 when the last call to the backend succeeded (registry: MLflow model aliases)",
            ["backend"],
            registry=r,
            multiprocess_mode="min",
        )
        self.recorder_dropped = Gauge(
            "collectwise_recorder_dropped",
            "Score events the recorder could not queue",
            registry=r,
            multiprocess_mode="sum",
        )

        # process_cpu_seconds_total, process_resident_memory_bytes, ... of this process.
        ProcessCollector(registry=r)

    def exposition(self) -> bytes:
        if self.multiprocess_dir is not None:
            # Worker files hold counters, gauges and histograms; process metrics are per
            # process, so each worker's own follow the merged families.
            merged = CollectorRegistry()
            MultiProcessCollector(merged, path=str(self.multiprocess_dir))
            return generate_latest(merged) + _process_only(self.registry)
        return generate_latest(self.registry)


def _process_only(registry: CollectorRegistry) -> bytes:
    own = CollectorRegistry()
    ProcessCollector(registry=own)
    return generate_latest(own)
