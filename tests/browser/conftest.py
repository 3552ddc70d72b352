"""The console in a real headless Chromium, over a real Feast store, MLflow and monitoring db.

Reuses the scorer tier's world (temporary Feast repo with a materialised online store, a
temporary MLflow with a registered champion v1) and adds a v2 registered the way training
does it (evaluation report with fairness, SHAP importance metrics, the drift reference),
promoted over v1 by the gate. Monitoring points, an open alert, a pipeline run, audit rows
and a drift report are seeded so every page has something to show.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService

from admin_app.app import create_app
from admin_app.backends import Backends
from admin_app.server import wsgi_server
from monitoring.alerts import Firing
from monitoring.job_result import JobResult
from monitoring.monitor_db import MonitoringStore
from monitoring.pipeline_runs import recorded_run
from serving.audit import AuditLog
from serving.events import ScoreEvent
from tests.console_env import console_settings
from tests.serving import conftest as scorer
from tests.serving.conftest import ScorerWorld, fit_model
from training import registry
from training.explain import global_importance
from training.fairness import fairness_table
from training.model_matrix import model_matrix
from training.report import build_report

# The scorer tier's module fixtures, shared rather than rebuilt.
feature_data = scorer.feature_data
mlflow_env = scorer.mlflow_env
world = scorer.world

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(
    os.environ.get("COLLECTWISE_TEST_ARTIFACTS") or REPO_ROOT / "tests/browser/artifacts"
)
PASSWORDS = {
    "alice": "alice-admin-password",
    "olga": "olga-operator-password",
    "victor": "victor-viewer-password",
}
ROLES = {"alice": "admin", "olga": "operator", "victor": "viewer"}
# Failed sign-ins from one address before it is throttled; the account locks past 12.
CLIENT_LIMIT = 4


@dataclass
class Console:
    url: str
    backends: Backends
    root: Path
    accounts: list[str]
    downloads: Path

    def password(self, name: str) -> str:
        return PASSWORDS[name]


def _register_v2(world: ScorerWorld, root: Path) -> registry.ModelMetadata:
    """A second version with everything training logs: report, importance, reference."""
    model = fit_model(world, seed=1, trees=60)
    x = model_matrix(world.dataset)
    y = world.dataset["default_30d"].to_numpy()
    p = model.predict_proba(x)
    importance = global_importance(model.estimator, x, max_rows=300)
    groups = {attr: world.dataset[f"protected__{attr}"].astype(str) for attr in ("age_band", "sex")}
    report = build_report(
        run={"kind": "xgboost"},
        metrics={"test": {"roc_auc": 0.85}},
        importance=importance,
        fairness=fairness_table(y, p, model.threshold, groups, min_group_size=5),
    )
    (root / "report").mkdir(parents=True, exist_ok=True)
    report_path = root / "report" / "evaluation.json"
    report_path.write_text(json.dumps(report))
    keep = [
        c for c in world.dataset.columns if "__" in c and not c.startswith(("protected", "oracle"))
    ]
    reference = world.dataset[[*keep, "account_id", "default_30d"]].reset_index(drop=True)
    reference["probability"] = p
    (root / "model").mkdir(parents=True, exist_ok=True)
    reference_path = root / "model" / "reference.parquet"
    reference.to_parquet(reference_path, index=False)
    metrics = {registry.TEST_AUC: 0.85, "test_pr_auc": 0.6, "test_f1": 0.55, "test_brier": 0.15}
    metrics.update({f"importance.{k}": v for k, v in importance.items()})
    return registry.register(
        model,
        metrics=metrics,
        params={"kind": "xgboost", "trees": 60},
        tags={},
        artifacts={"report_json": report_path, "reference": reference_path},
        test_set_fingerprint="scorer-tests",
    )


def _seed_monitoring(store: MonitoringStore) -> None:
    now = datetime.now(UTC)
    for day in range(6, -1, -1):
        end = now - timedelta(days=day)
        metrics = {
            "drift.share_drifted": 0.1 + 0.05 * (6 - day),
            "drift.score_psi": 0.05 + 0.04 * (6 - day),
            "performance.auc": 0.82 - 0.01 * (6 - day),
            "performance.auc_drop": 0.01 * (6 - day),
            "fairness.sex.disparate_impact": 0.9 - 0.01 * (6 - day),
        }
        store.record_metrics(JobResult("seed", end - timedelta(days=1), end, metrics))
    rule = store.get_rule("score drift")
    store.open_alert(Firing(rule, "drift.score_psi", 0.29), now, job="drift")
    with recorded_run("materialize", store) as run:
        run.rows = 400


def _seed_audit(path: Path, accounts: list[str]) -> None:
    now = datetime.now(UTC)
    events = [
        ScoreEvent(
            request_id=uuid.uuid4().hex,
            scored_at=now,
            route="/v1/score",
            caller="platform",
            account_id=a,
            customer_id=None,
            scoring_time=now,
            reported_monthly_income=None,
            features={},
            feature_timestamps={},
            vector=[0.1, float("nan")],
            model_name="collection-risk",
            model_version=2,
            model_alias="champion",
            probability=0.3,
            band="medium",
            decision=False,
            challenger_version=None,
            challenger_probability=None,
            degraded=False,
            imputed=[],
            latency_ms=2.0,
        )
        for a in accounts
    ]
    AuditLog(path).append(events)


def _seed_report(reports: Path) -> None:
    folder = reports / "drift" / "20250101T000000Z"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "drift.html").write_text(
        "<!doctype html><html><head><title>drift</title></head>"
        "<body><h1 id='drift-report-title'>Drift report</h1></body></html>"
    )


@pytest.fixture(scope="module")
def console(world: ScorerWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console")
    v2 = _register_v2(world, root)
    registry.promote(v2.version)
    profile = pd.read_parquet(world.data.features_dir / "account_profile.parquet")
    newest = profile[profile["event_timestamp"] == profile["event_timestamp"].max()]
    accounts = sorted(newest["account_id"].astype(str).unique())[:5]
    settings = console_settings(
        root, max_failed_logins_per_client=CLIENT_LIMIT, max_failed_logins=3 * CLIENT_LIMIT
    )
    # The console reads the feature tables of the scorer's world, not its own.
    settings.paths.data_dir = world.data.features_dir.parent
    _seed_monitoring(MonitoringStore(settings.monitoring.database_url))
    _seed_audit(settings.paths.audit_db, accounts)
    _seed_report(settings.paths.monitoring_reports_dir)
    backends = Backends(settings, store_factory=lambda: world.store)
    for name, password in PASSWORDS.items():
        backends.users.add(name, password, ROLES[name])
    server = wsgi_server(create_app(backends).server, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, name="console", daemon=True)
    thread.start()
    try:
        yield Console(
            f"http://127.0.0.1:{server.server_port}", backends, root, accounts, root / "downloads"
        )
    finally:
        server.shutdown()
        backends.close()


@pytest.fixture(scope="module")
def driver(console: Console) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1400,1800", "--disable-gpu"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    console.downloads.mkdir(parents=True, exist_ok=True)
    options.add_experimental_option("prefs", {"download.default_directory": str(console.downloads)})
    chrome = webdriver.Chrome(service=ChromeService("/usr/bin/chromedriver"), options=options)
    chrome.implicitly_wait(0)
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def random_ids(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [f"unknown-{int(v)}" for v in rng.integers(10**6, 10**7, n)]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A screenshot and the browser's console of every failing browser test, as artefacts."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    chrome = getattr(item, "funcargs", {}).get("driver")
    if report.when == "call" and report.failed and chrome is not None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        chrome.save_screenshot(str(ARTIFACTS / f"FAILED-{item.name}.png"))
        log = "\n".join(f"{e['level']} {e['message']}" for e in chrome.get_log("browser"))
        (ARTIFACTS / f"FAILED-{item.name}.log").write_text(log)
