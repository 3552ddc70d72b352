"""A temporary MLflow (SQLite backend, local artifacts) for the tests that register models."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest

from collectwise.settings import get_settings


@contextmanager
def temporary_mlflow(root: Path) -> Iterator[Path]:
    """Point the settings (and so the registry code) at an MLflow under `root`; restore the
    environment, the cached settings and MLflow's global URIs afterwards."""
    patch = pytest.MonkeyPatch()
    patch.setenv("COLLECTWISE_MLFLOW__TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    patch.setenv("COLLECTWISE_MLFLOW__ARTIFACT_LOCATION", (root / "artifacts").as_uri())
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    get_settings.cache_clear()
    try:
        yield root
    finally:
        patch.undo()
        get_settings.cache_clear()
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
