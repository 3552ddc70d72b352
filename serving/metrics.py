"""Prometheus metrics of one app instance (its own registry, so tests can build many apps).

With several uvicorn workers `collectwise serve` sets COLLECTWISE_METRICS_MULTIPROCESS=1 and
PROMETHEUS_MULTIPROC_DIR, and /metrics merges every worker's files (prometheus_client's
multiprocess mode). Our own switch decides, not PROMETHEUS_MULTIPROC_DIR alone: importing
feast.metrics sets that variable in any process, which would hide this app's registry.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_ENV = "COLLECTWISE_METRICS_MULTIPROCESS"
LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "collectwise_request_latency_seconds",
            "Request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.scores = Counter(
            "collectwise_scores_total",
            "Accounts scored, by band and alias",
            ["band", "alias"],
            registry=r,
        )
        self.errors = Counter("collectwise_errors_total", "Errors by type", ["type"], registry=r)
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
        self.recorder_dropped = Gauge(
            "collectwise_recorder_dropped",
            "Score events the recorder could not queue",
            registry=r,
            multiprocess_mode="sum",
        )

    def exposition(self) -> bytes:
        if os.environ.get(MULTIPROCESS_ENV) == "1" and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)
