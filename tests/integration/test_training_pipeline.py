"""The whole training path on small synthetic data: Feast training set -> fit -> evaluate ->
register into a temporary MLflow, then the promotion gate and rollback on real versions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingestion.retrieval import apply_scratch_repo
from tests.integration.conftest import FeatureData
from tests.mlflow_env import temporary_mlflow
from training import registry
from training.dataset import build_training_set
from training.train import TrainParams, evaluate_and_report, fit, register_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARAMS = TrainParams(
    candidates=[
        {"kind": "logistic", "imbalance": "class_weight"},
        {"kind": "xgboost", "imbalance": "smote"},
    ],
    tune_kinds=["xgboost"],
    tune_imbalances=["class_weight"],
    n_trials=2,
    timeout_seconds=60,
    cv_splits=2,
)


@pytest.fixture(scope="module")
def mlflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with temporary_mlflow(tmp_path_factory.mktemp("mlflow")) as root:
        yield root


@pytest.fixture(scope="module")
def dataset(feature_data: FeatureData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("training")
    applied = apply_scratch_repo(
        root / "repo",
        feature_data.features_dir,
        "cwtest_train",
        online={"type": "sqlite", "path": str(root / "online.db")},
    )
    out = root / "dataset"
    build_training_set(
        applied.store,
        feature_data.features_dir,
        feature_data.root / "validated",
        out,
        oracle_dir=feature_data.root / "raw" / "_oracle",
    )
    return out


def train_once(dataset: Path, root: Path, seed: int) -> Path:
    params = TrainParams(**{**PARAMS.__dict__, "seed": seed})
    model_dir, report_dir = root / f"model{seed}", root / f"report{seed}"
    fit(dataset, model_dir, params, root / "studies.db")
    evaluate_and_report(dataset, model_dir, report_dir, params)
    return report_dir


def test_train_register_promote_rollback(dataset: Path, mlflow_env: Path, tmp_path: Path) -> None:
    report_dir = train_once(dataset, tmp_path, seed=0)
    metrics = json.loads((report_dir / "metrics.json").read_text())
    assert 0.6 < metrics["test_roc_auc"] <= 1.0
    assert (report_dir / "evaluation.html").read_text().count("<img") >= 3
    report = json.loads((report_dir / "evaluation.json").read_text())
    assert {"age_band", "sex"} <= set(report["fairness"]["attributes"])
    assert report["importance"], "global SHAP importance is logged"

    first = register_model(tmp_path / "model0", report_dir, PARAMS)
    assert first.aliases == ["challenger"]
    assert first.feature_service == "collection_risk_v1"
    assert len(first.definitions_fingerprint) == 64
    assert first.tags["test_set_fingerprint"] == first.test_set_fingerprint
    assert registry.promote().version == first.version

    # A second model on the same test rows: the gate decides on AUC by the margin.
    second_report = train_once(dataset, tmp_path, seed=1)
    second = register_model(tmp_path / "model1", second_report, PARAMS)
    assert second.test_set_fingerprint == first.test_set_fingerprint
    with pytest.raises(registry.PromotionRefused):
        registry.promote(second.version, margin=1.0)  # an impossible margin: refused
    forced = registry.promote(second.version, force=True, who="tester", why="integration test")
    assert "champion" in forced.aliases and forced.promoted_by == "tester"
    restored = registry.rollback("tester", "back to the first")
    assert restored.version == first.version and "champion" in restored.aliases
    champion = registry.load_scoring_model("champion")
    assert champion.feature_columns == registry.show(first.version).feature_columns

    # The drift reference travels with the model: raw feature columns, scores and labels.
    reference = registry.load_reference(first.version)
    assert {"account_id", "event_timestamp", "probability", "default_30d"} <= set(reference)
    assert "account_payment_velocity__debt_amount" in reference
    assert not any(c.startswith(("protected__", "oracle__")) for c in reference.columns)
    assert reference["probability"].between(0, 1).all()

    # Importance is tracked per version as run metrics, comparable across runs.
    history = registry.importance_history()
    assert set(history.index) == {first.version, second.version}
    assert history.notna().any(axis=1).all() and (history.fillna(0) >= 0).all().all()
