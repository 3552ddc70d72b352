"""The validation report of a registered version: download what its run logged, or rebuild
it from the version's model and a training set and log it to the run again.

Rebuilt, the report benchmarks the other live version too: the champion for a challenger,
the challenger for the champion.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mlflow import MlflowClient

from collectwise.errors import NotFoundError
from collectwise.settings import MlflowSettings
from training.registry.clients import client_and_settings
from training.registry.versions import (
    CHALLENGER,
    CHAMPION,
    ModelMetadata,
    RegistryError,
    alias_version,
    load_bundle_of,
    metadata_of,
)
from training.train import TrainParams
from training.validation.build import VALIDATION_DIR, validate_bundle
from training.validation.inputs import Incumbent

log = logging.getLogger(__name__)


class ReportNotLogged(NotFoundError):  # noqa: N818 - reads as the condition it reports
    """The version's run holds no validation report (registered before reports existed)."""


def download_validation(
    version_or_alias: str | int,
    out_dir: Path,
    *,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> dict[str, Path]:
    """The files under the run's validation/ folder, downloaded into out_dir, by suffix."""
    client, settings = client_and_settings(client, settings)
    meta = metadata_of(client, settings.registered_model_name, version_or_alias)
    files = _logged(client, meta)
    if not files:
        raise ReportNotLogged(
            f"{meta.name} v{meta.version} has no validation report logged: rebuild it with "
            f"`collectwise models report {meta.version} --rebuild --dataset <training set>`"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for artifact in files:
        local = Path(client.download_artifacts(str(meta.run_id), artifact, str(out_dir)))
        paths[local.suffix.lstrip(".")] = local
    return paths


def _logged(client: MlflowClient, meta: ModelMetadata) -> list[str]:
    if not meta.run_id:
        return []
    return [f.path for f in client.list_artifacts(meta.run_id, VALIDATION_DIR) if not f.is_dir]


def rebuild_validation(
    version_or_alias: str | int,
    dataset_dir: Path,
    params: TrainParams,
    out_dir: Path,
    *,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> dict[str, Path]:
    """Rebuild the version's report (PDF included) into out_dir and log it to its run."""
    client, settings = client_and_settings(client, settings)
    meta = metadata_of(client, settings.registered_model_name, version_or_alias)
    if not meta.run_id:
        raise RegistryError(f"{meta.name} version {meta.version} has no run to log a report to")
    paths = validate_bundle(
        dataset_dir, load_bundle_of(client, meta), params, out_dir,
        model_label=f"{meta.name} v{meta.version}", incumbent=_incumbent(client, meta),
        pdf=True,
    )  # fmt: skip
    for path in paths.values():
        client.log_artifact(meta.run_id, str(path), artifact_path=VALIDATION_DIR)
    log.info("validation report of %s v%s logged to run %s", meta.name, meta.version, meta.run_id)
    return paths


def _incumbent(client: MlflowClient, meta: ModelMetadata) -> Incumbent | None:
    """The other live version to benchmark against, if there is one."""
    other_alias = CHALLENGER if CHAMPION in meta.aliases else CHAMPION
    other = alias_version(client, meta.name, other_alias)
    if other is None or other == meta.version:
        return None
    other_meta = metadata_of(client, meta.name, other)
    return Incumbent(f"{other_alias} v{other}", load_bundle_of(client, other_meta))
