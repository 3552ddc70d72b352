"""The registry against a real MLflow (SQLite backend, local artifacts in a temp dir).

Tiny logistic regressions on random data stand in for trained models: what is under test is
the registry's bookkeeping (versions, tags, aliases, the promotion gate, rollback, loading),
not the models.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from collectwise.settings import MlflowSettings, Settings, get_settings
from training.registry import (
    CHALLENGER,
    CHAMPION,
    CHECKS_PASSED_TAG,
    PREVIOUS_CHAMPION,
    REPORT_JSON_KEY,
    TEST_AUC,
    GateChecksFailed,
    IncomparableTestSets,
    ModelMetadata,
    PromotionRefused,
    RegistryError,
    card_for_version,
    champion_history,
    dvc_data_hash,
    git_commit,
    list_versions,
    load_scoring_model,
    model_uri,
    promote,
    quality_checks,
    recorded_checks,
    register,
    rollback,
    show,
    tracking_client,
)
from training.scoring_model import ScoringModel
from training.tracking import configure_tracking

pytestmark = pytest.mark.integration

# Real feature names (registration refuses a feature without a reason code), of features
# that may take any sign (the pyfunc refuses values outside a feature's domain; the toy
# data are standard normal): two signals and a feature the label ignores.
SIGNAL = "account_payment_velocity__balance_change_6m"
SECOND = "customer_financial_ratios__debt_to_income_ratio"
NOISE = "account_payment_velocity__seasonal_payment_pattern"
COLUMNS = [SIGNAL, SECOND, NOISE]
SERVICE = "collection_risk_v1"
DVC_LOCK = """schema: '2.0'
stages:
  build-features:
    cmd: collectwise build-features
    outs:
    - path: data/features
      hash: md5
      md5: 0123456789abcdef0123456789abcdef.dir
