"""The latest data drift score of a version, written by the monitoring drift job.

A version tag rather than a run metric: the registry (and so `mlflow ui`, `collectwise
models show` and the console) shows it beside the version, and a later drift run replaces it.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime

from mlflow import MlflowClient

from collectwise.settings import MlflowSettings
from training.registry.clients import client_and_settings
from training.registry.versions import metadata_of

log = logging.getLogger(__name__)

DATA_DRIFT_SCORE = "data_drift_score"
DATA_DRIFT_AT = "data_drift_at"


def record_data_drift(
    version_or_alias: str | int,
    score: float,
    measured_at: datetime,
    *,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> int:
    """Tag the version with its drift score (share of drifted features, in [0, 1]) and the
    end of the window it was measured over; returns the version tagged."""
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise ValueError(f"data_drift_score must be a share in [0, 1], got {score!r}")
    client, settings = client_and_settings(client, settings)
    meta = metadata_of(client, settings.registered_model_name, version_or_alias)
    version = str(meta.version)
    client.set_model_version_tag(meta.name, version, DATA_DRIFT_SCORE, repr(float(score)))
    client.set_model_version_tag(meta.name, version, DATA_DRIFT_AT, measured_at.isoformat())
    log.info("%s v%s: data_drift_score %.4f (window to %s)", meta.name, version, score, measured_at)
    return meta.version
