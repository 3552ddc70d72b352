"""Batch scoring: a UCI-format file through adapter, contract, features and Feast, and
account ids through the online store; unknown accounts are marked, never scored as zeros."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from ingestion.feast_store import materialize_latest, online_feature_vectors
from ingestion.features import build_features
from ingestion.retrieval import apply_scratch_repo
from ingestion.uci import ingest_uci
from tests.integration.conftest import FeatureData
from training import batch_scoring
from training.batch_scoring import (
    NO_FEATURES,
    is_uci_file,
    read_account_ids,
    score_accounts,
    score_uci_file,
    score_vectors,
    snapshot_vectors,
)
from training.model_matrix import model_matrix
from training.scoring_model import ScoringModel

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def fitted_model(x: pd.DataFrame, y: np.ndarray) -> ScoringModel:
    estimator = make_pipeline(SimpleImputer(), LogisticRegression(max_iter=500)).fit(x, y)
    return ScoringModel(
        estimator=estimator,
        calibrator=None,
        threshold=0.5,
        low_max=0.2,
        medium_max=0.5,
        feature_columns=list(x.columns),
        feature_service="collection_risk_v1",
        definitions_fingerprint="test",
    )


def test_uci_file_is_scored_through_the_feature_definitions(uci_csv: Path, tmp_path: Path) -> None:
    small = tmp_path / "clients.csv"
    pd.read_csv(uci_csv, nrows=300).to_csv(small, index=False)
    assert is_uci_file(small)
    model, vectors = fitted_model_from_work(small, tmp_path / "fit")
    scores = score_uci_file(small, model, tmp_path / "work").set_index("account_id")
    assert len(scores) == 300 and (scores["status"] == "scored").all()
    assert set(scores["band"]) <= {"low", "medium", "high"}
    # the batch path rebuilds exactly the vectors the model was fitted on
    expected = pd.Series(model.predict_proba(model_matrix(vectors)), index=vectors["account_id"])
    np.testing.assert_allclose(scores.loc[expected.index, "probability"].to_numpy(float), expected)
    _chunks_score_as_one(model, vectors)


def _chunks_score_as_one(model: ScoringModel, vectors: pd.DataFrame) -> None:
    """score_vectors in chunks of 7 rows equals one pass, with accounts lacking features
    between the scored ones and an index that is not 0..n-1."""
    mixed = vectors.copy()
    mixed.loc[mixed.index[::5], "customer_id"] = None
    mixed.index = mixed.index * 3 + 11
    whole = score_vectors(model, mixed)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(batch_scoring, "SCORE_CHUNK_ROWS", 7)
        chunked = score_vectors(model, mixed)
    pd.testing.assert_frame_equal(chunked, whole)
    assert list(whole.index) == list(mixed.index)
    lacking = whole.iloc[::5]
    assert (lacking["status"] == NO_FEATURES).all() and lacking["probability"].isna().all()
    assert lacking["decision"].isna().all() and (lacking["band"] == "unknown").all()
    scored = whole.drop(index=lacking.index)
    known = mixed.drop(index=lacking.index)
    np.testing.assert_allclose(
        scored["probability"].to_numpy(float), model.predict_proba(model_matrix(known))
    )
    assert set(scored["decision"]) <= {True, False} and (scored["status"] == "scored").all()


def fitted_model_from_work(csv: Path, work: Path) -> tuple[ScoringModel, pd.DataFrame]:
    ingest_uci(csv, work / "raw", work / "q")
    build_features(work / "raw", work / "features")
    vectors = snapshot_vectors(work / "features", work / "feast")
    labels = pd.read_parquet(work / "features" / "labels.parquet")
    y = vectors[["account_id"]].merge(labels, on="account_id")["default_30d"].to_numpy()
    return fitted_model(model_matrix(vectors), y), vectors


def test_account_ids_are_scored_from_the_online_store(
    feature_data: FeatureData, tmp_path: Path
) -> None:
    applied = apply_scratch_repo(
        tmp_path / "repo",
        feature_data.features_dir,
        "cwtest_batch",
        online={"type": "sqlite", "path": str(tmp_path / "o.db")},
    )
    materialize_latest(applied.store, feature_data.as_of)
    profile = pd.read_parquet(feature_data.features_dir / "account_profile.parquet")
    ids = list(profile[profile["event_timestamp"] == feature_data.as_of]["account_id"].head(40))
    vectors = online_feature_vectors(applied.store, ids, scoring_time=feature_data.as_of)
    x = model_matrix(vectors)
    model = fitted_model(x, (x["account_payment_velocity__months_past_due_6m"] > 2).to_numpy(int))
    listing = tmp_path / "ids.csv"
    pd.DataFrame({"account_id": [*ids[:5], "NO-SUCH"]}).to_csv(listing, index=False)
    scores = score_accounts(applied.store, model, read_account_ids(listing), feature_data.as_of)
    assert list(scores["account_id"]) == [*ids[:5], "NO-SUCH"]
    unknown = scores.set_index("account_id").loc["NO-SUCH"]
    assert unknown["status"] == "no features for this account" and pd.isna(unknown["probability"])
    expected = model.predict_proba(x.iloc[:5])
    np.testing.assert_allclose(scores["probability"].iloc[:5].to_numpy(float), expected)
    # Read and scored two accounts at a time (a book bigger than memory): the same answers.
    chunked = score_accounts(
        applied.store, model, read_account_ids(listing), feature_data.as_of, chunk_rows=2
    )
    pd.testing.assert_frame_equal(chunked, scores)
