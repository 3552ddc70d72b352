"""The trained candidate: `training.train.fit` (compare, tune, refit with the monotone
constraints, calibrate, threshold, bands) on the integration tier's generated data, read
through a real Feast training set, exactly as `collectwise train fit` makes one."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from ingestion.retrieval import apply_scratch_repo
from tests.integration import conftest as integration
from tests.integration.conftest import FeatureData
from training.dataset import build_training_set, read_dataset
from training.scoring_model import ScoringModel, load_bundle
from training.train import MODEL_FILE, TrainParams, fit

# The session fixture of the integration tier, shared rather than rebuilt.
feature_data = integration.feature_data

# Small but real: both boosters compared, xgboost tuned for a few trials, then the chosen
# model refitted with the domain's monotone constraints and calibrated.
CANDIDATE_PARAMS = TrainParams(
    candidates=[
        {"kind": "xgboost", "imbalance": "class_weight"},
        {"kind": "lightgbm", "imbalance": "class_weight"},
    ],
    tune_kinds=["xgboost"],
    tune_imbalances=["class_weight"],
    n_trials=3,
    timeout_seconds=120,
    cv_splits=2,
)


@dataclass(frozen=True)
class Candidate:
    model: ScoringModel
    dataset: pd.DataFrame  # full-named features, ids, label and protected attributes
    summary: dict[str, object]


@pytest.fixture(scope="session")
def candidate(feature_data: FeatureData, tmp_path_factory: pytest.TempPathFactory) -> Candidate:
    root = tmp_path_factory.mktemp("candidate")
    applied = apply_scratch_repo(
        root / "repo",
        feature_data.features_dir,
        "cwtest_candidate",
        online={"type": "sqlite", "path": str(root / "online.db")},
    )
    dataset_dir = root / "dataset"
    build_training_set(
        applied.store, feature_data.features_dir, feature_data.root / "validated", dataset_dir
    )
    summary = fit(dataset_dir, root / "model", CANDIDATE_PARAMS, root / "studies.db")
    model = load_bundle(root / "model" / MODEL_FILE)
    return Candidate(model, read_dataset(dataset_dir), summary)
