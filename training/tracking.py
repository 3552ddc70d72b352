"""The one switch that points MLflow somewhere: the settings' mlflow section (see
collectwise.settings.MlflowSettings for the backends)."""

from __future__ import annotations

import importlib
import logging

import mlflow

from collectwise.settings import MlflowSettings

log = logging.getLogger(__name__)


def configure_tracking(settings: MlflowSettings) -> None:
    """Point the MLflow fluent API (and new MlflowClients) at the configured backend."""
    settings.export_client_env()
    if settings.uses_dagshub:
        _init_dagshub(settings)
        return
    mlflow.set_tracking_uri(settings.tracking)
    mlflow.set_registry_uri(settings.tracking)
    # The URI may carry a database password: log only its scheme.
    log.info("MLflow tracking on %s backend", settings.tracking.split(":", 1)[0])


def _init_dagshub(settings: MlflowSettings) -> None:
    try:
        dagshub = importlib.import_module("dagshub")
    except ImportError as exc:
        raise RuntimeError(
            "DagsHub settings are present (COLLECTWISE_MLFLOW__DAGSHUB_REPO_OWNER / _NAME) but "
            "the 'dagshub' package is not installed: pip install dagshub"
        ) from exc
    dagshub.init(
        repo_owner=settings.dagshub_repo_owner, repo_name=settings.dagshub_repo_name, mlflow=True
    )
    log.info(
        "MLflow tracking on DagsHub repo %s/%s",
        settings.dagshub_repo_owner,
        settings.dagshub_repo_name,
    )
