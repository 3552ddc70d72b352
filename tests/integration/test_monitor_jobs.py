"""The monitoring commands end to end over a real Feast repo on generated data.

A served-features log is written the way the scorer writes it, from get_online_features at
the data's as_of (skew, drift) or from labelled historical snapshots (performance,
fairness); the registry is replaced by a stub so no MLflow server is needed.
"""

from __future__ import annotations

import json
import sys
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from collectwise.monitor_cli import app
from collectwise.settings import Settings
from feature_repo.feature_services import COLLECTION_RISK_V1
from ingestion.feast_store import materialize_latest
from ingestion.retrieval import apply_scratch_repo
from monitoring.drift import service_features
from monitoring.skew import compare, entity_rows, replay
from tests.integration.conftest import FeatureData, ScratchRepo
from training.dataset import entity_rows as training_entity_rows
from training.dataset import retrieve_features
from training.registry import ModelMetadata

pytestmark = pytest.mark.integration

TS_SUFFIX = "__ts"
DTI = "customer_financial_ratios__debt_to_income_ratio"
HISTORY = "account_payment_velocity__payment_history"
ONLINE_ACCOUNTS = 60


@dataclass
class Monitored:
    data: FeatureData
    applied: ScratchRepo
    repo: Path
    served_dir: Path
    scored_at: datetime


def score(frame: pd.DataFrame) -> np.ndarray:
    """A stand-in model: any fixed function of the features gives comparable scores."""
    debt = pd.to_numeric(frame["account_payment_velocity__debt_amount"], errors="coerce")
    return np.asarray(1 / (1 + np.exp(-(np.log1p(debt.fillna(0.0)) - 7.0))), dtype=float)


def log_rows(features: pd.DataFrame, scored_at: pd.Series, version: int = 1) -> pd.DataFrame:
    """Feature rows plus the log's own columns, as serving.servedlog writes them."""
    frame = features.copy()
    frame.insert(0, "request_id", [f"req-{i:05d}" for i in range(len(frame))])
    frame["scored_at"] = pd.to_datetime(scored_at, utc=True).to_numpy()
    frame["route"], frame["caller"] = "/v1/score", "tests"
    frame["model_name"], frame["model_version"], frame["model_alias"] = "cr", version, "champion"
    frame["probability"] = score(frame)
    frame["band"] = np.where(frame["probability"] >= 0.8, "high", "medium")
    frame["decision"] = frame["probability"] >= 0.5
    frame["degraded"] = False
    frame["imputed"] = [[] for _ in range(len(frame))]
    frame["latency_ms"] = 1.0
    return frame


def write_log(frame: pd.DataFrame, directory: Path) -> None:
    days = pd.to_datetime(frame["scored_at"], utc=True).dt.strftime("%Y-%m-%d")
    for day, rows in frame.groupby(days):
        part = directory / f"date={day}"
        part.mkdir(parents=True, exist_ok=True)
        rows.to_parquet(part / f"part-{uuid.uuid4().hex[:8]}.parquet", index=False)


def online_log(applied: ScratchRepo, data: FeatureData, scored_at: datetime) -> pd.DataFrame:
    """What the scorer logs for accounts scored at as_of: values and per-view timestamps."""
    profile = pd.read_parquet(data.features_dir / "account_profile.parquet")
    latest = profile[profile["event_timestamp"] == data.as_of].sort_values("account_id")
    accounts = latest.head(ONLINE_ACCOUNTS)
    incomes = [0.0 if i % 2 else 3000.0 for i in range(len(accounts))]
    rows = [
        {
            "account_id": a,
            "customer_id": c,
            "scoring_time": data.as_of,
            "reported_monthly_income": r,
        }
        for a, c, r in zip(accounts["account_id"], accounts["customer_id"], incomes, strict=True)
    ]
    response = applied.store.get_online_features(
        features=applied.store.get_feature_service(COLLECTION_RISK_V1),
        entity_rows=rows,
        full_feature_names=True,
    ).to_dict(include_event_timestamps=True)
    values = {k: v for k, v in response.items() if not k.endswith(TS_SUFFIX)}
    frame = pd.DataFrame(values).drop(columns=["scoring_time"], errors="ignore")
    frame["customer_id"] = accounts["customer_id"].to_numpy()
    frame["scoring_time"] = data.as_of
    frame["reported_monthly_income"] = incomes
    for view in (
        "account_payment_velocity",
        "customer_financial_ratios",
        "account_contact_behavior",
    ):
        seconds = pd.DataFrame(
            {
                k: v
                for k, v in response.items()
                if k.startswith(f"{view}__") and k.endswith(TS_SUFFIX)
            }
        ).max(axis=1)
        frame[f"ts__{view}"] = pd.to_datetime(seconds.where(seconds > 0), unit="s", utc=True)
    return log_rows(frame, pd.Series([scored_at] * len(frame)))


