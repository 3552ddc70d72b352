"""Point-in-time training sets through a real Feast repo (DuckDB offline, SQLite online)."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_repo.feature_services import COLLECTION_RISK_V1
from feature_repo.views import SNAPSHOT_TTL
from ingestion.features import build_features
from ingestion.rawio import write_part
from ingestion.retrieval import apply_scratch_repo
from tests.integration.conftest import FeatureData, ScratchRepo
from training.dataset import (
    DatasetSummary,
    build_training_set,
    dataset_fingerprint,
    file_sha256,
    read_dataset,
    read_summary,
)
from training.fingerprint import definitions_fingerprint, service_feature_refs
from training.model_matrix import model_matrix

pytestmark = pytest.mark.integration

KEYS = ["account_id", "event_timestamp"]
VELOCITY = "account_payment_velocity"


@dataclass
class Built:
    applied: ScratchRepo
    summary: DatasetSummary
    frame: pd.DataFrame
    out_dir: Path


def build(data: FeatureData, features_dir: Path, raw_dir: Path, work: Path) -> Built:
    """Apply the repo over `features_dir` in a fresh temporary store and build a set."""
    applied = apply_scratch_repo(
        work / "repo",
        features_dir,
        f"cwtrain_{uuid.uuid4().hex[:10]}",
        online={"type": "sqlite", "path": str(work / "online.db")},
    )
    summary = build_training_set(
        applied.store,
        features_dir,
        raw_dir,
        work / "dataset",
        oracle_dir=data.root / "raw" / "_oracle",
    )
    return Built(applied, summary, read_dataset(work / "dataset"), work / "dataset")


@pytest.fixture(scope="module")
def built(feature_data: FeatureData, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    work = tmp_path_factory.mktemp("trainingset")
    result = build(feature_data, feature_data.features_dir, feature_data.root / "validated", work)
    yield result
    result.applied.store.teardown()


def test_every_row_is_a_matured_label(built: Built, feature_data: FeatureData) -> None:
    labels = pd.read_parquet(feature_data.features_dir / "labels.parquet")
    frame = built.frame
    assert len(frame) == len(labels) == built.summary.rows
    assert not frame.duplicated(KEYS).any()
    joined = frame[[*KEYS, "default_30d"]].merge(
        labels[[*KEYS, "default_30d"]], on=KEYS, how="left", suffixes=("", "_label")
    )
    assert joined["default_30d_label"].notna().all()
    assert (joined["default_30d"] == joined["default_30d_label"]).all()
    assert built.summary.positives == int(labels["default_30d"].sum())
    # Rows are in a deterministic order: by snapshot, then account.
    pd.testing.assert_frame_equal(
        frame[KEYS], frame[KEYS].sort_values(["event_timestamp", "account_id"])
    )


def expected_velocity(velocity: pd.DataFrame, account: str, t: pd.Timestamp) -> pd.Series | None:
    """The velocity row a point-in-time join must pick: newest event at or before t that was
    recorded by t and is within the TTL."""
    rows = velocity[
        (velocity["account_id"] == account)
        & (velocity["event_timestamp"] <= t)
        & (velocity["created_timestamp"] <= t)
        & (velocity["event_timestamp"] >= t - SNAPSHOT_TTL)
    ]
    if rows.empty:
        return None
    return rows.sort_values(["event_timestamp", "created_timestamp"]).iloc[-1]


def test_no_feature_was_recorded_after_its_snapshot(
    built: Built, feature_data: FeatureData
) -> None:
    velocity = pd.read_parquet(feature_data.features_dir / f"{VELOCITY}.parquet")
    sample = built.frame.sample(20, random_state=3)
    for _, row in sample.iterrows():
        t = row["event_timestamp"]
        picked = expected_velocity(velocity, row["account_id"], t)
        assert picked is not None, f"no velocity row for {row['account_id']} at {t}"
        assert picked["created_timestamp"] <= t
        assert row[f"{VELOCITY}__debt_amount"] == picked["debt_amount"]
        assert row[f"{VELOCITY}__days_overdue"] == picked["days_overdue"]
        np.testing.assert_array_equal(
            np.asarray(row[f"{VELOCITY}__payment_history"], dtype=float),
            np.asarray(picked["payment_history"], dtype=float),
        )
        # in training the request-time overdue count equals the snapshot's
        assert row["request_time_features__days_overdue_at_request"] == picked["days_overdue"]


def test_columns_are_the_service_full_names(built: Built) -> None:
    refs = service_feature_refs(built.applied.store, COLLECTION_RISK_V1)
    assert built.summary.feature_columns == refs
    assert refs[0] == "account_payment_velocity__debt_amount"
    entity_and_request = [
        "account_id",
        "customer_id",
        "event_timestamp",
        "default_30d",
        "scoring_time",
        "reported_monthly_income",
    ]
    evaluation_only = ["protected__age_band", "protected__sex", "oracle__p_default"]
    assert list(built.frame.columns) == [*entity_and_request, *refs, *evaluation_only]
    assert list(built.frame.columns) == built.summary.columns


def test_protected_and_oracle_columns_stay_out_of_the_model(built: Built) -> None:
    frame = built.frame
    for column in ("protected__age_band", "protected__sex", "oracle__p_default"):
        assert column in frame.columns
    assert frame["protected__sex"].notna().all()
    assert frame["oracle__p_default"].notna().mean() > 0.5
    matrix = model_matrix(frame)
    assert len(matrix) == len(frame)
    assert not [c for c in matrix.columns if c.startswith(("protected__", "oracle__"))]
    assert (matrix.dtypes == np.float64).all()


def test_summary_carries_the_fingerprints(built: Built, feature_data: FeatureData) -> None:
    summary = read_summary(built.out_dir)
    assert summary == built.summary
    written = json.loads((built.out_dir / "dataset.json").read_text())
    assert written["service_name"] == COLLECTION_RISK_V1
    assert summary.definitions_fingerprint == definitions_fingerprint(
        built.applied.store, COLLECTION_RISK_V1
    )
    assert summary.labels_sha256 == file_sha256(feature_data.features_dir / "labels.parquet")
    manifest = feature_data.features_dir / "_manifest.json"
    assert summary.features_manifest_sha256 == file_sha256(manifest)
    assert summary.dataset_fingerprint == dataset_fingerprint(
        COLLECTION_RISK_V1,
        summary.definitions_fingerprint,
        summary.labels_sha256,
        summary.features_manifest_sha256,
    )
    assert summary.snapshots["count"] == built.frame["event_timestamp"].nunique()
    assert summary.has_oracle


def late_payment_target(built: Built, feature_data: FeatureData) -> tuple[str, pd.Timestamp]:
    """A mid-history (account, snapshot) with a training row and a later feature row."""
    velocity = pd.read_parquet(feature_data.features_dir / f"{VELOCITY}.parquet")
    snapshots = sorted(built.frame["event_timestamp"].unique())
    t = pd.Timestamp(snapshots[len(snapshots) // 2])
    later = set(velocity.loc[velocity["event_timestamp"] > t, "account_id"])
    at_t = built.frame.loc[built.frame["event_timestamp"] == t, "account_id"]
    return str(sorted(set(at_t) & later)[0]), t


def add_late_payment(raw_dir: Path, account: str, t: pd.Timestamp) -> None:
    """A settled payment made before t that the bank only reported after t."""
    payment = pd.DataFrame(
        {
            "payment_id": ["PLATE00000001"],
            "account_id": [account],
            "paid_at": [t - timedelta(days=2)],
            "amount": [500.0],
            "channel": ["card"],
            "status": ["settled"],
            "recorded_at": [t + timedelta(days=3)],
        }
    )
    write_part(payment, raw_dir, "payments", part=99_999)


def test_a_late_payment_changes_nothing_in_its_snapshot(
    built: Built, feature_data: FeatureData, tmp_path: Path
) -> None:
    account, t = late_payment_target(built, feature_data)
    raw_dir = tmp_path / "validated"
    shutil.copytree(feature_data.root / "validated", raw_dir)
    add_late_payment(raw_dir, account, t)
    build_features(raw_dir, tmp_path / "features")
    rebuilt = build(feature_data, tmp_path / "features", raw_dir, tmp_path / "work")
    try:
        before = built.frame[built.frame["event_timestamp"] == t].reset_index(drop=True)
        after = rebuilt.frame[rebuilt.frame["event_timestamp"] == t].reset_index(drop=True)
        assert account in set(before["account_id"])
        pd.testing.assert_frame_equal(after, before)
    finally:
        rebuilt.applied.store.teardown()
    # the payment did arrive: the next snapshot of the account sees it
    old = pd.read_parquet(feature_data.features_dir / f"{VELOCITY}.parquet")
    new = pd.read_parquet(tmp_path / "features" / f"{VELOCITY}.parquet")
    key = (old["account_id"] == account) & (old["event_timestamp"] > t)
    next_key = (new["account_id"] == account) & (new["event_timestamp"] > t)
    assert not np.array_equal(
        np.asarray(old.loc[key, "payment_history"].iloc[0], dtype=float),
        np.asarray(new.loc[next_key, "payment_history"].iloc[0], dtype=float),
    )
