"""What a registered version is and how to read it: metadata, aliases, the pickled model,
the drift reference and the importance history.

The alias names and the metric tag keys live here too, since reading a version means
interpreting them; registration and the promotion gate write what this module reads.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from collectwise.errors import ConflictError
from collectwise.settings import MlflowSettings, get_settings
from training.registry.clients import client_and_settings
from training.registry.lineage import UNKNOWN
from training.scoring_model import BUNDLE_FILENAME, ScoringModel, load_bundle

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"

# Metric keys register() expects (the gate needs TEST_AUC); headline metrics are also tagged.
TEST_AUC = "test_roc_auc"
TEST_PR_AUC = "test_pr_auc"
TEST_F1 = "test_f1"
TEST_BRIER = "test_brier"
HEADLINE_METRICS = (TEST_AUC, TEST_PR_AUC, TEST_F1, TEST_BRIER)
METRIC_TAG_PREFIX = "metric."
REFERENCE_ARTIFACT = "reference/reference.parquet"


class RegistryError(ConflictError, RuntimeError):
    """A registry operation cannot be done as asked (no champion, unknown version, ...)."""

    kind = "registry"


class PromotionRefused(RegistryError):  # noqa: N818 - the name the CLI and issue use
    """The promotion gate said no; the message gives both AUCs and the margin."""


class IncomparableTestSets(PromotionRefused):
    """Candidate and champion were tested on different data and nothing can re-score."""


@dataclass(frozen=True)
class ModelMetadata:
    """One registered version as the CLI, admin console and scorer see it."""

    name: str
    version: int
    aliases: list[str]
    status: str
    run_id: str | None
    created: datetime
    feature_service: str
    definitions_fingerprint: str
    data_fingerprint: str
    dvc_data_hash: str
    git_commit: str
    test_set_fingerprint: str
    threshold: float
    bands: dict[str, float]
    metrics: dict[str, float]
    params: dict[str, Any]
    feature_columns: list[str]
    calibration: str
    promoted_by: str | None = None
    promotion_reason: str | None = None
    promoted_at: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def test_auc(self) -> float | None:
        return self.metrics.get(TEST_AUC)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (for `collectwise models show --json` and the console)."""
        out = asdict(self)
        out["created"] = self.created.isoformat()
        return out


@dataclass(frozen=True)
class LoadedModel:
    """A ScoringModel with the registry entry it was loaded from (one resolved version)."""

    meta: ModelMetadata
    model: ScoringModel


def _parse_version(version_or_alias: str | int) -> int | None:
    """3, "3" and "v3" name a version; anything else is an alias."""
    text = str(version_or_alias).strip()
    if text.lower().startswith("v") and text[1:].isdigit():
        text = text[1:]
    return int(text) if text.isdigit() else None


# What MLflow answers for a model, version or alias that does not exist. Anything else (a
# server that does not answer, a broken database) is an outage, never "nothing registered".
_ABSENT = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


def absent(exc: MlflowException) -> bool:
    """True when MLflow said the thing asked for does not exist."""
    return exc.error_code in _ABSENT


def alias_version(client: MlflowClient, name: str, alias: str) -> int | None:
    """The version `alias` points at on a known client, or None when it is unset."""
    try:
        return int(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if not absent(exc):
            raise
        return None


def resolve_alias(
    alias: str, *, client: MlflowClient | None = None, settings: MlflowSettings | None = None
) -> int | None:
    """The version an alias points at, or None: one cheap call, for the scorer's poll."""
    client, settings = client_and_settings(client, settings)
    return alias_version(client, settings.registered_model_name, alias)


def _aliases_by_version(client: MlflowClient, name: str) -> dict[int, list[str]]:
    # search_model_versions leaves ModelVersion.aliases empty: read the model's alias map once.
    out: dict[int, list[str]] = {}
    for alias, version in client.get_registered_model(name).aliases.items():
        out.setdefault(int(version), []).append(alias)
    return out


def _model_version(client: MlflowClient, name: str, version_or_alias: str | int) -> ModelVersion:
    version = _parse_version(version_or_alias)
    try:
        if version is None:
            return client.get_model_version_by_alias(name, str(version_or_alias))
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if not absent(exc):
            raise
        raise RegistryError(f"{name} has no version or alias {version_or_alias!r}") from exc


def _status(aliases: list[str], tags: Mapping[str, str]) -> str:
    for alias in (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION):
        if alias in aliases:
            return alias
    if "rolled_back_at" in tags:
        return "rolled-back"
    return "retired" if "promoted_at" in tags else "registered"


def _json_tag(tags: Mapping[str, str], key: str, default: Any) -> Any:
    try:
        return json.loads(tags[key])
    except (KeyError, ValueError):
        return default


def metadata_from(mv: ModelVersion, aliases: list[str]) -> ModelMetadata:
    """Read a version's tags back into ModelMetadata (aliases come from the model)."""
    tags = dict(mv.tags)
    metrics = {
        k.removeprefix(METRIC_TAG_PREFIX): float(v)
        for k, v in tags.items()
        if k.startswith(METRIC_TAG_PREFIX)
    }
    return ModelMetadata(
        name=mv.name,
        version=int(mv.version),
        aliases=sorted(aliases),
        status=_status(aliases, tags),
        run_id=mv.run_id,
        created=datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC),
        feature_service=tags.get("feature_service", UNKNOWN),
        definitions_fingerprint=tags.get("definitions_fingerprint", UNKNOWN),
        data_fingerprint=tags.get("data_fingerprint", UNKNOWN),
        dvc_data_hash=tags.get("dvc_data_hash", UNKNOWN),
        git_commit=tags.get("git_commit", UNKNOWN),
        test_set_fingerprint=tags.get("test_set_fingerprint", UNKNOWN),
        threshold=float(tags.get("threshold", "nan")),
        bands=_json_tag(tags, "bands", {}),
        metrics=metrics,
        params=_json_tag(tags, "params", {}),
        feature_columns=_json_tag(tags, "feature_columns", []),
        calibration=tags.get("calibration", UNKNOWN),
        promoted_by=tags.get("promoted_by"),
        promotion_reason=tags.get("promotion_reason"),
        promoted_at=tags.get("promoted_at"),
        tags=tags,
    )


