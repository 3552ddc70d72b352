"""The UCI path end to end on the shared real data: adapter, contract, features, Feast."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ingestion.feast_store import features_as_of, materialize_latest, online_feature_vectors
from ingestion.features import build_features
from ingestion.retrieval import apply_scratch_repo, entity_rows, point_in_time_vectors
from ingestion.uci import ingest_uci
from ingestion.validate import validate_raw
from tests.integration.test_feast_store import normalise

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_uci_file_runs_through_the_same_pipeline(uci_csv: Path, tmp_path: Path) -> None:
    summary = ingest_uci(uci_csv, tmp_path / "raw", tmp_path / "quarantine_input")
    validated = validate_raw(
        tmp_path / "raw", tmp_path / "validated", tmp_path / "quarantine", tmp_path / "reports"
    )
    built = build_features(tmp_path / "validated", tmp_path / "features")

    assert summary.clients_written == summary.rows_read == 23_877
    assert validated is not None
    assert built.rows["labels"] == 23_877
    assert built.label_source == "observed"
    assert built.default_rate == pytest.approx(0.2193, abs=0.001)

    features = tmp_path / "features"
    applied = apply_scratch_repo(
        tmp_path / "repo",
        features,
        "cwtest_uci",
        online={"type": "sqlite", "path": str(tmp_path / "o.db")},
    )
    as_of = features_as_of(features)
    materialize_latest(applied.store, as_of)
    profile = pd.read_parquet(features / "account_profile.parquet")
    sample = profile[profile["event_timestamp"] == as_of].head(10)
    online = online_feature_vectors(applied.store, list(sample["account_id"]), scoring_time=as_of)
    entities = entity_rows(sample["account_id"], sample["customer_id"], as_of)
    offline = point_in_time_vectors(applied.store, entities)
    online = online.set_index("account_id")
    offline = offline.set_index("account_id").loc[online.index]
    for col in (c for c in offline.columns if "__" in c):
        for account in online.index:
            assert normalise(online.at[account, col]) == normalise(offline.at[account, col]), (
                account,
                col,
            )
    # income is not in the UCI file: the income ratios stay null, never invented
    assert online["customer_financial_ratios__debt_to_income_ratio"].isna().all()
