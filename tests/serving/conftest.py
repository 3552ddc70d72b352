"""A real scorer over a temporary Feast repo (SQLite online) and a temporary MLflow.

The model is a small XGBoost fitted on the repo's own training set, registered and promoted
through training.registry, so fingerprints, aliases and reason codes are all the real ones.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from feast import FeatureStore

from benchmarks.scorer_harness import private_redis
from collectwise.settings import Settings
from feature_repo.feature_services import COLLECTION_RISK_V1
from ingestion.feast_store import materialize_latest
from ingestion.retrieval import apply_scratch_repo
from tests.integration import conftest as integration
from tests.integration.conftest import FeatureData
from tests.mlflow_env import temporary_mlflow
from training import registry
from training.dataset import build_training_set, read_dataset
from training.estimators import build_estimator
from training.fingerprint import definitions_fingerprint
from training.model_matrix import model_matrix
from training.scoring_model import ScoringModel

# The session fixture of the integration tier, shared rather than rebuilt.
feature_data = integration.feature_data

SCORE_KEY = "cw_test_score_key"
ADMIN_KEY = "cw_test_admin_key"
SLOW_KEY = "cw_test_slow_key"


@dataclass
class ScorerWorld:
    store: FeatureStore
    data: FeatureData
    dataset: pd.DataFrame
    root: Path


def key_entries() -> str:
    def entry(name: str, key: str, scopes: list[str], rate: int | None = None) -> dict[str, object]:
        return {
            "name": name,
            "sha256": hashlib.sha256(key.encode()).hexdigest(),
            "scopes": scopes,
            "rate_per_minute": rate,
        }

    return json.dumps(
        [
            entry("platform", SCORE_KEY, ["score"]),
            entry("ops", ADMIN_KEY, ["admin"]),
            entry("slow", SLOW_KEY, ["score"], rate=2),
        ]
    )


def scorer_settings(root: Path, **serving: object) -> Settings:
    """Platform settings whose logs live under root; keyword arguments set serving fields."""
    values: dict[str, object] = {
        "api_keys": key_entries(),
        "model_refresh_seconds": 0.2,
        "store_probe_seconds": 0.2,
        "challenger_mode": "shadow",
    }
    values.update(serving)
    paths = {"audit_db": root / "audit.db", "served_dir": root / "served"}
    return Settings(home=root, paths=paths, serving=values)  # type: ignore[arg-type]


def fit_model(world: ScorerWorld, seed: int = 0, trees: int = 40) -> ScoringModel:
    x = model_matrix(world.dataset)
    y = world.dataset["default_30d"].to_numpy()
    params = {"n_estimators": trees, "max_depth": 3, "n_jobs": 1}
    estimator = build_estimator("xgboost", params, "none", None, None, seed).fit(x, y)
    return ScoringModel(
        estimator=estimator,
        calibrator=None,
        threshold=0.4,
        low_max=0.2,
        medium_max=0.5,
        feature_columns=list(x.columns),
        feature_service=COLLECTION_RISK_V1,
        definitions_fingerprint=definitions_fingerprint(world.store, COLLECTION_RISK_V1),
    )


def register_model(model: ScoringModel, auc: float) -> registry.ModelMetadata:
    return registry.register(
        model,
        metrics={registry.TEST_AUC: auc},
        params={"kind": "xgboost"},
        tags={},
        artifacts={},
        test_set_fingerprint="scorer-tests",
    )


@pytest.fixture(scope="module")
def mlflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with temporary_mlflow(tmp_path_factory.mktemp("mlflow")) as root:
        yield root


@pytest.fixture(scope="module")
def world(
    feature_data: FeatureData, tmp_path_factory: pytest.TempPathFactory, mlflow_env: Path
) -> ScorerWorld:
    root = tmp_path_factory.mktemp("scorer")
    online = {"type": "sqlite", "path": str(root / "online.db")}
    applied = apply_scratch_repo(
        root / "repo", feature_data.features_dir, "cwtest_scorer", online=online
    )
    materialize_latest(applied.store, feature_data.as_of)
    build_training_set(
        applied.store, feature_data.features_dir, feature_data.root / "validated", root / "ds"
    )
    world = ScorerWorld(applied.store, feature_data, read_dataset(root / "ds"), root)
    champion = register_model(fit_model(world), auc=0.8)
    registry.promote(champion.version)
    return world


def serve(app: FastAPI) -> TestClient:
    """A client that runs the app's lifespan (start-up and shutdown) around the block."""
    return TestClient(app)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A Redis of the test's own, to freeze or kill for real."""
    with private_redis(tmp_path) as (server, port):
        yield server, port


def eventually(check: Any, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False
