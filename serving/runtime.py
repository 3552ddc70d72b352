"""Everything a running scorer holds, built in the lifespan and torn down after it.

Two daemon threads keep it current: one polls the registry's aliases (blue-green model
moves), one probes the online store (answers within the deadline, holds a whole snapshot),
which alone sets readiness, so the service drops out of rotation and recovers by itself.
"""

from __future__ import annotations

import gc
import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from collectwise.errors import backend_down
from collectwise.settings import PathSettings, ServingSettings
from serving.admission import Admission
from serving.audit import AuditLog
from serving.auth import KeyRing, RateLimiter
from serving.metrics import ServiceMetrics
from serving.model_set import ModelWatcher, uncovered_reasons
from serving.online import CIRCUIT_STATE_CODES, OnlineFeatures, StoreUnavailableError
from serving.recorder import Recorder
from serving.scoring import ScoringOptions
from serving.servedlog import ServedLogWriter, feature_types_from_service
from training.fingerprint import definitions_fingerprint
from training.scoring_model import ScoringModel

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)

PROBE_FLOOR_SECONDS = 0.1
# While the registry is unreachable the model watcher waits twice as long after each failed
# refresh, up to this many times the refresh interval, then keeps that pace until it answers.
REGISTRY_BACKOFF_CAP = 8


@dataclass
class Service:
    settings: ServingSettings
    store: FeatureStore
    online: OnlineFeatures
    watcher: ModelWatcher
    keys: KeyRing
    limiter: RateLimiter
    metrics: ServiceMetrics
    options: ScoringOptions
    recorder: Recorder | None
    admission: Admission
    alerts: list[dict[str, Any]] = field(default_factory=list)
    # Why the last registry refresh failed; None while it answers.
    registry_error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        try:
            self.online.warm_up()
        except StoreUnavailableError:
            log.exception("online store not answering at start-up; the probe keeps trying")
        self.watcher.refresh()
        self._publish_models()
        if self.recorder is not None:
            self.recorder.start()
        for target, name in ((self._watch_models, "model-watch"), (self._probe, "store-probe")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        # Objects made at start-up live as long as the process: keeping them out of the
        # collector's scans removes ~100 ms full collections from the tail (DESIGN.md).
        gc.collect()
        gc.freeze()

    def stop(self) -> None:
        self._stop.set()
        self.online.suspect.set()  # wakes the probe so it sees the stop
        for thread in self._threads:
            thread.join(timeout=5)
        if self.recorder is not None:
            self.recorder.close()
        self.online.close()

    @property
    def ready(self) -> bool:
        return self.online.healthy and self.watcher.current.champion is not None

    def alert(self, message: str) -> None:
        """An alert record for the console and monitoring, besides the error log line."""
        self.alerts.append(
            {"id": uuid.uuid4().hex, "at": datetime.now(UTC).isoformat(), "message": message}
        )
        self.metrics.errors.labels("model_refused").inc()

    def _publish_models(self) -> None:
        for alias, version in self.watcher.current.versions.items():
            self.metrics.model_version.labels(alias).set(version or 0)
        self.metrics.ready.set(1 if self.ready else 0)

    def publish_circuit(self) -> None:
        self.metrics.circuit_state.set(CIRCUIT_STATE_CODES.get(self.online.circuit_state, 2))

    def _watch_models(self) -> None:
        wait = self.settings.model_refresh_seconds
        while not self._stop.wait(wait):
            wait = self._refresh_models(wait)
            self._publish_models()

    def _refresh_models(self, wait: float) -> float:
        """One registry refresh; the wait before the next (doubled while it fails)."""
        base = self.settings.model_refresh_seconds
        try:
            self.watcher.refresh()
        except Exception as exc:
            # A registry outage must not take scoring down: keep the current models.
            if self.registry_error is None:
                log.exception("model registry unreachable; still serving %s", self.watcher.current)
            down = backend_down(exc)  # one line naming the backend, when it is an outage
            self.registry_error = (str(down) if down else f"{type(exc).__name__}: {exc}")[:300]
            self.metrics.backend_up.labels("registry").set(0)
            return min(wait * 2, base * REGISTRY_BACKOFF_CAP)
        if self.registry_error is not None:
            log.info("model registry answers again")
        self.registry_error = None
        self.metrics.backend_up.labels("registry").set(1)
        return base

    def _probe(self) -> None:
        # Always on, not only while down: an emptied or half-loaded store answers reads but
        # no longer holds a whole snapshot, and only the probe may change readiness.
        while not self._stop.is_set():
            self.online.suspect.wait(self.settings.store_probe_seconds)
            if self._stop.is_set():
                return
            self.online.probe()
            self.metrics.ready.set(1 if self.ready else 0)
            self.publish_circuit()
            # Failed requests wake the probe; a floor between probes keeps a flood of them
            # from turning into a flood of probe reads.
            self._stop.wait(PROBE_FLOOR_SECONDS)


def fingerprint_check(store: FeatureStore) -> Any:
    """The watcher's check: a model must match the live registry's feature definitions,
    and every feature it uses must have a reason code (serving.model_set.uncovered_reasons)."""

    def check(model: ScoringModel) -> str | None:
        live = definitions_fingerprint(store, model.feature_service)
        if live != model.definitions_fingerprint:
            return (
                f"feature definitions of {model.feature_service} changed since training "
                f"(model {model.definitions_fingerprint[:12]}, live registry {live[:12]})"
            )
        return uncovered_reasons(model)

    return check


def build_recorder(
    paths: PathSettings, store: FeatureStore, service: str, settings: ServingSettings
) -> Recorder:
    audit = AuditLog(paths.audit_db, timeout=settings.audit_timeout_seconds)
    kinds = feature_types_from_service(store.get_feature_service(service))
    served = ServedLogWriter(paths.served_dir, feature_types=kinds)
    return Recorder(
        audit,
        served,
        synchronous=settings.audit_sync,
        timeout=settings.audit_timeout_seconds,
        group_wait=settings.audit_group_wait_seconds,
        flush_seconds=settings.served_flush_seconds,
    )
