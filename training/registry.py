"""The MLflow model registry of `collection-risk`: register, promote, roll back, inspect, load.

Aliases carry the state the scorer watches: a new version becomes `challenger`; the promotion
gate moves `champion` (the old champion becomes `previous-champion`); rollback moves it back.
Every alias move is a single registry write, so a scorer polling `resolve_alias` always sees
a complete version. Lineage and evaluation live in version tags, so `mlflow ui` shows them
and the registry alone can answer "what is serving and where did it come from".

Every function takes an optional MlflowClient (the scorer builds one with `tracking_client`
and keeps it) and optional settings; without them it uses get_settings().mlflow.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import yaml
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from collectwise.settings import MlflowSettings, get_settings
from training.bundle import (
    BUNDLE_FILENAME,
    ScoringModel,
    load_bundle,
    pyfunc_model_kwargs,
    quiet_pyfunc_warnings,
    save_bundle,
)
from training.card import load_report, write_model_card
from training.tracking import configure_tracking

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
# Artifact key whose JSON register() reads to fill the model card (the evaluation report).
REPORT_JSON_KEY = "report_json"
MODEL_ARTIFACT_NAME = "model"
# Registered-model tags: the promotion / rollback log and the stack rollback walks back.
HISTORY_TAG = "champion_history"
STACK_TAG = "champion_stack"
_HISTORY_KEEP = 200
_ROLLBACK_TAGS = frozenset({"rolled_back_by", "rolled_back_at", "rolled_back_why"})
UNKNOWN = "unknown"
# Version tags also set on the run, so the experiment view can filter runs by lineage.
_RUN_TAGS = frozenset(
    {
        "feature_service",
        "definitions_fingerprint",
        "data_fingerprint",
        "dvc_data_hash",
        "git_commit",
        "git_dirty",
        "test_set_fingerprint",
    }
)


class RegistryError(RuntimeError):
    """A registry operation cannot be done as asked (no champion, unknown version, ...)."""


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


# --------------------------------------------------------------------------- clients


def tracking_client(settings: MlflowSettings | None = None) -> MlflowClient:
    """Configure tracking from settings and return a client to keep (cheap to reuse)."""
    configure_tracking(settings or get_settings().mlflow)
    return MlflowClient()


def _resolve(
    client: MlflowClient | None, settings: MlflowSettings | None
) -> tuple[MlflowClient, MlflowSettings]:
    settings = settings or get_settings().mlflow
    return (client or tracking_client(settings)), settings


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- lineage


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=get_settings().home,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_commit() -> str:
    """HEAD of the repo, or "unknown" outside a git checkout."""
    return _git("rev-parse", "HEAD") or UNKNOWN


def git_dirty() -> str:
    """ "true" when tracked files differ from HEAD: the commit alone does not rebuild the model."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return UNKNOWN if status is None else str(bool(status)).lower()