def metadata_of(client: MlflowClient, name: str, version_or_alias: str | int) -> ModelMetadata:
    """show() on a known client and model name."""
    mv = _model_version(client, name, version_or_alias)
    return metadata_from(mv, _aliases_by_version(client, name).get(int(mv.version), []))


def show(
    version_or_alias: str | int,
    *,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> ModelMetadata:
    """The metadata of a version ("3", 3, "v3") or of the version an alias points at."""
    client, settings = client_and_settings(client, settings)
    return metadata_of(client, settings.registered_model_name, version_or_alias)


def list_versions(
    *, client: MlflowClient | None = None, settings: MlflowSettings | None = None
) -> list[ModelMetadata]:
    """Every version of the registered model, newest first ([] before the first register)."""
    client, settings = client_and_settings(client, settings)
    name = settings.registered_model_name
    try:
        aliases = _aliases_by_version(client, name)
    except MlflowException as exc:
        if not absent(exc):
            raise
        return []
    versions = client.search_model_versions(f"name = '{name}'")
    metas = [metadata_from(mv, aliases.get(int(mv.version), [])) for mv in versions]
    return sorted(metas, key=lambda m: m.version, reverse=True)


def load_bundle_of(client: MlflowClient, meta: ModelMetadata) -> ScoringModel:
    """Download and unpickle a version's ScoringModel, stamped with its registry name."""
    root = client.get_model_version_download_uri(meta.name, str(meta.version))
    with tempfile.TemporaryDirectory(prefix="collectwise-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{root.rstrip('/')}/artifacts/{BUNDLE_FILENAME}",
            dst_path=tmp,
            tracking_uri=client.tracking_uri,
        )
        model = load_bundle(Path(local))
    model.metadata.update(registered_name=meta.name, registered_version=meta.version)
    return model


def load_version(
    version_or_alias: str | int,
    *,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> LoadedModel:
    """Resolve an alias once, then load that version's pickled ScoringModel.

    The returned model's metadata gains registered_name / registered_version, so a logged
    score can name exactly what produced it and be replayed with load_version(version).
    """
    client, settings = client_and_settings(client, settings)
    meta = metadata_of(client, settings.registered_model_name, version_or_alias)
    model = load_bundle_of(client, meta)
    log.info("loaded %s version %s (%s)", meta.name, meta.version, version_or_alias)
    return LoadedModel(meta, model)


def load_scoring_model(
    alias_or_version: str | int,
    *,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> ScoringModel:
    return load_version(alias_or_version, client=client, settings=settings).model


def load_reference(
    version_or_alias: str | int,
    *,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> pd.DataFrame:
    """The version's drift reference: a sample of its training rows, raw feature columns,
    with the model's calibrated `probability` and the label (training.train.write_reference)."""
    client, settings = client_and_settings(client, settings)
    meta = metadata_of(client, settings.registered_model_name, version_or_alias)
    if not meta.run_id:
        raise RegistryError(f"{meta.name} version {meta.version} has no run to read from")
    with tempfile.TemporaryDirectory(prefix="collectwise-reference-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=meta.run_id,
                artifact_path=REFERENCE_ARTIFACT,
                dst_path=tmp,
                tracking_uri=client.tracking_uri,
            )
        except MlflowException as exc:
            raise RegistryError(
                f"{meta.name} version {meta.version} was registered without a drift reference"
            ) from exc
        return pd.read_parquet(local)


def importance_history(
    *, client: MlflowClient | None = None, settings: MlflowSettings | None = None
) -> pd.DataFrame:
    """Global SHAP importance per registered version (rows) and feature (columns).

    Read from the runs' `importance.<feature>` metrics, logged at registration.
    """
    client, settings = client_and_settings(client, settings)
    rows = {}
    for meta in list_versions(client=client, settings=settings):
        if not meta.run_id:
            continue
        run_metrics = client.get_run(meta.run_id).data.metrics
        rows[meta.version] = {
            k.removeprefix("importance."): v
            for k, v in run_metrics.items()
            if k.startswith("importance.")
        }
    return pd.DataFrame.from_dict(rows, orient="index").sort_index()


def model_uri(alias_or_version: str | int, settings: MlflowSettings | None = None) -> str:
    """models:/collection-risk@champion or models:/collection-risk/3, for mlflow.pyfunc."""
    name = (settings or get_settings().mlflow).registered_model_name
    version = _parse_version(alias_or_version)
    return (
        f"models:/{name}/{version}" if version is not None else f"models:/{name}@{alias_or_version}"
    )
