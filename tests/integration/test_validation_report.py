"""The validation report of a real small model: built at evaluation, logged with the version,
downloaded and rebuilt through the registry, printed to a real PDF; and the drift job's
data_drift_score recorded on the version.

One fit, one evaluation and one rebuild per module (the PDF is printed by each of the two).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dash import Dash
from flask.testing import FlaskClient
from PIL import Image

from admin_app.app import create_app
from admin_app.backends import Backends
from ingestion.retrieval import apply_scratch_repo
from monitoring.drift import drift_job, record_drift_score
from tests.console_env import console_settings
from tests.integration.conftest import FeatureData
from tests.mlflow_env import temporary_mlflow
from tests.unit.test_admin_auth import PASSWORD
from tests.unit.test_admin_security import callback, key_with, signed_in
from training import registry
from training.dataset import build_training_set
from training.train import TrainParams, fit, register_model
from training.validation import evaluate_and_validate
from training.validation.versioned import (
    ReportNotLogged,
    download_validation,
    rebuild_validation,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARAMS = TrainParams(
    candidates=[{"kind": "logistic", "imbalance": "class_weight"}],
    tune_kinds=["xgboost"],
    tune_imbalances=["class_weight"],
    n_trials=1,
    timeout_seconds=60,
    cv_splits=2,
)
SECTIONS = (
    "data", "soundness", "performance", "benchmarks", "stability", "sensitivity", "fairness",
    "limitations",
)  # fmt: skip


@dataclass
class Trained:
    dataset: Path
    report_dir: Path
    meta: registry.ModelMetadata


@pytest.fixture(scope="module")
def trained(
    feature_data: FeatureData, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Trained]:
    root = tmp_path_factory.mktemp("validation")
    applied = apply_scratch_repo(
        root / "repo", feature_data.features_dir, "cwtest_validation",
        online={"type": "sqlite", "path": str(root / "online.db")},
    )  # fmt: skip
    dataset = root / "dataset"
    build_training_set(
        applied.store, feature_data.features_dir, feature_data.root / "validated", dataset,
        oracle_dir=feature_data.root / "raw" / "_oracle",
    )  # fmt: skip
    fit(dataset, root / "model", PARAMS, root / "studies.db")
    evaluate_and_validate(dataset, root / "model", root / "report", PARAMS)
    with temporary_mlflow(root / "mlflow"):
        meta = register_model(root / "model", root / "report", PARAMS)
        yield Trained(dataset, root / "report", meta)


def _report(trained: Trained) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (trained.report_dir / "validation" / "validation.json").read_text()
    )
    return loaded


def test_every_section_holds_real_figures(trained: Trained) -> None:
    report = _report(trained)
    assert set(SECTIONS) <= set(report)
    data = report["data"]
    assert data["rows"]["test"] > 0 and data["rows"]["train"] > 0
    assert len(data["fingerprints"]["dataset"]) == 64
    assert data["label"]["window_days"] == 30 and len(data["snapshots"]["months"]) >= 3
    # The validate step's report of these raw tables was found and summarised.
    assert data["quality"]["status"] == "passed" and data["quality"]["totals"]["good"] > 0

    features = {f["feature"]: f for f in report["soundness"]["features"]}
    velocity = features["account_payment_velocity__payment_velocity"]
    assert velocity["monotone"] == -1 and velocity["why"] and "debt" in velocity["description"]
    assert not report["soundness"]["protected_inputs"]

    test = report["performance"]["overall"]["test"]
    assert 0.5 < test["roc_auc"] <= 1.0 and 0.0 <= test["ece"] <= 1.0
    segments = report["performance"]["segments"]
    assert {"band", "product", "region"} <= set(segments)
    assert sum(g["n"] for g in segments["product"]) == test["n"]
    months = report["performance"]["months"]
    assert {"train", "test"} <= {p for m in months for p in m["part"].split("/")}


def test_benchmarks_stability_sensitivity_fairness(trained: Trained) -> None:
    report = _report(trained)
    models = [row["model"] for row in report["benchmarks"]["rows"]]
    assert models[1:] == ["logistic scorecard", "untuned raw-input GBM"]
    assert all(0.0 <= row["roc_auc"] <= 1.0 for row in report["benchmarks"]["rows"])

    stability = report["stability"]
    scored = [m for m in stability["months"] if "score_psi" in m]
    assert scored and all(m["score_psi"] >= 0 for m in scored)
    assert len(stability["features"]) > 10 and all(f["max_psi"] >= 0 for f in stability["features"])

    moved = {f["feature"]: f for f in report["sensitivity"]["features"]}
    assert moved and max(f["mean_abs_change"] for f in moved.values()) > 0
    # A boosted model with monotone constraints never moves against its direction.
    assert not [name for name, f in moved.items() if f["against_direction"]]

    fairness = report["fairness"]["attributes"]
    assert {"age_band", "sex"} <= set(fairness)
    differences = [a["equalized_odds_difference"] for a in fairness.values()]
    assert all(d is None or 0.0 <= d <= 1.0 for d in differences)
    assert any(d is not None for d in differences), "sex has two large groups"
    assert report["limitations"] and all(isinstance(s, str) for s in report["limitations"])


def test_html_is_self_contained_with_plots(trained: Trained) -> None:
    html = (trained.report_dir / "validation" / "validation.html").read_text()
    assert html.count('src="data:image/png;base64,') >= 5
    assert "http://" not in html and "https://" not in html
    for title in ("Data and lineage", "Conceptual soundness", "Benchmarks", "Limitations"):
        assert title in html


def _pdf_is_real(pdf: Path, tmp_path: Path) -> None:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    pages = next(int(line.split()[1]) for line in info.stdout.splitlines() if "Pages:" in line)
    assert pages > 1
    subprocess.run(
        ["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
        check=True,
    )
    image = np.asarray(Image.open(next(tmp_path.glob("page*.png"))).convert("L"))
    # Text and tables on page 1: a real share of dark pixels, not a blank white page.
    assert (image < 128).mean() > 0.005


def test_artifacts_logged_and_pdf_renders(trained: Trained, tmp_path: Path) -> None:
    if shutil.which("pdftoppm") is None:
        pytest.fail("pdftoppm is missing: install poppler-utils")
    paths = download_validation(trained.meta.version, tmp_path / "download")
    assert set(paths) == {"json", "html", "pdf"}
    assert json.loads(paths["json"].read_text())["model"]["threshold"] == pytest.approx(
        trained.meta.threshold
    )
    _pdf_is_real(paths["pdf"], tmp_path)


def test_rebuild_benchmarks_the_champion_and_is_logged(trained: Trained, tmp_path: Path) -> None:
    registry.promote(trained.meta.version, force=True, who="tester", why="champion to beat")
    second = register_model(trained.report_dir.parent / "model", trained.report_dir, PARAMS)
    paths = rebuild_validation(second.version, trained.dataset, PARAMS, tmp_path / "rebuilt")
    report = json.loads(paths["json"].read_text())
    assert report["model"]["label"].endswith(f"v{second.version}")
    incumbent = report["benchmarks"]["rows"][-1]
    assert incumbent["model"] == f"champion v{trained.meta.version}"
    # The same model registered twice: the incumbent scores the test rows identically.
    assert incumbent["roc_auc"] == pytest.approx(report["benchmarks"]["rows"][0]["roc_auc"])
    downloaded = download_validation(second.version, tmp_path / "again")
    assert json.loads(downloaded["json"].read_text())["model"]["label"] == report["model"]["label"]


def test_a_version_without_a_report_says_how_to_make_one(trained: Trained, tmp_path: Path) -> None:
    bare = registry.register(
        registry.load_scoring_model(trained.meta.version),
        metrics={"test_roc_auc": 0.7}, params={}, tags={}, artifacts={},
        test_set_fingerprint=trained.meta.test_set_fingerprint,
    )  # fmt: skip
    with pytest.raises(ReportNotLogged, match="--rebuild"):
        download_validation(bare.version, tmp_path)


def test_drift_run_records_data_drift_score(trained: Trained, tmp_path: Path) -> None:
    reference = registry.load_reference(trained.meta.version)
    current = reference.copy()
    # Shift two inputs hard: the drift job must find them and the share lands on the version.
    for column in (
        "account_payment_velocity__debt_amount",
        "customer_financial_ratios__payment_capacity_score",
    ):
        current[column] = current[column] * 5 + 10
    end = datetime(2026, 1, 1, tzinfo=UTC)
    result = drift_job(
        reference, current, window_start=None, window_end=end, reports_dir=tmp_path,
        labels={"model_version": str(trained.meta.version)},
    )  # fmt: skip
    score = record_drift_score(result)
    assert score is not None and 0 < score <= 1
    assert score == pytest.approx(result.metrics["drift.share_drifted"])
    tags = registry.show(trained.meta.version).tags
    assert float(tags[registry.DATA_DRIFT_SCORE]) == pytest.approx(score)
    assert tags["data_drift_at"] == end.isoformat()
    # A run that names no version records nothing.
    assert record_drift_score(replace(result, labels={})) is None


@pytest.fixture
def console(trained: Trained, tmp_path: Path) -> Iterator[tuple[Dash, FlaskClient]]:
    """The console over the module's MLflow (the environment points the settings at it)."""
    backends = Backends(console_settings(tmp_path), store_factory=_no_store)  # type: ignore[arg-type]
    backends.users.add("victor", PASSWORD, "viewer")
    app = create_app(backends)
    yield app, app.server.test_client()
    backends.close()


def _no_store() -> object:
    raise AssertionError("the models page and the report route need no feature store")


def test_console_links_and_serves_the_report_to_signed_in_users(
    trained: Trained, console: tuple[Dash, FlaskClient]
) -> None:
    app, client = console
    version = trained.meta.version
    assert client.get(f"/validation/v{version}.html").status_code == 302  # to the login page
    headers = signed_in(client, "victor")
    page = client.get(f"/validation/v{version}.html")
    assert page.status_code == 200 and b"Model validation report" in page.data
    pdf = client.get(f"/validation/v{version}.pdf")
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    assert client.get("/validation/v999.html").status_code == 404
    assert client.get(f"/validation/v{version}.exe").status_code == 404

    # Selecting the version on the models page shows the links and the drift score line.
    body = callback(
        key_with(app, "models-lineage.children"),
        [("models-grid", "selectedRows", [{"version": version}])],
    )
    shown = client.post("/_dash-update-component", json=body, headers=headers)
    assert shown.status_code == 200
    text = json.dumps(shown.get_json())  # Dash escapes "/" in its response; this does not
    assert f"/validation/v{version}.pdf" in text and "data drift score" in text
