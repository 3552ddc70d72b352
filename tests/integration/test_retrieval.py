"""ingestion.retrieval on a real Feast repo: vectors in entity-row order, scratch repos that
clean up after themselves."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ingestion.retrieval import entity_rows, point_in_time_vectors, scratch_repo
from tests.integration.conftest import FeatureData

pytestmark = pytest.mark.integration

DEBT = "account_payment_velocity__debt_amount"


def shuffled_rows(data: FeatureData, n: int = 300) -> pd.DataFrame:
    """Labelled (account, snapshot) rows in a random order, one account repeated at the end."""
    labels = pd.read_parquet(data.features_dir / "labels.parquet")
    sample = labels.sample(n=min(n, len(labels)), random_state=3)
    sample = pd.concat([sample, sample.head(1)])
    return entity_rows(
        sample["account_id"],
        sample["customer_id"],
        sample["event_timestamp"],
        extra={"position": np.arange(len(sample))},
    )


def test_vectors_come_back_in_entity_row_order(feature_data: FeatureData) -> None:
    entities = shuffled_rows(feature_data)
    with scratch_repo(feature_data.features_dir, f"cwret_{uuid.uuid4().hex[:8]}") as scratch:
        frame = point_in_time_vectors(scratch.store, entities)
        again = point_in_time_vectors(scratch.store, entities.iloc[::-1])
    assert len(frame) == len(entities)
    assert frame.index.tolist() == list(range(len(entities)))
    for column in ("position", "account_id", "customer_id", "event_timestamp"):
        assert frame[column].tolist() == entities[column].tolist(), column
    assert not any(c.startswith("_entity_row") for c in frame.columns)
    assert frame[DEBT].notna().mean() > 0.9
    # The same rows asked in reverse come back reversed, with the same values.
    assert again["position"].tolist() == entities["position"].tolist()[::-1]
    pd.testing.assert_frame_equal(again.iloc[::-1].reset_index(drop=True), frame)


def test_a_scratch_repo_is_deleted_afterwards_unless_it_is_the_callers(
    feature_data: FeatureData, tmp_path: Path
) -> None:
    with scratch_repo(feature_data.features_dir, f"cwret_{uuid.uuid4().hex[:8]}") as scratch:
        assert scratch.profile.is_file()
        assert "duckdb" in scratch.profile.read_text()
        folder = scratch.repo
    assert not folder.exists()

    kept = tmp_path / "kept"
    with scratch_repo(feature_data.features_dir, "cwret_kept", repo=kept) as scratch:
        assert scratch.repo == kept
    assert (kept / "feature_store.yaml").is_file() and (kept / "registry.db").is_file()
