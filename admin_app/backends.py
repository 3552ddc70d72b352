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
from admin_app.background_jobs import BatchJobs
from admin_app.sessions import SessionStore
from admin_app.throttle import LoginThrottle
from admin_app.user_store import UserStore
from collectwise.settings import AdminSettings, PathSettings, Settings, get_settings

if TYPE_CHECKING:
    from feast import FeatureStore
    from mlflow import MlflowClient

    from monitoring.monitor_db import MonitoringStore
    from serving.audit import AuditLog
    from serving.runtime import Service

log = logging.getLogger(__name__)

EXTENSION_KEY = "collectwise_admin"


@dataclass
class Backends:
    platform: Settings = field(default_factory=get_settings)
    # Tests hand in a store of their own; by default the platform's Feast profile.
    store_factory: Callable[[], FeatureStore] | None = None
    users: UserStore = field(init=False)
    actions: ActionLog = field(init=False)
    sessions: SessionStore = field(init=False)
    throttle: LoginThrottle = field(init=False)
    jobs: BatchJobs = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _key_locks: dict[str, threading.Lock] = field(default_factory=dict, init=False)
    _made: dict[str, Any] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        users_db = self.paths.users_db
        self.users = UserStore(users_db)
        # The admin audit lives beside the users: one file to back up for the console.
        self.actions = ActionLog(users_db)
        self.sessions = SessionStore(users_db, self.settings.session_lifetime)
        self.throttle = LoginThrottle(users_db, self.actions, self.settings)
        self.jobs = BatchJobs(self.paths.admin_batch_dir)

    @property
    def settings(self) -> AdminSettings:
        return self.platform.admin

    @property
    def paths(self) -> PathSettings:
        return self.platform.paths

    @property
    def features_dir(self) -> Path:
        return self.paths.features_dir

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
        return self._once("store", self.store_factory or self._open_store)

    def _open_store(self) -> FeatureStore:
        from ingestion.feast_store import open_store  # noqa: PLC0415

        return open_store(self.platform)

    def service(self) -> Service:
        """The scorer's Service over the console's store; models refreshed on each use."""
        service: Service = self._once("service", self._build_service)
        service.watcher.refresh()
        return service

    def _build_service(self) -> Service:
        from serving.main import build_service  # noqa: PLC0415

        # The console only reads: nothing it scores is recorded as served traffic.
        serving = self.platform.serving.model_copy(
            update={"record": False, "online_timeout_seconds": self.settings.online_timeout_seconds}
        )
        return build_service(self.platform.model_copy(update={"serving": serving}), self.store())

    def mlflow(self) -> MlflowClient:
        from training.registry import tracking_client  # noqa: PLC0415

        return self._once("mlflow", lambda: tracking_client(self.platform.mlflow))

    def monitoring(self) -> MonitoringStore:
        return self._once("monitoring", self._monitoring_store)

    def _monitoring_store(self) -> MonitoringStore:
        from monitoring.monitor_db import MonitoringStore  # noqa: PLC0415

        return MonitoringStore(self.platform.monitoring.database_url)

    def metrics_url(self) -> str | None:
        return self.platform.monitoring.scorer_metrics_url

    def audit(self) -> AuditLog:
        from serving.audit import AuditLog  # noqa: PLC0415

        return self._once("audit", lambda: AuditLog(self.paths.audit_db))

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
