"""The MLflow client every registry function works through, and the settings it reads.

Every registry function takes an optional MlflowClient (the scorer builds one with
`tracking_client` and keeps it) and optional settings; without them it uses
get_settings().mlflow.
"""

from __future__ import annotations

from mlflow import MlflowClient

from collectwise.settings import MlflowSettings, get_settings
from training.tracking import configure_tracking


def tracking_client(settings: MlflowSettings | None = None) -> MlflowClient:
    """Configure tracking from settings and return a client to keep (cheap to reuse)."""
    configure_tracking(settings or get_settings().mlflow)
    return MlflowClient()


def client_and_settings(
    client: MlflowClient | None, settings: MlflowSettings | None
) -> tuple[MlflowClient, MlflowSettings]:
    """The caller's client and settings, or the configured defaults for what it left out."""
    settings = settings or get_settings().mlflow
    return (client or tracking_client(settings)), settings
