"""Registering a model: log its run, register the pyfunc model as a new version, tag its
lineage and evaluation, log its model card, and make it the `challenger`."""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient

from collectwise.settings import MlflowSettings
from training.reason_codes import check_covered
from training.registry.bars import (
    CheckResult,
    GateChecksFailed,
    check_tags,
    failed,
    summary,
)
from training.registry.clients import client_and_settings
from training.registry.lineage import LINEAGE_TAGS, lineage_tags
from training.registry.reports import log_model_card
from training.registry.versions import (
    CHALLENGER,
    HEADLINE_METRICS,
    METRIC_TAG_PREFIX,
    TEST_AUC,
    ModelMetadata,
    metadata_from,
    show,
)
from training.scoring_model import (
    BUNDLE_FILENAME,
    ScoringModel,
    pyfunc_model_kwargs,
    quiet_pyfunc_warnings,
    save_bundle,
)

log = logging.getLogger(__name__)

MODEL_ARTIFACT_NAME = "model"


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
) -> dict[str, str]:
    """Lineage and evaluation tags; caller tags win (e.g. a dvc_data_hash of one output)."""
    # metadata["calibration"] names a calibration folded into the estimator itself
    # (e.g. CalibratedClassifierCV with calibrator=None); else the calibrator's class.
    default = "none" if model.calibrator is None else type(model.calibrator).__name__
    calibration = str(model.metadata.get("calibration", default))
    base = {
        **lineage_tags(model, test_set_fingerprint),
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


def register(
    model: ScoringModel,
    metrics: Mapping[str, Any],
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    artifacts: Mapping[str, Path],
    test_set_fingerprint: str,
    *,
    checks: Sequence[CheckResult] = (),
    run_name: str | None = None,
    client: MlflowClient | None = None,
    settings: MlflowSettings | None = None,
) -> ModelMetadata:
    """Log a run, register its pyfunc model as a new version, tag it, make it `challenger`.

    metrics must hold TEST_AUC ("test_roc_auc"); TEST_PR_AUC, TEST_F1, TEST_BRIER are tagged
    too when present. artifacts maps a run folder name to a file or directory; the file under
    REPORT_JSON_KEY also feeds the model card, which is logged under model_card/.
    `checks` (training.registry.bars) are recorded as tags; a version that fails one is
    registered, so the record exists, but never made challenger: GateChecksFailed says why.
    """
    # Before anything is logged: a version whose reasons have no code must never exist.
    check_covered(model.feature_columns, model.feature_service)
    client, settings = client_and_settings(client, settings)
    # The fluent calls below use the global URIs; registry == tracking, as register_model assumes.
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(client.tracking_uri)
    scalars = _scalar_metrics(metrics)
    _check_register_inputs(scalars, artifacts)
    version_tags = {
        **_version_tags(model, scalars, params, tags, test_set_fingerprint),
        **check_tags(checks),
    }
    name = settings.registered_model_name
    with (
        tempfile.TemporaryDirectory(prefix="collectwise-register-") as tmp,
        mlflow.start_run(experiment_id=_experiment_id(client, settings), run_name=run_name),
    ):
        mlflow.log_params(_param_values(params))
        mlflow.log_metrics(scalars)
        mlflow.set_tags({k: v for k, v in version_tags.items() if k in LINEAGE_TAGS or k in tags})
        _log_artifacts(artifacts)
        mv = mlflow.register_model(_log_model(model, Path(tmp)), name, tags=version_tags)
        meta = metadata_from(client.get_model_version(name, str(mv.version)), [])
        log_model_card(client, meta, artifacts, Path(tmp))
    if failed(checks):
        raise GateChecksFailed(
            f"{name} v{mv.version} registered but not made {CHALLENGER}: it fails its gate "
            f"checks ({summary(checks)})"
        )
    # Last, so a watcher never sees a challenger whose run is still being written.
    client.set_registered_model_alias(name, CHALLENGER, str(mv.version))
    log.info("registered %s version %s as %s", name, mv.version, CHALLENGER)
    return show(mv.version, client=client, settings=settings)
