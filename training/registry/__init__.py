"""The MLflow model registry of `collection-risk`: register, promote, roll back, inspect, load.

Aliases carry the state the scorer watches: a new version becomes `challenger`; the promotion
gate moves `champion` (the old champion becomes `previous-champion`); rollback moves it back.
Every alias move is a single registry write, so a scorer polling `resolve_alias` always sees
a complete version. Lineage and evaluation live in version tags, so `mlflow ui` shows them
and the registry alone can answer "what is serving and where did it come from".

Every function takes an optional MlflowClient (the scorer builds one with `tracking_client`
and keeps it) and optional settings; without them it uses get_settings().mlflow.

Modules: clients (the client and settings), lineage (git, DVC, lineage tags), versions
(metadata and reading), registration (register), gate (promote, rollback, champion
history), bars (the quality bars recorded on a version), reports (evaluation report,
model card), drift_score (the latest data drift score of a version). Callers import from here.
"""

from training.registry.bars import (
    CHECKS_PASSED_TAG,
    CheckResult,
    GateChecksFailed,
    quality_checks,
    recorded_checks,
)
from training.registry.clients import tracking_client
from training.registry.drift_score import DATA_DRIFT_SCORE, record_data_drift
from training.registry.gate import (
    HISTORY_TAG,
    STACK_TAG,
    champion_history,
    promote,
    rollback,
)
from training.registry.lineage import UNKNOWN, dvc_data_hash, git_commit, git_dirty
from training.registry.registration import MODEL_ARTIFACT_NAME, register
from training.registry.reports import REPORT_JSON_KEY, card_for_version, evaluation_report
from training.registry.versions import (
    CHALLENGER,
    CHAMPION,
    HEADLINE_METRICS,
    METRIC_TAG_PREFIX,
    PREVIOUS_CHAMPION,
    REFERENCE_ARTIFACT,
    TEST_AUC,
    TEST_BRIER,
    TEST_F1,
    TEST_PR_AUC,
    IncomparableTestSets,
    LoadedModel,
    ModelMetadata,
    PromotionRefused,
    RegistryError,
    importance_history,
    list_versions,
    load_reference,
    load_scoring_model,
    load_version,
    model_uri,
    resolve_alias,
    show,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "CHECKS_PASSED_TAG",
    "DATA_DRIFT_SCORE",
    "HEADLINE_METRICS",
    "HISTORY_TAG",
    "METRIC_TAG_PREFIX",
    "MODEL_ARTIFACT_NAME",
    "PREVIOUS_CHAMPION",
    "REFERENCE_ARTIFACT",
    "REPORT_JSON_KEY",
    "STACK_TAG",
    "TEST_AUC",
    "TEST_BRIER",
    "TEST_F1",
    "TEST_PR_AUC",
    "UNKNOWN",
    "CheckResult",
    "GateChecksFailed",
    "IncomparableTestSets",
    "LoadedModel",
    "ModelMetadata",
    "PromotionRefused",
    "RegistryError",
    "card_for_version",
    "champion_history",
    "dvc_data_hash",
    "evaluation_report",
    "git_commit",
    "git_dirty",
    "importance_history",
    "list_versions",
    "load_reference",
    "load_scoring_model",
    "load_version",
    "model_uri",
    "promote",
    "quality_checks",
    "record_data_drift",
    "recorded_checks",
    "register",
    "resolve_alias",
    "rollback",
    "show",
    "tracking_client",
]
