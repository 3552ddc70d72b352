"""What the console reads and acts through, built lazily and shared by every request.

Nothing here runs at import: the Feast store, the scoring service (the scorer's own
build_service, so a lookup runs the API's code), the MLflow client and the monitoring store
are each made on first use, under a lock, and kept. Tests pass their own store factory and
settings. Pages and callbacks reach the one instance through `backends()`, which reads it
from the Flask app serving the request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import current_app

from admin_app.actions import ActionLog
from admin_app.jobs import BatchJobs
from admin_app.sessions import SessionStore
from admin_app.settings import AdminSettings
from admin_app.throttle import LoginThrottle
from admin_app.users import UserStore

if TYPE_CHECKING:
    from feast import FeatureStore
    from mlflow import MlflowClient

    from monitoring.store import MonitoringStore
    from serving.audit import AuditLog
    from serving.service import Service

log = logging.getLogger(__name__)

EXTENSION_KEY = "collectwise_admin"


def _open_default_store() -> FeatureStore:
    from ingestion.settings import get_settings  # noqa: PLC0415
    from ingestion.store import open_store  # noqa: PLC0415

    settings = get_settings()
    return open_store(settings.repo_root, settings.feature_store_yaml)


def _default_features_dir() -> Path:
    from ingestion.settings import get_settings  # noqa: PLC0415

    return get_settings().features_dir


@dataclass
class Backends:
    settings: AdminSettings
    store_factory: Callable[[], FeatureStore] = _open_default_store
    features_dir: Path = field(default_factory=_default_features_dir)
    monitoring_url: str | None = None
    audit_db: Path | None = None
    scorer_metrics_url: str | None = None
    users: UserStore = field(init=False)
    actions: ActionLog = field(init=False)
    sessions: SessionStore = field(init=False)
    throttle: LoginThrottle = field(init=False)
    jobs: BatchJobs = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _key_locks: dict[str, threading.Lock] = field(default_factory=dict, init=False)
    _made: dict[str, Any] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.users = UserStore(self.settings.users_db)
        # The admin audit lives beside the users: one file to back up for the console.
        self.actions = ActionLog(self.settings.users_db)
        self.sessions = SessionStore(self.settings.users_db, self.settings.session_lifetime)
        self.throttle = LoginThrottle(self.settings.users_db, self.actions, self.settings)
        self.jobs = BatchJobs(self.settings.batch_dir)

    def _once(self, key: str, make: Callable[[], Any]) -> Any:
        # One lock per key: loading a model must not hold up a page that reads alerts.
        with self._lock:
            if key in self._made:
                return self._made[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            if key not in self._made:
                value = make()
                with self._lock:
                    self._made[key] = value
            return self._made[key]

    def store(self) -> FeatureStore:
        return self._once("store", self.store_factory)

    def service(self) -> Service:
        """The scorer's Service over the console's store; models refreshed on each use."""
        service: Service = self._once("service", self._build_service)
        service.watcher.refresh()
        return service

    def _build_service(self) -> Service:
        from serving.main import build_service  # noqa: PLC0415
        from serving.settings import get_serving_settings  # noqa: PLC0415

        # The console only reads: nothing it scores is recorded as served traffic.
        settings = get_serving_settings().model_copy(
            update={"record": False, "online_timeout_seconds": self.settings.online_timeout_seconds}
        )
        return build_service(settings, self.store())

    def mlflow(self) -> MlflowClient:
        from training.registry import tracking_client  # noqa: PLC0415

        return self._once("mlflow", tracking_client)

    def monitoring(self) -> MonitoringStore:
        return self._once("monitoring", self._monitoring_store)

    def _monitoring_store(self) -> MonitoringStore:
        from monitoring.config import get_monitoring_settings  # noqa: PLC0415
        from monitoring.store import MonitoringStore  # noqa: PLC0415

        return MonitoringStore(self.monitoring_url or get_monitoring_settings().db_url)

    def metrics_url(self) -> str | None:
        if self.scorer_metrics_url:
            return self.scorer_metrics_url
        from monitoring.config import get_monitoring_settings  # noqa: PLC0415

        return get_monitoring_settings().scorer_metrics_url

    def audit(self) -> AuditLog:
        from serving.audit import AuditLog, default_audit_db  # noqa: PLC0415
        from serving.settings import get_serving_settings  # noqa: PLC0415

        path = self.audit_db or get_serving_settings().audit_db or default_audit_db()
        return self._once("audit", lambda: AuditLog(Path(path)))

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """A value computed once per key (e.g. a version's SHAP sample); versions never change."""
        return self._once(f"cache:{key}", make)

    def close(self) -> None:
        with self._lock:
            service = self._made.pop("service", None)
            if service is not None:
                service.online.close()
            monitoring = self._made.pop("monitoring", None)
            if monitoring is not None:
                monitoring.dispose()


def backends() -> Backends:
    """The Backends of the app serving this request."""
    return current_app.extensions[EXTENSION_KEY]