@pytest.fixture(scope="module")
def monitored(
    feature_data: FeatureData, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Monitored]:
    root = tmp_path_factory.mktemp("monitor")
    online: dict[str, object] = {"type": "sqlite", "path": str(root / "online.db")}
    applied = apply_scratch_repo(
        root / "repo", feature_data.features_dir, f"cwmon_{uuid.uuid4().hex[:8]}", online=online
    )
    materialize_latest(applied.store, feature_data.as_of)
    scored_at = feature_data.as_of + timedelta(hours=1)
    write_log(online_log(applied, feature_data, scored_at), root / "served")
    yield Monitored(feature_data, applied, root / "repo", root / "served", scored_at)
    applied.store.teardown()


def fake_meta(version: int = 1, threshold: float = 0.5) -> ModelMetadata:
    return ModelMetadata(
        name="collection-risk",
        version=version,
        aliases=["champion"],
        status="champion",
        run_id=None,
        created=datetime(2026, 1, 1, tzinfo=UTC),
        feature_service=COLLECTION_RISK_V1,
        definitions_fingerprint="x",
        data_fingerprint="x",
        dvc_data_hash="x",
        git_commit="x",
        test_set_fingerprint="x",
        threshold=threshold,
        bands={"low_max": 0.3, "medium_max": 0.8},
        metrics={"test_roc_auc": 0.8, "test_f1": 0.6, "test_brier": 0.15},
        params={},
        feature_columns=[],
        calibration="none",
    )


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """training.registry.show / load_reference stubbed; tests put the reference in."""
    state: dict[str, Any] = {"reference": None, "drift_scores": []}
    monkeypatch.setattr("training.registry.show", lambda v, **_: fake_meta())
    monkeypatch.setattr("training.registry.load_reference", lambda v, **_: state["reference"])
    monkeypatch.setattr(
        "training.registry.record_data_drift",
        lambda v, score, at, **_: state["drift_scores"].append((v, score)),
    )
    return state


def invoke(args: list[str]) -> Any:
    return CliRunner().invoke(app, args, catch_exceptions=False)


def iso(moment: datetime) -> str:
    return moment.isoformat()


# --------------------------------------------------------------------------- skew