def dvc_data_hash(lock_path: Path, out: str | None = None) -> str:
    """The DVC md5 of one output of dvc.lock, or one digest over all its outputs.

    Without `out` the digest changes when any data output of the pipeline changes, which is
    the honest answer to "which data did this model see" when the caller cannot name one.
    """
    if not lock_path.exists():
        return UNKNOWN
    stages = (yaml.safe_load(lock_path.read_text()) or {}).get("stages", {})
    outs = {
        o["path"]: str(o.get("md5", UNKNOWN))
        for stage in stages.values()
        for o in stage.get("outs", [])
    }
    if out is not None:
        return outs.get(out, UNKNOWN)
    if not outs:
        return UNKNOWN
    joined = "\n".join(f"{path}:{md5}" for path, md5 in sorted(outs.items()))
    return hashlib.sha256(joined.encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- reading


def _parse_version(version_or_alias: str | int) -> int | None:
    """3, "3" and "v3" name a version; anything else is an alias."""
    text = str(version_or_alias).strip()
    if text.lower().startswith("v") and text[1:].isdigit():
        text = text[1:]
    return int(text) if text.isdigit() else None


def _alias(client: MlflowClient, name: str, alias: str) -> int | None:
    try:
        return int(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def resolve_alias(
    alias: str, *, client: MlflowClient | None = None, settings: MlflowSettings | None = None
) -> int | None:
    """The version an alias points at, or None: one cheap call, for the scorer's poll."""
    client, settings = _resolve(client, settings)
    return _alias(client, settings.registered_model_name, alias)


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


def _metadata(mv: ModelVersion, aliases: list[str]) -> ModelMetadata:
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


def _metadata_of(client: MlflowClient, name: str, version_or_alias: str | int) -> ModelMetadata:
    mv = _model_version(client, name, version_or_alias)
    return _metadata(mv, _aliases_by_version(client, name).get(int(mv.version), []))


def show(
    version_or_alias: str | int,
    *,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> ModelMetadata:
    """The metadata of a version ("3", 3, "v3") or of the version an alias points at."""
    client, settings = _resolve(client, settings)
    return _metadata_of(client, settings.registered_model_name, version_or_alias)


def list_versions(
    *, client: MlflowClient | None = None, settings: MlflowSettings | None = None
) -> list[ModelMetadata]:
    """Every version of the registered model, newest first ([] before the first register)."""
    client, settings = _resolve(client, settings)
    name = settings.registered_model_name
    try:
        aliases = _aliases_by_version(client, name)
    except MlflowException:
        return []
    versions = client.search_model_versions(f"name = '{name}'")
    metas = [_metadata(mv, aliases.get(int(mv.version), [])) for mv in versions]
    return sorted(metas, key=lambda m: m.version, reverse=True)


def _load_bundle_of(client: MlflowClient, meta: ModelMetadata) -> ScoringModel:
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
    client, settings = _resolve(client, settings)
    meta = _metadata_of(client, settings.registered_model_name, version_or_alias)
    model = _load_bundle_of(client, meta)
    log.info("loaded %s version %s (%s)", meta.name, meta.version, version_or_alias)
    return LoadedModel(meta, model)


def load_scoring_model(
    alias_or_version: str | int,
    *,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> ScoringModel:
    return load_version(alias_or_version, client=client, settings=settings).model


REFERENCE_ARTIFACT = "reference/reference.parquet"


def load_reference(
    version_or_alias: str | int,
    *,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> pd.DataFrame:
    """The version's drift reference: a sample of its training rows, raw feature columns,
    with the model's calibrated `probability` and the label (training.train.write_reference)."""
    client, settings = _resolve(client, settings)
    meta = _metadata_of(client, settings.registered_model_name, version_or_alias)
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
    client, settings = _resolve(client, settings)
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


# --------------------------------------------------------------------------- register


def _scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numeric metrics (MLflow logs only numbers; lists go into the report)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if numeric and math.isfinite(float(value)):
            out[key] = float(value)
    return out


def _param_values(params: Mapping[str, Any]) -> dict[str, str]:
    # MLflow caps a param value at 6000 characters; nested values go in as JSON.
    return {
        k: (v if isinstance(v, str) else json.dumps(v, default=str))[:6000]
        for k, v in params.items()
    }


def _version_tags(
    model: ScoringModel,
    metrics: dict[str, float],
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    test_set_fingerprint: str,
    settings: MlflowSettings,
) -> dict[str, str]:
    """Lineage and evaluation tags; caller tags win (e.g. a dvc_data_hash of one output)."""
    # metadata["calibration"] names a calibration folded into the estimator itself
    # (e.g. CalibratedClassifierCV with calibrator=None); else the calibrator's class.
    default = "none" if model.calibrator is None else type(model.calibrator).__name__
    calibration = str(model.metadata.get("calibration", default))
    base = {
        "feature_service": model.feature_service,
        "definitions_fingerprint": model.definitions_fingerprint,
        "data_fingerprint": str(model.metadata.get("data_fingerprint", UNKNOWN)),
        "dvc_data_hash": dvc_data_hash(get_settings().paths.dvc_lock),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "test_set_fingerprint": test_set_fingerprint,
        "threshold": repr(float(model.threshold)),
        "bands": json.dumps({"low_max": model.low_max, "medium_max": model.medium_max}),
        "feature_columns": json.dumps(model.feature_columns),
        "calibration": calibration,
        "params": json.dumps(dict(params), default=str, sort_keys=True),
    }
    base.update({METRIC_TAG_PREFIX + k: repr(metrics[k]) for k in HEADLINE_METRICS if k in metrics})
    base.update({k: str(v) for k, v in tags.items()})
    return base


def _check_register_inputs(metrics: Mapping[str, float], artifacts: Mapping[str, Path]) -> None:
    if TEST_AUC not in metrics:
        raise ValueError(f"metrics lack {TEST_AUC!r}: the promotion gate compares it")
    missing = [str(p) for p in artifacts.values() if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"artifacts to log do not exist: {', '.join(missing)}")


def _experiment_id(client: MlflowClient, settings: MlflowSettings) -> str:
    experiment = client.get_experiment_by_name(settings.experiment_name)
    if experiment is not None:
        return str(experiment.experiment_id)
    return client.create_experiment(
        settings.experiment_name, artifact_location=settings.artifact_location
    )


def _log_artifacts(artifacts: Mapping[str, Path]) -> None:
    for key, path in artifacts.items():
        if Path(path).is_dir():
            mlflow.log_artifacts(str(path), artifact_path=key)
        else:
            mlflow.log_artifact(str(path), artifact_path=key)


def _log_model(model: ScoringModel, workdir: Path) -> str:
    bundle = save_bundle(model, workdir / BUNDLE_FILENAME)
    with quiet_pyfunc_warnings():
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT_NAME, **pyfunc_model_kwargs(model, bundle)
        )
    return str(info.model_uri)


def _log_card(
    client: MlflowClient, meta: ModelMetadata, artifacts: Mapping[str, Path], workdir: Path
) -> None:
    report_path = artifacts.get(REPORT_JSON_KEY)
    report = load_report(Path(report_path) if report_path else None)
    card = write_model_card(meta, report, workdir / f"model_card_v{meta.version}.html")
    if meta.run_id:
        client.log_artifact(meta.run_id, str(card), artifact_path="model_card")


def register(
    model: ScoringModel,
    metrics: Mapping[str, Any],
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    artifacts: Mapping[str, Path],
    test_set_fingerprint: str,
    *,
    run_name: str | None = None,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> ModelMetadata:
    """Log a run, register its pyfunc model as a new version, tag it, make it `challenger`.

    metrics must hold TEST_AUC ("test_roc_auc"); TEST_PR_AUC, TEST_F1, TEST_BRIER are tagged
    too when present. artifacts maps a run folder name to a file or directory; the file under
    REPORT_JSON_KEY also feeds the model card, which is logged under model_card/.
    """
    client, settings = _resolve(client, settings)
    # The fluent calls below use the global URIs; registry == tracking, as register_model assumes.
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(client.tracking_uri)
    scalars = _scalar_metrics(metrics)
    _check_register_inputs(scalars, artifacts)
    version_tags = _version_tags(model, scalars, params, tags, test_set_fingerprint, settings)
    name = settings.registered_model_name
    with (
        tempfile.TemporaryDirectory(prefix="collectwise-register-") as tmp,
        mlflow.start_run(experiment_id=_experiment_id(client, settings), run_name=run_name),
    ):
        mlflow.log_params(_param_values(params))
        mlflow.log_metrics(scalars)
        mlflow.set_tags({k: v for k, v in version_tags.items() if k in _RUN_TAGS or k in tags})
        _log_artifacts(artifacts)
        mv = mlflow.register_model(_log_model(model, Path(tmp)), name, tags=version_tags)
        meta = _metadata(client.get_model_version(name, str(mv.version)), [])
        _log_card(client, meta, artifacts, Path(tmp))
    # Last, so a watcher never sees a challenger whose run is still being written.
    client.set_registered_model_alias(name, CHALLENGER, str(mv.version))
    log.info("registered %s version %s as %s", name, mv.version, CHALLENGER)
    return show(mv.version, client=client, settings=settings)


# --------------------------------------------------------------------------- promote / rollback


@dataclass(frozen=True)
class _Decision:
    reason: str
    champion_auc: float | None


def _candidate(client: MlflowClient, name: str, version: str | int | None) -> ModelMetadata:
    if version is None and _alias(client, name, CHALLENGER) is None:
        raise RegistryError(f"{name} has no {CHALLENGER}: name the version to promote")
    return _metadata_of(client, name, CHALLENGER if version is None else version)


def _champion_auc(
    client: MlflowClient,
    candidate: ModelMetadata,
    champion: ModelMetadata,
    evaluate_champion: Callable[[ScoringModel], float] | None,
) -> tuple[float, str]:
    """The champion's test AUC on the candidate's test set, and how it was obtained."""
    same = champion.test_set_fingerprint == candidate.test_set_fingerprint != UNKNOWN
    if same and champion.test_auc is not None:
        return champion.test_auc, f"same test set {candidate.test_set_fingerprint}"
    if evaluate_champion is None:
        raise IncomparableTestSets(
            f"cannot compare: candidate v{candidate.version} (test AUC {candidate.test_auc}) was "
            f"tested on {candidate.test_set_fingerprint}, champion v{champion.version} (test AUC "
            f"{champion.test_auc}) on {champion.test_set_fingerprint}; re-score the champion on "
            "the candidate's test set (evaluate_champion) or promote with --force"
        )
    auc = float(evaluate_champion(_load_bundle_of(client, champion)))
    log.info("re-scored champion v%s on the candidate's test set: AUC %.4f", champion.version, auc)
    return auc, f"champion re-scored on test set {candidate.test_set_fingerprint}"


def _gate(
    client: MlflowClient,
    candidate: ModelMetadata,
    champion: ModelMetadata | None,
    margin: float,
    evaluate_champion: Callable[[ScoringModel], float] | None,
    live_fingerprint: Callable[[str], str] | None = None,
) -> _Decision:
    if candidate.test_auc is None:
        raise PromotionRefused(f"v{candidate.version} has no {TEST_AUC} tag to compare")
    servable = _servable_decision(candidate, champion, live_fingerprint)
    if servable is not None:
        return servable
    if champion is None:
        return _Decision(f"first champion (test AUC {candidate.test_auc:.4f})", None)
    champion_auc, basis = _champion_auc(client, candidate, champion, evaluate_champion)
    gain = candidate.test_auc - champion_auc
    summary = (
        f"candidate v{candidate.version} test AUC {candidate.test_auc:.4f} vs champion "
        f"v{champion.version} {champion_auc:.4f} ({basis}): gain {gain:+.4f}, margin {margin:.4f}"
    )
    # A hair of tolerance so a gain of exactly the margin is not lost to float rounding.
    if gain + 1e-12 < margin:
        raise PromotionRefused(f"promotion refused: {summary}")
    return _Decision(summary, champion_auc)


def _servable_decision(
    candidate: ModelMetadata,
    champion: ModelMetadata | None,
    live_fingerprint: Callable[[str], str] | None,
) -> _Decision | None:
    """Against the live feature definitions (when given): a candidate the scorer would
    refuse is never promoted; one that replaces a champion the scorer already refuses is
    promoted without the AUC comparison, since the alternative is serving nothing."""
    if live_fingerprint is None:
        return None
    live = live_fingerprint(candidate.feature_service)
    if candidate.definitions_fingerprint != live:
        raise PromotionRefused(
            f"promotion refused: v{candidate.version} was trained on feature definitions of "
            f"{candidate.feature_service} that are not live (model "
            f"{candidate.definitions_fingerprint[:12]}, live registry {live[:12]}): the "
            "scorer would not serve it; retrain it"
        )
    if champion is None:
        return None
    if champion.definitions_fingerprint != live_fingerprint(champion.feature_service):
        return _Decision(
            f"champion v{champion.version} cannot be served: the feature definitions it was "
            f"trained on changed; v{candidate.version} matches the live registry "
            f"(test AUC {candidate.test_auc:.4f})",
            None,
        )
    return None


def _read_json_tag(client: MlflowClient, name: str, key: str) -> list[Any]:
    value = client.get_registered_model(name).tags.get(key)
    try:
        loaded = json.loads(value) if value else []
    except ValueError:
        return []
    return loaded if isinstance(loaded, list) else []


def _record(client: MlflowClient, name: str, event: dict[str, Any], stack: list[int]) -> None:
    """Append to the champion history and save the rollback stack (both model-level tags)."""
    history = [*_read_json_tag(client, name, HISTORY_TAG), event][-_HISTORY_KEEP:]
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    client.set_registered_model_tag(name, STACK_TAG, json.dumps(stack[-_HISTORY_KEEP:]))


def _move_champion(
    client: MlflowClient, candidate: ModelMetadata, champion: ModelMetadata | None
) -> None:
    """previous-champion first, then champion: the champion alias is never left unset."""
    name, version = candidate.name, str(candidate.version)
    if champion is not None:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, str(champion.version))
        client.set_model_version_tag(name, str(champion.version), "superseded_by", version)
        client.set_model_version_tag(name, str(champion.version), "superseded_at", _now())
    client.set_registered_model_alias(name, CHAMPION, version)
    if CHALLENGER in candidate.aliases:
        client.delete_registered_model_alias(name, CHALLENGER)


def promote(
    version: str | int | None = None,
    *,
    margin: float | None = None,
    force: bool = False,
    who: str | None = None,
    why: str | None = None,
    evaluate_champion: Callable[[ScoringModel], float] | None = None,
    live_fingerprint: Callable[[str], str] | None = None,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> ModelMetadata:
    """Make `version` (default: the challenger) the champion if it passes the gate.

    The gate: test AUC at least `margin` (default settings.promotion_margin) above the
    champion's on the same test set (same test_set_fingerprint tag), or on the candidate's
    test set through `evaluate_champion` when the fingerprints differ. With
    `live_fingerprint` (feature service -> the live registry's definitions fingerprint) it
    first checks what the scorer checks: a candidate trained on other definitions is
    refused, and one replacing a champion trained on other definitions passes. force=True
    skips the gate and needs who and why. Raises PromotionRefused / IncomparableTestSets.
    """
    client, settings = _resolve(client, settings)
    name = settings.registered_model_name
    if force:
        _require_who_why(who, why, "a forced promotion")
    candidate = _candidate(client, name, version)
    current = resolve_alias(CHAMPION, client=client, settings=settings)
    if current == candidate.version:
        raise RegistryError(f"{name} v{candidate.version} is already the {CHAMPION}")
    champion = None if current is None else _metadata_of(client, name, current)
    if force:
        decision = _Decision(f"forced: {why}", None)
    else:
        margin = settings.promotion_margin if margin is None else margin
        decision = _gate(client, candidate, champion, margin, evaluate_champion, live_fingerprint)
    _tag_promotion(client, candidate, decision, who, forced=force)
    _move_champion(client, candidate, champion)
    stack = [int(v) for v in _read_json_tag(client, name, STACK_TAG)]
    event = _event("promote", candidate.version, current, who or "promotion-gate", decision.reason)
    _record(client, name, {**event, "forced": force}, [*stack, candidate.version])
    log.info("%s v%s is now %s: %s", name, candidate.version, CHAMPION, decision.reason)
    return show(candidate.version, client=client, settings=settings)


def _require_who_why(who: str | None, why: str | None, what: str) -> None:
    if not (who and who.strip() and why and why.strip()):
        raise ValueError(f"{what} needs who and why (recorded on the version)")


def _event(action: str, version: int, previous: int | None, who: str, why: str) -> dict[str, Any]:
    return {
        "action": action,
        "version": version,
        "from": previous,
        "at": _now(),
        "by": who,
        "reason": why,
    }


def _tag_promotion(
    client: MlflowClient,
    candidate: ModelMetadata,
    decision: _Decision,
    who: str | None,
    *,
    forced: bool,
) -> None:
    tags = {
        "promoted_at": _now(),
        "promoted_by": who or "promotion-gate",
        "promotion_reason": decision.reason,
        "promotion_forced": str(forced).lower(),
    }
    if decision.champion_auc is not None:
        tags["champion_auc_at_promotion"] = repr(decision.champion_auc)
    for key, value in tags.items():
        client.set_model_version_tag(candidate.name, str(candidate.version), key, value)
    # A version rolled back once and promoted again is no longer "rolled back"; the champion
    # history keeps the rollback.
    for key in _ROLLBACK_TAGS & candidate.tags.keys():
        client.delete_model_version_tag(candidate.name, str(candidate.version), key)


def _previous_after_rollback(stack: list[int], restored: int) -> tuple[list[int], int | None]:
    """Pop the rolled-back champion; the one below the restored version is the next fallback."""
    if restored not in stack:  # aliases were moved by hand: trust them, start a fresh stack
        return [restored], None
    stack = stack[: len(stack) - stack[::-1].index(restored)]
    return stack, (stack[-2] if len(stack) >= 2 else None)


def rollback(
    who: str,
    why: str,
    *,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> ModelMetadata:
    """Make `previous-champion` the champion again and mark the current one rolled back."""
    client, settings = _resolve(client, settings)
    name = settings.registered_model_name
    _require_who_why(who, why, "a rollback")
    restored = resolve_alias(PREVIOUS_CHAMPION, client=client, settings=settings)
    if restored is None:
        raise RegistryError(f"{name} has no {PREVIOUS_CHAMPION} to roll back to")
    current = resolve_alias(CHAMPION, client=client, settings=settings)
    client.set_registered_model_alias(name, CHAMPION, str(restored))
    if current is not None:
        tags = {"rolled_back_by": who, "rolled_back_at": _now(), "rolled_back_why": why}
        for key, value in tags.items():
            client.set_model_version_tag(name, str(current), key, value)
    stack = [int(v) for v in _read_json_tag(client, name, STACK_TAG)]
    stack, previous = _previous_after_rollback(stack, restored)
    if previous is None:
        client.delete_registered_model_alias(name, PREVIOUS_CHAMPION)
    else:
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, str(previous))
    _record(client, name, _event("rollback", restored, current, who, why), stack)
    log.info("%s rolled back from v%s to v%s by %s", name, current, restored, who)
    return show(restored, client=client, settings=settings)


def champion_history(
    *, client: MlflowClient | None = None, settings: MlflowSettings | None = None
) -> list[dict[str, Any]]:
    """Promotions and rollbacks, oldest first (for the console's audit view)."""
    client, settings = _resolve(client, settings)
    try:
        return _read_json_tag(client, settings.registered_model_name, HISTORY_TAG)
    except MlflowException:
        return []


# --------------------------------------------------------------------------- model card


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
    client, settings = _resolve(client, settings)
    return _report_of(
        client, _metadata_of(client, settings.registered_model_name, version_or_alias)
    )


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
    client, settings = _resolve(client, settings)
    meta = _metadata_of(client, settings.registered_model_name, version_or_alias)
    return write_model_card(meta, _report_of(client, meta), out)
