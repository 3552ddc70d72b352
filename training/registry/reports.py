"""Reports of a registered version: the evaluation report its run logged and its model card
(training.card renders it; this module finds the inputs in the registry)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from collectwise.settings import MlflowSettings
from training.card import load_report, write_model_card
from training.registry.clients import client_and_settings
from training.registry.versions import ModelMetadata, metadata_of

# Artifact key whose JSON register() reads to fill the model card (the evaluation report).
REPORT_JSON_KEY = "report_json"


def _download_report(client: MlflowClient, meta: ModelMetadata, workdir: Path) -> Path | None:
    """The run's evaluation report JSON (logged under REPORT_JSON_KEY/), if any."""
    if not meta.run_id:
        return None
    files = [f.path for f in client.list_artifacts(meta.run_id, REPORT_JSON_KEY) if not f.is_dir]
    json_files = [f for f in files if f.endswith(".json")]
    if not json_files:
        return None
    return Path(client.download_artifacts(meta.run_id, json_files[0], str(workdir)))


def evaluation_report(
    version_or_alias: str | int,
    *,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> dict[str, Any] | None:
    """The evaluation report its run logged (REPORT_JSON_KEY/*.json), or None."""
    client, settings = client_and_settings(client, settings)
    return _report_of(client, metadata_of(client, settings.registered_model_name, version_or_alias))


def _report_of(client: MlflowClient, meta: ModelMetadata) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory(prefix="collectwise-report-") as tmp:
        return load_report(_download_report(client, meta, Path(tmp)))


def card_for_version(
    version_or_alias: str | int,
    out: Path,
    *,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> Path:
    """Write the model card of a registered version, with its run's report when logged."""
    client, settings = client_and_settings(client, settings)
    meta = metadata_of(client, settings.registered_model_name, version_or_alias)
    return write_model_card(meta, _report_of(client, meta), out)


def log_model_card(
    client: MlflowClient, meta: ModelMetadata, artifacts: Mapping[str, Path], workdir: Path
) -> None:
    """At registration: render the card from the report about to be logged, log it to the run."""
    report_path = artifacts.get(REPORT_JSON_KEY)
    report = load_report(Path(report_path) if report_path else None)
    card = write_model_card(meta, report, workdir / f"model_card_v{meta.version}.html")
    if meta.run_id:
        client.log_artifact(meta.run_id, str(card), artifact_path="model_card")
