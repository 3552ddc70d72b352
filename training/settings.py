"""Training and registry settings, and the one switch that points MLflow somewhere.

Read through the cached get_training_settings(); never instantiate at module level. Values
come from the environment (prefix COLLECTWISE_) or a git-ignored `.env`.

Backends, chosen by environment and never by editing code:
- embedded default: `sqlite:///<repo>/mlflow.db` with artifacts in `<repo>/mlruns`;
  `mlflow ui --backend-store-uri sqlite:///mlflow.db` from the repo root shows it all;
- production: COLLECTWISE_MLFLOW_TRACKING_URI=postgresql+psycopg://user:pass@host:5432/mlflow
  (MLflow's SQLAlchemy store creates its tables on first use) and, usually,
  COLLECTWISE_MLFLOW_ARTIFACT_LOCATION=s3://bucket/collectwise (or a shared filesystem);
  an `http(s)://` URI of an MLflow tracking server works the same way;
- DagsHub: COLLECTWISE_DAGSHUB_REPO_OWNER and COLLECTWISE_DAGSHUB_REPO_NAME make
  configure_tracking() call dagshub.init(..., mlflow=True), which sets the tracking URI and
  credentials itself (it needs `pip install dagshub` and a DAGSHUB_USER_TOKEN or an
  interactive login). Not tested here: there is no network to DagsHub.
"""

from __future__ import annotations

import importlib
import logging
from functools import lru_cache
from pathlib import Path

import mlflow
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from feature_repo.paths import REPO_ROOT

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = f"sqlite:///{REPO_ROOT / 'mlflow.db'}"
DEFAULT_ARTIFACT_LOCATION = (REPO_ROOT / "mlruns").as_uri()


class TrainingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COLLECTWISE_", env_file=".env", extra="ignore")

    mlflow_tracking_uri: str = DEFAULT_TRACKING_URI
    # None lets a remote tracking server (or DagsHub) choose where artifacts go.
    mlflow_artifact_location: str | None = DEFAULT_ARTIFACT_LOCATION
    mlflow_experiment_name: str = "collection-risk"
    registered_model_name: str = "collection-risk"
    # Minimum gain in test ROC AUC (absolute, e.g. 0.005 = half a point) to replace the champion.
    promotion_margin: float = Field(default=0.005, ge=0.0, le=1.0)
    dagshub_repo_owner: str | None = None
    dagshub_repo_name: str | None = None
    dvc_lock_path: Path = REPO_ROOT / "dvc.lock"

    @property
    def uses_dagshub(self) -> bool:
        return bool(self.dagshub_repo_owner and self.dagshub_repo_name)


@lru_cache(maxsize=1)
def get_training_settings() -> TrainingSettings:
    return TrainingSettings()


def configure_tracking(settings: TrainingSettings) -> None:
    """Point the MLflow fluent API (and new MlflowClients) at the configured backend."""
    if settings.uses_dagshub:
        try:
            dagshub = importlib.import_module("dagshub")
        except ImportError as exc:
            raise RuntimeError(
                "DagsHub settings are present (COLLECTWISE_DAGSHUB_REPO_OWNER / _NAME) but the "
                "'dagshub' package is not installed: pip install dagshub"
            ) from exc
        dagshub.init(
            repo_owner=settings.dagshub_repo_owner,
            repo_name=settings.dagshub_repo_name,
            mlflow=True,
        )
        log.info(
            "MLflow tracking on DagsHub repo %s/%s",
            settings.dagshub_repo_owner,
            settings.dagshub_repo_name,
        )
        return
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    # The URI may carry a database password: log only its scheme.
    log.info("MLflow tracking on %s backend", settings.mlflow_tracking_uri.split(":", 1)[0])
