"""ingestion.online_batch against get_online_features, on real SQLite and Redis stores.

The same generated feature tables are materialised by the platform's own path; then every
account of the newest snapshot (plus unknown, repeated and customer-sharing ones) is read
both ways, at a later scoring time and with and without a reported income (the on-demand
view's inputs). The frames must agree value for value and their model matrices exactly.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from feature_repo.feature_services import COLLECTION_RISK_V1
from ingestion.feast_store import materialize_latest, online_feature_vectors
from ingestion.online_batch import BatchReader, batch_reader
from ingestion.retrieval import ScratchRepo, apply_scratch_repo
from ingestion.value_encoding import entity_key_bytes
from tests.integration.conftest import FeatureData
from training.model_matrix import model_matrix

pytestmark = pytest.mark.integration


def normal(value: Any) -> Any:
    """One spelling of null and of a list, so the two frames' values compare as values."""
    if isinstance(value, list | np.ndarray):
        return [normal(v) for v in value]
    if pd.isna(value):  # None, NaN, NaT, pd.NA
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


def assert_same_vectors(ours: pd.DataFrame, feasts: pd.DataFrame) -> None:
    assert list(ours.columns) == list(feasts.columns)
    assert len(ours) == len(feasts)
    for column in feasts.columns:
        mine = [normal(v) for v in ours[column]]
        theirs = [normal(v) for v in feasts[column]]
        differing = [i for i, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b]
        assert not differing, (column, differing[:3], mine[differing[0]], theirs[differing[0]])
    known = feasts["customer_id"].notna().to_numpy()
    pd.testing.assert_frame_equal(model_matrix(ours[known]), model_matrix(feasts[known]))


def reader(store: Any) -> BatchReader:
    made = batch_reader(store, COLLECTION_RISK_V1)
    assert isinstance(made, BatchReader), made
    return made


def accounts(feature_data: FeatureData) -> list[str]:
    profile = pd.read_parquet(feature_data.features_dir / "account_profile.parquet")
    newest = profile[profile["event_timestamp"] == feature_data.as_of]
    ids = list(newest["account_id"])
    # Unknown ones, repeats, and the order shuffled: the caller's order must survive.
    mixed = [*ids, "NO-SUCH-1", ids[0], ids[5], "NO-SUCH-2", ids[5]]
    rng = np.random.default_rng(3)
    return [mixed[i] for i in rng.permutation(len(mixed))]


@pytest.mark.parametrize("income", [0.0, 2_500.0])
def test_batch_vectors_equal_get_online_features(
    online_store: ScratchRepo, feature_data: FeatureData, income: float
) -> None:
    materialize_latest(online_store.store, feature_data.as_of)
    ids = accounts(feature_data)
    when = feature_data.as_of + timedelta(days=9, hours=5)  # ages the overdue days
    batch = reader(online_store.store)
    try:
        ours = batch.frame(ids, when, income)
    finally:
        batch.close()
    feasts = online_feature_vectors(
        online_store.store, ids, scoring_time=when, reported_income=income
    )
    assert list(ours["account_id"]) == ids
    assert ours["customer_id"].notna().sum() >= 0.9 * len(ids)  # most accounts are known
    assert ours["customer_id"].isna().sum() >= 2  # the unknown ones are kept, unscored
    assert_same_vectors(ours, feasts)


def test_nothing_materialised_reads_as_unknown_like_feast(
    feature_data: FeatureData, tmp_path: Path
) -> None:
    applied = apply_scratch_repo(
        tmp_path / "repo",
        feature_data.features_dir,
        "cwtest_batch_empty",
        online={"type": "sqlite", "path": str(tmp_path / "o.db")},
    )
    ids = accounts(feature_data)[:20]
    batch = reader(applied.store)
    try:
        ours = batch.frame(ids, feature_data.as_of)
    finally:
        batch.close()
    assert ours["customer_id"].isna().all()
    assert_same_vectors(ours, online_feature_vectors(applied.store, ids, feature_data.as_of))


def test_a_missing_sqlite_file_is_left_to_feast_and_not_created(
    feature_data: FeatureData, tmp_path: Path
) -> None:
    applied = apply_scratch_repo(
        tmp_path / "repo",
        feature_data.features_dir,
        "cwtest_batch_nofile",
        online={"type": "sqlite", "path": str(tmp_path / "o.db")},
    )
    (tmp_path / "o.db").unlink(missing_ok=True)
    why = batch_reader(applied.store, COLLECTION_RISK_V1)
    assert isinstance(why, str) and "does not exist" in why
    assert not (tmp_path / "o.db").exists()


def test_a_subset_of_a_views_features_reads_the_same_bytes(
    online_store: ScratchRepo, feature_data: FeatureData
) -> None:
    """Asked for some of a view's features the store filters by name; asked for all, by key
    only: the bytes of the features asked for are the same either way."""
    materialize_latest(online_store.store, feature_data.as_of)
    batch = reader(online_store.store)
    try:
        velocity = next(r for r in batch.reads if r.view.name == "account_payment_velocity")
        keys = entity_key_bytes(accounts(feature_data)[:50], "account_id")
        every = batch.store.read(velocity.view, keys, [f.name for f in velocity.view.features])
        some = batch.store.read(velocity.view, keys, ["debt_amount", "payment_history"])
    finally:
        batch.close()
    assert set(some) == {"debt_amount", "payment_history"}
    assert all(some[name] == every[name] for name in some)
    assert sum(b is not None for b in some["debt_amount"]) >= 40
