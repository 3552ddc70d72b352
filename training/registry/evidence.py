"""Evidence recorded on a model version: a few tags that `mlflow ui` and `models show` list,
and the whole document as a JSON artifact of the version's run (tags hold 5,000 characters
at most; an experiment report is longer)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from mlflow import MlflowClient

from collectwise.settings import MlflowSettings
from training.registry.clients import client_and_settings
from training.registry.versions import metadata_of

log = logging.getLogger(__name__)

EVIDENCE_DIR = "evidence"


def record_evidence(
    version: int,
    kind: str,
    tags: Mapping[str, str],
    document: Mapping[str, Any],
    *,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> str | None:
    """Tag the version `<kind>.<key>` and log `evidence/<kind>.json` to its run; returns the
    artifact path (None when the version has no run to hold it)."""
    client, settings = client_and_settings(client, settings)
    meta = metadata_of(client, settings.registered_model_name, version)
    for key, value in tags.items():
        client.set_model_version_tag(meta.name, str(meta.version), f"{kind}.{key}", value)
    if not meta.run_id:
        log.warning("v%s has no run: %s evidence kept in tags only", meta.version, kind)
        return None
    path = f"{EVIDENCE_DIR}/{kind}.json"
    client.log_text(meta.run_id, json.dumps(document, indent=2, default=str), path)
    client.set_model_version_tag(meta.name, str(meta.version), f"{kind}.artifact", path)
    log.info("recorded %s evidence on v%s (%s)", kind, meta.version, path)
    return path
