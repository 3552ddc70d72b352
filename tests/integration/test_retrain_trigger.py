"""The retraining trigger against a real (temporary) MLflow registry.

No real training runs: the configured command is a small script that registers a tiny
logistic regression as a new version (which the registry makes `challenger`), or one that
fails. What is under test is the trigger's bookkeeping and that it never promotes.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from pydantic import ValidationError
from sklearn.linear_model import LogisticRegression

from collectwise.settings import MlflowSettings, MonitoringSettings, load_settings
from monitoring.job_finish import finish_job
from monitoring.job_result import JobResult
from monitoring.monitor_db import MonitoringStore
from monitoring.retrain import trigger_retrain
from training.registry import (
    CHALLENGER,
    CHAMPION,
    TEST_AUC,
    list_versions,
    promote,
    register,
    resolve_alias,
    tracking_client,
)
from training.scoring_model import ScoringModel

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)
# Real feature names: registration refuses a feature without a reason code.
COLUMNS = [
    "account_payment_velocity__balance_change_6m",
    "account_payment_velocity__trend_direction",
]

REGISTER_SCRIPT = """
import numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
from training.scoring_model import ScoringModel
from training.registry import TEST_AUC, register
from collectwise.settings import get_settings

rng = np.random.default_rng(3)
x = pd.DataFrame(rng.normal(size=(200, 2)), columns={columns!r})
y = (x.iloc[:, 0] + rng.normal(size=200) > 0).astype(int)
model = ScoringModel(LogisticRegression().fit(x, y), None, 0.5, 0.2, 0.6, {columns!r},
                     "collection_risk_v1", "defs-fp")
meta = register(model, {{TEST_AUC: 0.9}}, {{"model": "logistic"}}, {{}}, {{}}, "test-set",
                settings=get_settings().mlflow)
print("registered version", meta.version)
"""


def _tiny_model() -> ScoringModel:
    rng = np.random.default_rng(1)
    x = pd.DataFrame(rng.normal(size=(200, 2)), columns=COLUMNS)
    y = (x[COLUMNS[0]] > 0).astype(int)
    estimator = LogisticRegression().fit(x, y)
    return ScoringModel(estimator, None, 0.5, 0.2, 0.6, COLUMNS, "collection_risk_v1", "defs-fp")


@pytest.fixture(scope="module")
def mlflow_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One SQLite-backed MLflow for the module; the global MLflow URIs are restored after."""
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield tmp_path_factory.mktemp("mlflow")
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])