def test_skew_replay_finds_no_mismatch_in_consistent_vectors(
    monitored: Monitored, tmp_path: Path
) -> None:
    result = invoke(
        [
            "skew",
            "--window", "1d",
            "--end", iso(monitored.scored_at + timedelta(hours=1)),
            "--served-dir", str(monitored.served_dir),
            "--repo", str(monitored.repo),
            "--feature-store-yaml", str(monitored.repo / "feature_store.yaml"),
            "--reports-dir", str(tmp_path),
            "--no-alerts",
        ]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(next((tmp_path / "skew").glob("*/skew.json")).read_text())
    assert report["rows"] == ONLINE_ACCOUNTS
    assert report["not_logged"] == []
    skewed = {f: r for f, r in report["mismatch_rate"].items() if r}
    assert not skewed, f"skew where none was expected: {skewed}, e.g. {report['examples']}"
    assert len(report["mismatch_rate"]) == len(service_features())


def test_skew_replay_flags_a_tampered_vector(monitored: Monitored) -> None:
    from monitoring.served import read_served

    logged = read_served(
        monitored.served_dir, monitored.scored_at, monitored.scored_at + timedelta(hours=1)
    )
    # A real log, not an empty one that would trivially match: values and feature times.
    assert logged["account_payment_velocity__debt_amount"].notna().all()
    assert logged["ts__account_payment_velocity"].notna().all()
    assert (logged["request_time_features__debt_to_reported_income"] > 0).any()
    ratios: list[Any] = logged[DTI].tolist()
    ratios[3] = float(ratios[3] or 0.0) * 1.01 + 1.0
    histories: list[Any] = logged[HISTORY].tolist()
    histories[7] = [v + 5.0 if i == 2 else v for i, v in enumerate(histories[7])]
    logged[DTI] = ratios
    logged[HISTORY] = pd.Series(histories, dtype=object)
    replayed = replay(monitored.applied.store, entity_rows(logged))
    outcome = compare(logged, replayed, [s.name for s in service_features()])
    assert outcome.mismatches[DTI] == 1 and outcome.mismatches[HISTORY] == 1
    assert outcome.rows_with_mismatch == 2
    assert outcome.max_rate == pytest.approx(1 / ONLINE_ACCOUNTS)
    assert outcome.examples[DTI][0]["request_id"] == logged.loc[3, "request_id"]


# --------------------------------------------------------------------------- drift


def training_reference(monitored: Monitored, n: int = 400) -> pd.DataFrame:
    """As training.train.write_reference stores it: training rows from Feast, scored."""
    labels = pd.read_parquet(monitored.data.features_dir / "labels.parquet")
    sample = labels.sample(n=min(n, len(labels)), random_state=0)
    frame = retrieve_features(monitored.applied.store, training_entity_rows(sample))
    frame["probability"] = score(frame)
    return frame


def test_drift_command_writes_reports_from_the_served_window(
    monitored: Monitored, registry: dict[str, Any], tmp_path: Path
) -> None:
    registry["reference"] = training_reference(monitored)
    end = monitored.scored_at + timedelta(hours=1)
    result = invoke(
        [
            "drift", "--window", "7d", "--end", iso(end),
            "--served-dir", str(monitored.served_dir),
            "--reports-dir", str(tmp_path), "--no-alerts",
        ]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = tmp_path / "drift" / end.strftime("%Y%m%dT%H%M%SZ")
    assert (out / "report.html").stat().st_size > 10_000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == {"reference": 400, "current": ONLINE_ACCOUNTS}
    assert summary["labels"]["model_version"] == "1"
    assert summary["score"]["method"] == "psi"
    assert "account_payment_velocity__overdue_since" in summary["skipped"]
    columns = {f["column"] for f in summary["features"]}
    assert (
        f"{HISTORY}_0" in columns
        and "account_contact_behavior__payment_channel_preference" in columns
    )


def test_drift_command_refuses_an_empty_window(
    monitored: Monitored,
    registry: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry["reference"] = training_reference(monitored, n=50)
    result = invoke(
        [
            "drift", "--end", "2020-01-01", "--served-dir", str(monitored.served_dir),
            "--reports-dir", str(tmp_path), "--no-alerts",
        ]
    )  # fmt: skip
    assert result.exit_code == 1
    assert "no served rows" in caplog.text


def test_without_no_alerts_the_result_goes_to_finish_job(
    monitored: Monitored,
    registry: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry["reference"] = training_reference(monitored, n=200)
    received: list[Any] = []
    jobs = types.ModuleType("monitoring.job_finish")

    def finish_job(result: Any, settings: Any) -> list[Any]:
        received.append(result)
        return []

    jobs.finish_job = finish_job  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "monitoring.job_finish", jobs)
    end = monitored.scored_at + timedelta(hours=1)
    args = ["drift", "--end", iso(end), "--served-dir", str(monitored.served_dir)]
    result = invoke([*args, "--reports-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert [r.job for r in received] == ["drift"]
    assert "drift.share_drifted" in received[0].metrics
    # ... and the version served keeps the run's share of drifted features.
    assert registry["drift_scores"] == [("1", received[0].metrics["drift.share_drifted"])]


# --------------------------------------------------------------------------- outcomes


@pytest.fixture(scope="module")
def labelled_log(monitored: Monitored, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scores of labelled (hence matured) snapshots, three hours after each snapshot."""
    labels = pd.read_parquet(monitored.data.features_dir / "labels.parquet")
    sample = labels.sample(n=min(600, len(labels)), random_state=1)
    frame = retrieve_features(monitored.applied.store, training_entity_rows(sample))
    outcome = frame.pop("default_30d")
    served = log_rows(frame, frame["event_timestamp"] + pd.Timedelta(hours=3))
    # Scores that know something of the outcome, so AUC is well above chance.
    noise = np.random.default_rng(0).uniform(0, 0.6, len(served))
    served["probability"] = np.clip(0.2 + 0.4 * outcome.to_numpy() + noise - 0.3, 0.01, 0.99)
    served["decision"] = served["probability"] >= 0.5
    served = served.drop(columns=["event_timestamp"])
    directory = tmp_path_factory.mktemp("labelled") / "served"
    write_log(served, directory)
    return directory


def test_performance_command_on_matured_outcomes(
    monitored: Monitored, labelled_log: Path, registry: dict[str, Any], tmp_path: Path
) -> None:
    result = invoke(
        [
            "performance", "--window", "700d",
            "--served-dir", str(labelled_log),
            "--features-dir", str(monitored.data.features_dir),
            "--reports-dir", str(tmp_path), "--no-alerts",
        ]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(next((tmp_path / "performance").glob("*/performance.json")).read_text())
    assert report["live"]["n"] > 100
    assert report["live"]["auc"] > 0.7
    assert report["vs_test"]["test_auc"] == 0.8
    assert report["outcomes"]["matured"] == report["live"]["n"]
    assert {b["band"] for b in report["bands"]} <= {"medium", "high"}


def test_fairness_command_joins_protected_attributes(
    monitored: Monitored, labelled_log: Path, registry: dict[str, Any], tmp_path: Path
) -> None:
    result = invoke(
        [
            "fairness", "--window", "700d",
            "--served-dir", str(labelled_log),
            "--features-dir", str(monitored.data.features_dir),
            "--validated-dir", str(monitored.data.root / "validated"),
            "--reports-dir", str(tmp_path), "--no-alerts",
        ]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(next((tmp_path / "fairness").glob("*/fairness.json")).read_text())
    assert set(report["attributes"]) == {"age_band", "sex"}
    groups = report["attributes"]["sex"]["groups"]
    assert sum(g["count"] for g in groups.values()) == report["n"]
    assert "unknown" not in groups or groups["unknown"]["count"] < report["n"]


def test_performance_refuses_a_window_without_matured_outcomes(
    monitored: Monitored,
    registry: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The online log was scored at as_of: none of it can have matured yet.
    result = invoke(
        [
            "performance", "--window", "1d",
            "--end", iso(monitored.scored_at + timedelta(hours=1)),
            "--served-dir", str(monitored.served_dir),
            "--features-dir", str(monitored.data.features_dir),
            "--reports-dir", str(tmp_path), "--no-alerts",
        ]
    )  # fmt: skip
    assert result.exit_code == 1
    assert "no matured outcome" in caplog.text


def test_drift_against_features_built_as_of_a_date(
    monitored: Monitored,
    registry: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--batch-as-of: the population of a snapshot, built as training builds it, scored."""
    registry["reference"] = training_reference(monitored, n=300)
    data_dir = monitored.data.features_dir.parent
    settings = Settings(home=monitored.repo, paths={"data_dir": data_dir})  # type: ignore[arg-type]
    monkeypatch.setattr("collectwise.settings.get_settings", lambda: settings)
    monkeypatch.setattr(
        "training.registry.load_version", lambda v, **_: types.SimpleNamespace(model=None)
    )
    monkeypatch.setattr(
        "training.batch_scoring.score_vectors",
        lambda model, frame: pd.DataFrame({"probability": score(frame)}, index=frame.index),
    )
    as_of = monitored.data.as_of - timedelta(days=20)
    result = invoke(
        ["drift", "--batch-as-of", iso(as_of), "--reports-dir", str(tmp_path), "--no-alerts"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(next((tmp_path / "drift").glob("*/summary.json")).read_text())
    profile = pd.read_parquet(monitored.data.features_dir / "account_profile.parquet")
    snapshot = profile.loc[profile["event_timestamp"] <= as_of, "event_timestamp"].max()
    assert summary["rows"]["current"] == int((profile["event_timestamp"] == snapshot).sum())
    assert summary["labels"]["source"] == "batch"
    assert summary["score"] is not None
