"""`collectwise audit verify / replay` against a real MLflow registry (SQLite, temp dir).

A tiny logistic regression is registered, a batch request's scores are logged with their
vectors, and replay reloads the named version and reproduces each score; a tampered
probability makes both replay and verify fail.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from collectwise.audit_cli import app
from collectwise.settings import MlflowSettings, get_settings
from serving.audit import AuditLog
from tests.unit.test_audit import make_event
from training.registry import TEST_AUC, register, tracking_client
from training.scoring_model import ScoringModel

pytestmark = pytest.mark.integration

# Real feature names: registration refuses a feature without a reason code.
COLUMNS = [
    "account_payment_velocity__balance_change_6m",
    "customer_financial_ratios__debt_to_income_ratio",
    "account_payment_velocity__seasonal_payment_pattern",
]
MODEL_NAME = "cr-audit-replay"
ENV_KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ScoringModel, int]]:
    """One registered version in a temp MLflow; the CLI finds it through the environment."""
    root = tmp_path_factory.mktemp("mlflow")
    (root / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    settings = MlflowSettings(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_location=(root / "artifacts").as_uri(),
        registered_model_name=MODEL_NAME,
    )
    rng = np.random.default_rng(5)
    x = pd.DataFrame(rng.normal(size=(300, 3)), columns=COLUMNS)
    y = (x[COLUMNS[0]] + x[COLUMNS[1]] + rng.normal(size=300) > 0).astype(int)
    model = ScoringModel(
        LogisticRegression().fit(x, y), None, 0.5, 0.2, 0.6, COLUMNS, "collection_risk_v1", "fp"
    )
    saved = {k: os.environ.get(k) for k in (*ENV_KEYS, "COLLECTWISE_MLFLOW__TRACKING_URI")}
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    meta = register(
        model,
        metrics={TEST_AUC: 0.8},
        params={"model": "logistic"},
        tags={},
        artifacts={},
        test_set_fingerprint="test-set",
        client=tracking_client(settings),
        settings=settings,
    )
    # The CLI reads get_settings(): point it at this MLflow.
    os.environ["COLLECTWISE_MLFLOW__TRACKING_URI"] = settings.tracking
    get_settings.cache_clear()
    yield model, meta.version
    get_settings.cache_clear()
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _log_batch(db: Path, model: ScoringModel, version: int) -> None:
    vectors = [[2.0, 1.5, -0.3], [-1.0, 0.2, 0.7]]
    probabilities = model.predict_proba_rows(vectors)
    events = [
        make_event(
            i,
            "req-batch",
            vector=vector,
            probability=float(p),
            band=model.band(float(p)),
            decision=model.decide(float(p)),
            model_name=MODEL_NAME,
            model_version=version,
        )
        for i, (vector, p) in enumerate(zip(vectors, probabilities, strict=True))
    ]
    AuditLog(db).append([make_event(7, "req-other", model_name=MODEL_NAME), *events])


def test_replay_reproduces_logged_scores_and_catches_tampering(registered, tmp_path):
    model, version = registered
    db = tmp_path / "audit.db"
    _log_batch(db, model, version)
    runner = CliRunner()

    verified = runner.invoke(app, ["verify", "--db", str(db)])
    assert verified.exit_code == 0, verified.output
    assert "audit chain holds: 3 rows" in verified.output

    replayed = runner.invoke(app, ["replay", "req-batch", "--db", str(db)])
    assert replayed.exit_code == 0, replayed.output
    assert replayed.output.count("MATCH") == 2 and "MISMATCH" not in replayed.output
    assert f"{MODEL_NAME} v{version}" in replayed.output

    one = runner.invoke(app, ["replay", "req-batch", "--account", "A00001", "--db", str(db)])
    assert one.exit_code == 0 and one.output.count("MATCH") == 1 and "A00001" in one.output

    missing = runner.invoke(app, ["replay", "req-none", "--db", str(db)])
    assert missing.exit_code == 1

    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute(
        "UPDATE audit_log SET probability = probability + 1e-6 "
        "WHERE request_id = ? AND account_id = ?",
        ("req-batch", "A00001"),
    )
    conn.commit()
    conn.close()

    tampered = runner.invoke(app, ["replay", "req-batch", "--db", str(db)])
    assert tampered.exit_code == 1
    assert tampered.output.count("MISMATCH") == 1
    assert "no longer matches its hash" in tampered.output

    broken = runner.invoke(app, ["verify", "--db", str(db)])
    assert broken.exit_code == 1
    assert "broken at seq 3" in broken.output and "seq 3 was changed" in broken.output


def test_verify_without_a_log_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLECTWISE_PATHS__AUDIT_DB", str(tmp_path / "absent.db"))
    result = CliRunner().invoke(app, ["verify"])
    assert result.exit_code == 1
    assert not (tmp_path / "absent.db").exists()