@pytest.fixture
def training(
    mlflow_root: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> MlflowSettings:
    """A registered model of its own per test with one champion (v1); the environment
    points the retrain command's process at the same registry."""
    env = {
        "COLLECTWISE_MLFLOW__TRACKING_URI": f"sqlite:///{mlflow_root / 'mlflow.db'}",
        "COLLECTWISE_MLFLOW__ARTIFACT_LOCATION": (mlflow_root / "artifacts").as_uri(),
        "COLLECTWISE_MLFLOW__REGISTERED_MODEL_NAME": f"cr-{request.node.name}",
        "COLLECTWISE_PATHS__DVC_LOCK": str(mlflow_root / "dvc.lock"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings().mlflow
    client = tracking_client(settings)
    register(
        _tiny_model(), {TEST_AUC: 0.8}, {}, {}, {}, "test-set", client=client, settings=settings
    )
    promote(client=client, settings=settings)
    assert resolve_alias(CHAMPION, client=client, settings=settings) == 1
    return settings


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MonitoringStore]:
    opened = MonitoringStore(f"sqlite:///{tmp_path / 'monitoring.db'}")
    yield opened
    opened.dispose()


def _script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "retrain.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def _settings(store: MonitoringStore, command: list[str], **values: Any) -> MonitoringSettings:
    return MonitoringSettings(  # type: ignore[misc]
        db_url=str(store.engine.url),
        retrain_on=["critical"],
        retrain_command=command,
        **values,
    )


def _perf(value: float) -> JobResult:
    return JobResult("performance", None, T0, {"performance.auc_drop": value})


def test_a_performance_alert_retrains_and_registers_a_challenger_only(
    tmp_path: Path, training: MlflowSettings, store: MonitoringStore
) -> None:
    command = _script(tmp_path, REGISTER_SCRIPT.format(columns=COLUMNS))
    settings = _settings(store, command)
    (alert,) = finish_job(_perf(0.12), settings, store=store, training_settings=training)

    (request,) = store.list_retrains()
    assert (request.status, request.exit_code, request.registered_version) == ("succeeded", 0, 2)
    assert request.alert_id == alert.id
    assert "performance drop" in request.reason and "performance.auc_drop = 0.12" in request.reason
    assert request.command == command
    assert "registered version 2" in (request.log_tail or "")
    assert request.ended_at is not None and request.ended_at >= request.started_at
    assert "retrain_requested" in [e.action for e in store.alert_events(alert.id)]

    # Never promotes: the champion is still v1; the new version waits as challenger.
    client = MlflowClient(training.tracking)
    assert resolve_alias(CHAMPION, client=client, settings=training) == 1
    assert resolve_alias(CHALLENGER, client=client, settings=training) == 2
    assert [m.version for m in list_versions(client=client, settings=training)] == [2, 1]

    # The same condition on the next run neither re-alerts nor retrains again.
    assert finish_job(_perf(0.2), settings, store=store, training_settings=training) == []
    assert len(store.list_retrains()) == 1


def test_a_failed_command_is_recorded(
    tmp_path: Path, training: MlflowSettings, store: MonitoringStore
) -> None:
    command = _script(tmp_path, "import sys\nprint('dvc: stage train failed')\nsys.exit(3)\n")
    finish_job(_perf(0.12), _settings(store, command), store=store, training_settings=training)
    (request,) = store.list_retrains()
    assert (request.status, request.exit_code, request.registered_version) == ("failed", 3, None)
    assert "stage train failed" in (request.log_tail or "")
    assert resolve_alias(CHAMPION, settings=training) == 1


def test_only_configured_alerts_retrain_and_one_at_a_time(
    tmp_path: Path, training: MlflowSettings, store: MonitoringStore
) -> None:
    command = _script(tmp_path, "print('ok')\n")
    settings = _settings(store, command)
    drift = JobResult("drift", None, T0, {"drift.share_drifted": 0.9})  # a warning
    assert finish_job(drift, settings, store=store, training_settings=training)
    assert store.list_retrains() == []

    running = store.start_retrain(None, "a retrain still in progress", command)
    (alert,) = finish_job(_perf(0.3), settings, store=store, training_settings=training)
    assert [r.id for r in store.list_retrains()] == [running]
    assert "retrain_skipped" in [e.action for e in store.alert_events(alert.id)]

    store.finish_retrain(running, status="succeeded", exit_code=0)
    request = trigger_retrain(store, [alert], settings, training)
    assert request is not None and request.status == "succeeded"
    assert request.registered_version is None  # the script registered nothing
    off = settings.model_copy(update={"retrain_on": []})
    assert finish_job(_perf(0.1), off, store=store, training_settings=training) == []


def test_a_missing_command_fails_cleanly(training: MlflowSettings, store: MonitoringStore) -> None:
    settings = _settings(store, [os.fspath(Path("/nonexistent/retrain"))])
    finish_job(_perf(0.12), settings, store=store, training_settings=training)
    (request,) = store.list_retrains()
    assert request.status == "failed" and request.exit_code is None
    assert "could not start" in (request.log_tail or "")


def test_a_promoting_command_is_refused(store: MonitoringStore) -> None:
    with pytest.raises(ValidationError, match="must not promote"):
        _settings(store, ["collectwise", "models", "promote", "--force"])