"""


@dataclass
class Data:
    train: pd.DataFrame
    y_train: np.ndarray
    test: pd.DataFrame
    y_test: np.ndarray
    other_test: pd.DataFrame
    y_other_test: np.ndarray


def _sample(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    x = pd.DataFrame(rng.normal(size=(n, 3)), columns=COLUMNS)
    logit = 1.5 * x[SIGNAL] + 1.5 * x[SECOND]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    return x, y


@pytest.fixture(scope="module")
def data() -> Data:
    rng = np.random.default_rng(11)
    return Data(*_sample(rng, 600), *_sample(rng, 400), *_sample(rng, 400))


@pytest.fixture(scope="module")
def base_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowSettings]:
    """One SQLite-backed MLflow for the module; the global MLflow URIs are restored after."""
    root = tmp_path_factory.mktemp("mlflow")
    (root / "dvc.lock").write_text(DVC_LOCK)
    settings = MlflowSettings(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_location=(root / "artifacts").as_uri(),
    )
    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield settings
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])
    for key, value in saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def settings(base_settings: MlflowSettings, request: pytest.FixtureRequest) -> MlflowSettings:
    """A registered model of its own per test, in the shared backend."""
    return base_settings.model_copy(update={"registered_model_name": f"cr-{request.node.name}"})


@pytest.fixture
def client(settings: MlflowSettings) -> MlflowClient:
    return tracking_client(settings)


def _model(data: Data, columns: list[str]) -> ScoringModel:
    """A logistic regression that sees only `columns` (others zeroed): weaker with fewer."""
    train = data.train.copy()
    train[[c for c in COLUMNS if c not in columns]] = 0.0
    estimator = LogisticRegression().fit(train, data.y_train)
    return ScoringModel(estimator, None, 0.5, 0.2, 0.6, COLUMNS, SERVICE, "defs-fp-1")


def _auc(model: ScoringModel, x: pd.DataFrame, y: np.ndarray) -> float:
    return float(roc_auc_score(y, model.predict_proba(x)))


def _register(
    model: ScoringModel,
    auc: float,
    client: MlflowClient,
    settings: MlflowSettings,
    fingerprint: str = "test-set-A",
    artifacts: dict[str, Path] | None = None,
) -> ModelMetadata:
    return register(
        model,
        metrics={TEST_AUC: auc, "test_pr_auc": 0.5, "test_f1": 0.6, "test_brier": 0.2},
        params={"model": "logistic", "C": 1.0, "columns": COLUMNS},
        tags={"data_fingerprint": "data-fp-1"},
        artifacts=artifacts or {},
        test_set_fingerprint=fingerprint,
        client=client,
        settings=settings,
    )


def _report(tmp_path: Path) -> dict[str, Path]:
    report = {
        "data": {"snapshots": 12, "rows": 1000},
        "fairness": [{"group": "sex=F", "selection_rate": 0.31, "tpr": 0.7}],
        "global_shap": {SIGNAL: 0.8, SECOND: 0.6, NOISE: 0.01},
    }
    (tmp_path / "report.json").write_text(json.dumps(report))
    (tmp_path / "report.html").write_text("<html>report</html>")
    return {REPORT_JSON_KEY: tmp_path / "report.json", "report_html": tmp_path / "report.html"}


def test_register_promote_refuse_rollback_force(data, client, settings, tmp_path):
    weak, worse, strong = (
        _model(data, [SIGNAL]),
        _model(data, [NOISE]),
        _model(data, [SIGNAL, SECOND]),
    )
    aucs = [_auc(m, data.test, data.y_test) for m in (weak, worse, strong)]
    assert aucs[1] < aucs[0] < aucs[2] - 0.005

    v1 = _register(weak, aucs[0], client, settings, artifacts=_report(tmp_path))
    assert (v1.version, v1.aliases, v1.status) == (1, [CHALLENGER], CHALLENGER)
    assert v1.feature_service == SERVICE
    assert v1.definitions_fingerprint == "defs-fp-1"
    assert v1.data_fingerprint == "data-fp-1"
    assert v1.dvc_data_hash == dvc_data_hash(get_settings().paths.dvc_lock) != "unknown"
    assert v1.git_commit == git_commit()
    assert v1.test_set_fingerprint == "test-set-A"
    assert v1.threshold == 0.5
    assert v1.bands == {"low_max": 0.2, "medium_max": 0.6}
    assert v1.metrics[TEST_AUC] == pytest.approx(aucs[0])
    assert v1.params["C"] == 1.0
    assert v1.feature_columns == COLUMNS
    run_files = {f.path for f in client.list_artifacts(v1.run_id, "model_card")}
    assert run_files == {"model_card/model_card_v1.html"}

    first = promote(client=client, settings=settings)
    assert (first.version, first.aliases) == (1, [CHAMPION])
    assert first.promoted_by == "promotion-gate"
    assert "first champion" in (first.promotion_reason or "")

    _register(worse, aucs[1], client, settings)
    with pytest.raises(PromotionRefused) as refused:
        promote(client=client, settings=settings)
    message = str(refused.value)
    assert f"{aucs[1]:.4f}" in message and f"{aucs[0]:.4f}" in message and "0.0050" in message
    assert show(CHAMPION, client=client, settings=settings).version == 1
    assert show(CHALLENGER, client=client, settings=settings).version == 2

    _register(strong, aucs[2], client, settings)
    third = promote(who="alice", client=client, settings=settings)
    assert (third.version, third.aliases, third.promoted_by) == (3, [CHAMPION], "alice")
    assert show(PREVIOUS_CHAMPION, client=client, settings=settings).version == 1
    assert show(2, client=client, settings=settings).aliases == []  # challenger moved to v3

    back = rollback("bob", "v3 misbehaves in production", client=client, settings=settings)
    assert (back.version, back.aliases) == (1, [CHAMPION])
    rolled = show(3, client=client, settings=settings)
    assert rolled.status == "rolled-back"
    assert rolled.tags["rolled_back_by"] == "bob"
    assert rolled.tags["rolled_back_why"] == "v3 misbehaves in production"
    assert "rolled_back_at" in rolled.tags
    with pytest.raises(RegistryError, match="no previous-champion"):
        rollback("bob", "again", client=client, settings=settings)

    with pytest.raises(ValueError, match="who and why"):
        promote(2, force=True, client=client, settings=settings)
    with pytest.raises(ValueError, match="who and why"):
        promote(2, force=True, who="carol", why="  ", client=client, settings=settings)
    forced = promote(
        2, force=True, who="carol", why="regulator demo", client=client, settings=settings
    )
    assert (forced.version, forced.aliases) == (2, [CHAMPION])
    assert forced.promoted_by == "carol"
    assert forced.promotion_reason == "forced: regulator demo"
    assert forced.tags["promotion_forced"] == "true"
    assert forced.promoted_at is not None
    assert show("previous-champion", client=client, settings=settings).version == 1

    versions = list_versions(client=client, settings=settings)
    assert [m.version for m in versions] == [3, 2, 1]
    assert all(isinstance(m, ModelMetadata) for m in versions)
    assert {m.version: m.status for m in versions} == {
        3: "rolled-back",
        2: CHAMPION,
        1: PREVIOUS_CHAMPION,
    }
    assert all(m.feature_service == SERVICE and m.test_auc is not None for m in versions)
    actions = [
        (e["action"], e["version"]) for e in champion_history(client=client, settings=settings)
    ]
    assert actions == [("promote", 1), ("promote", 3), ("rollback", 1), ("promote", 2)]

    loaded = load_scoring_model(CHAMPION, client=client, settings=settings)
    np.testing.assert_array_equal(loaded.predict_proba(data.test), worse.predict_proba(data.test))
    assert loaded.metadata["registered_version"] == 2
    pyfunc = mlflow.pyfunc.load_model(model_uri("v1", settings))
    scored = pyfunc.predict(data.test.head(20))
    np.testing.assert_allclose(scored["probability"], weak.predict_proba(data.test.head(20)))

    card = card_for_version(1, tmp_path / "card.html", client=client, settings=settings)
    html = card.read_text()
    assert SERVICE in html and "defs-fp-1" in html
    assert TEST_AUC in html and f"{aucs[0]:.4g}" in html
    assert "sex=F" in html and SIGNAL in html  # fairness and SHAP from the report
    assert "not for" in html.lower() and "Taiwan" in html


def test_gate_rescoring_when_test_sets_differ(data, client, settings):
    weak, strong = _model(data, [SIGNAL]), _model(data, COLUMNS)
    _register(weak, _auc(weak, data.test, data.y_test), client, settings, "test-set-A")
    promote(client=client, settings=settings)
    strong_auc = _auc(strong, data.other_test, data.y_other_test)
    _register(strong, strong_auc, client, settings, "test-set-B")

    with pytest.raises(IncomparableTestSets, match="test-set-B"):
        promote(client=client, settings=settings)
    seen: list[ScoringModel] = []

    def rescore(champion: ScoringModel) -> float:
        seen.append(champion)
        return _auc(champion, data.other_test, data.y_other_test)

    with pytest.raises(PromotionRefused, match=r"margin 0\.5000"):
        promote(margin=0.5, evaluate_champion=rescore, client=client, settings=settings)
    promoted = promote(evaluate_champion=rescore, client=client, settings=settings)
    assert promoted.version == 2 and promoted.status == CHAMPION
    assert "re-scored" in (promoted.promotion_reason or "")
    assert seen and seen[-1].metadata["registered_version"] == 1


def test_gate_against_the_live_feature_definitions(data, client, settings):
    from dataclasses import replace

    old = _model(data, COLUMNS)  # trained on "defs-fp-1"
    _register(old, _auc(old, data.test, data.y_test), client, settings)
    promote(client=client, settings=settings)
    live = {SERVICE: "defs-fp-2"}  # the definitions changed since: the scorer refuses v1

    _register(old, 0.99, client, settings)  # a candidate on the old definitions
    with pytest.raises(PromotionRefused, match="not live"):
        promote(live_fingerprint=live.__getitem__, client=client, settings=settings)
    retrained = replace(_model(data, [SIGNAL]), definitions_fingerprint="defs-fp-2")
    # Weaker on AUC, but the only servable one: promoted, and the reason says why.
    _register(retrained, _auc(retrained, data.test, data.y_test) - 0.1, client, settings)
    promoted = promote(3, live_fingerprint=live.__getitem__, client=client, settings=settings)
    assert promoted.status == CHAMPION
    assert "v1 cannot be served" in (promoted.promotion_reason or "")
    # Once the champion matches the live definitions the AUC gate applies again.
    _register(retrained, _auc(retrained, data.test, data.y_test) - 0.1, client, settings)
    with pytest.raises(PromotionRefused, match="margin"):
        promote(live_fingerprint=live.__getitem__, client=client, settings=settings)


def test_clear_errors_on_an_empty_or_bad_registry(data, client, settings, tmp_path):
    assert list_versions(client=client, settings=settings) == []
    with pytest.raises(RegistryError, match="no challenger"):
        promote(client=client, settings=settings)
    with pytest.raises(RegistryError, match="no version or alias 'champion'"):
        show(CHAMPION, client=client, settings=settings)
    model = _model(data, COLUMNS)
    with pytest.raises(ValueError, match=TEST_AUC):
        register(model, {"test_f1": 0.5}, {}, {}, {}, "fp", client=client, settings=settings)
    with pytest.raises(FileNotFoundError, match=r"nope\.json"):
        register(
            model,
            {TEST_AUC: 0.8},
            {},
            {},
            {"x": tmp_path / "nope.json"},
            "fp",
            client=client,
            settings=settings,
        )
    assert list_versions(client=client, settings=settings) == []
    _register(model, 0.8, client, settings)
    promote(client=client, settings=settings)
    with pytest.raises(RegistryError, match="already the champion"):
        promote(1, client=client, settings=settings)
    with pytest.raises(RegistryError, match="no previous-champion"):
        rollback("dave", "nothing to go back to", client=client, settings=settings)


def test_dvc_hash_of_one_output_and_of_all(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text(DVC_LOCK)
    assert dvc_data_hash(lock, "data/features") == "0123456789abcdef0123456789abcdef.dir"
    assert dvc_data_hash(lock, "data/other") == "unknown"
    assert len(dvc_data_hash(lock)) == 32
    assert dvc_data_hash(tmp_path / "missing.lock") == "unknown"


def test_a_rolled_back_version_can_be_promoted_again(data, client, settings):
    weak, strong = _model(data, [SIGNAL]), _model(data, COLUMNS)
    _register(weak, _auc(weak, data.test, data.y_test), client, settings)
    promote(client=client, settings=settings)
    _register(strong, _auc(strong, data.test, data.y_test), client, settings)
    promote(client=client, settings=settings)
    rollback("erin", "false alarm pending", client=client, settings=settings)
    again = promote(2, force=True, who="erin", why="false alarm", client=client, settings=settings)
    assert (again.status, again.aliases) == (CHAMPION, [CHAMPION])
    assert not {"rolled_back_by", "rolled_back_at", "rolled_back_why"} & again.tags.keys()
    assert show(PREVIOUS_CHAMPION, client=client, settings=settings).version == 1
    back = rollback("erin", "it was real after all", client=client, settings=settings)
    assert back.version == 1


def _fresh(**values: Any) -> MlflowSettings:
    # _env_file is pydantic-settings' runtime switch; mypy sees no such field without its plugin.
    return Settings(_env_file=None, mlflow=values).mlflow  # type: ignore[call-arg,arg-type]


def test_settings_defaults_and_the_dagshub_switch(monkeypatch):
    for key in ("TRACKING_URI", "DAGSHUB_REPO_OWNER", "DAGSHUB_REPO_NAME"):
        monkeypatch.delenv(f"COLLECTWISE_MLFLOW__{key}", raising=False)
    monkeypatch.delenv("COLLECTWISE_HOME", raising=False)
    defaults = _fresh()
    assert defaults.tracking_uri == f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"
    assert defaults.artifact_location == (Path.cwd().resolve() / "mlruns").as_uri()
    assert (defaults.registered_model_name, defaults.promotion_margin) == ("collection-risk", 0.005)
    monkeypatch.setenv("COLLECTWISE_MLFLOW__TRACKING_URI", "postgresql+psycopg://u:p@db/mlflow")
    assert _fresh().tracking.startswith("postgresql+psycopg")
    dagshub = _fresh(dagshub_repo_owner="me", dagshub_repo_name="cw")
    if importlib.util.find_spec("dagshub") is None:
        with pytest.raises(RuntimeError, match="pip install dagshub"):
            configure_tracking(dagshub)


# --- gate checks (training.registry.bars) -------------------------------------------

BARS = {"out_of_time_f1": 0.65, "auc_ratio_to_oracle": 0.95}


def _register_checked(
    model: ScoringModel,
    metrics: dict[str, float],
    client: MlflowClient,
    settings: MlflowSettings,
    splitter: str = "out_of_time",
) -> ModelMetadata:
    return register(
        model,
        metrics=metrics,
        params={"model": "logistic"},
        tags={},
        artifacts={},
        test_set_fingerprint="test-set-A",
        checks=quality_checks(metrics, BARS, splitter),
        client=client,
        settings=settings,
    )


def test_a_version_below_a_quality_bar_is_recorded_but_never_served(data, client, settings):
    model = _model(data, [SIGNAL, SECOND])
    good = {TEST_AUC: 0.86, "test_f1": 0.68, "test_auc_ratio_to_oracle": 0.974}
    first = _register_checked(model, good, client, settings)
    assert first.aliases == [CHALLENGER] and first.tags[CHECKS_PASSED_TAG] == "true"
    assert json.loads(first.tags["check.out_of_time_f1"]) == {
        "metric": "test_f1",
        "value": 0.68,
        "bar": 0.65,
        "passed": True,
    }
    assert promote(client=client, settings=settings).version == first.version

    # Better AUC than the champion, but an out-of-time F1 under the bar.
    weak_f1 = {TEST_AUC: 0.90, "test_f1": 0.61, "test_auc_ratio_to_oracle": 0.99}
    with pytest.raises(GateChecksFailed, match=r"out_of_time_f1 0\.6100 < 0\.6500"):
        _register_checked(model, weak_f1, client, settings)
    second = show(2, client=client, settings=settings)
    assert second.aliases == [] and second.tags[CHECKS_PASSED_TAG] == "false"
    assert [c.name for c in recorded_checks(second.tags) if not c.passed] == ["out_of_time_f1"]
    with pytest.raises(PromotionRefused) as refused:
        promote(2, client=client, settings=settings)
    assert "v2 fails its gate checks (out_of_time_f1 0.6100 < 0.6500)" in str(refused.value)
    assert show(CHAMPION, client=client, settings=settings).version == first.version

    # AUC too far below the oracle's: refused the same way, whatever the evidence says.
    far = {TEST_AUC: 0.95, "test_f1": 0.70, "test_auc_ratio_to_oracle": 0.93}
    with pytest.raises(GateChecksFailed, match=r"auc_ratio_to_oracle 0\.9300 < 0\.9500"):
        _register_checked(model, far, client, settings)
    with pytest.raises(PromotionRefused, match="auc_ratio_to_oracle"):
        promote(3, evidence=lambda c, ch: "experiment says so", client=client, settings=settings)
    forced = promote(3, force=True, who="risk", why="accepted", client=client, settings=settings)
    assert forced.version == 3 and CHAMPION in forced.aliases


def test_quality_bars_apply_only_where_they_mean_something():
    metrics = {TEST_AUC: 0.77, "test_f1": 0.50}
    # A stratified split (UCI) is no out-of-time test, and real data has no oracle.
    assert quality_checks(metrics, BARS, "stratified") == []
    (f1,) = quality_checks(metrics, BARS, "out_of_time")
    assert (f1.name, f1.passed) == ("out_of_time_f1", False)
    assert quality_checks({"test_f1": 0.65}, {"out_of_time_f1": 0.65}, "out_of_time")[0].passed
    with pytest.raises(ValueError, match="unknown gate checks"):
        quality_checks(metrics, {"test_recall": 0.5}, "out_of_time")
