"""Feast over the feature tables: apply, materialise into SQLite and Redis, point-in-time
correctness for event time and recording time, and online/offline parity."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from feature_repo.feature_services import COLLECTION_RISK_V1
from ingestion.feast_store import materialize_latest, online_feature_vectors
from ingestion.retrieval import (
    apply_scratch_repo,
    entity_rows,
    open_scratch_store,
    point_in_time_vectors,
)
from monitoring.disaster.rebuild import normalise
from tests.integration.conftest import FeatureData, ScratchRepo

pytestmark = pytest.mark.integration

DAY = timedelta(days=1)


def latest_accounts(data: FeatureData, n: int) -> pd.DataFrame:
    profile = pd.read_parquet(data.features_dir / "account_profile.parquet")
    latest = profile[profile["event_timestamp"] == data.as_of]
    return latest.sort_values("account_id").head(n)[["account_id", "customer_id"]]


def historical(applied: ScratchRepo, entities: pd.DataFrame, features: Any) -> pd.DataFrame:
    """The platform's point-in-time read: values recorded by each entity row's moment."""
    return point_in_time_vectors(applied.store, entities, features)


def unfiltered(applied: ScratchRepo, entities: pd.DataFrame, features: Any) -> pd.DataFrame:
    """Feast's own default, which ignores recording times; only to show what the filter does."""
    return applied.store.get_historical_features(
        entity_df=entities, features=features, full_feature_names=True
    ).to_df()


def test_apply_registers_the_catalogue(online_store: ScratchRepo) -> None:
    store = online_store.store
    views = {v.name for v in store.list_feature_views()}
    assert {
        "account_payment_velocity",
        "customer_financial_ratios",
        "account_contact_behavior",
        "account_profile",
    } <= views
    service = store.get_feature_service(COLLECTION_RISK_V1)
    names = {p.name for p in service.feature_view_projections}
    assert names == {
        "account_payment_velocity",
        "customer_financial_ratios",
        "account_contact_behavior",
        "request_time_features",
    }
    assert {o.name for o in store.list_on_demand_feature_views()} == {"request_time_features"}


def test_online_equals_offline_at_materialisation(
    online_store: ScratchRepo, feature_data: FeatureData
) -> None:
    """For sampled accounts, the online vector equals get_historical_features at as_of."""
    materialize_latest(online_store.store, feature_data.as_of)
    accounts = latest_accounts(feature_data, 25)
    ids = list(accounts["account_id"])
    online = online_feature_vectors(online_store.store, ids, scoring_time=feature_data.as_of)
    entities = entity_rows(accounts["account_id"], accounts["customer_id"], feature_data.as_of)
    offline = historical(online_store, entities, COLLECTION_RISK_V1)
    online, offline = (
        online.set_index("account_id").loc[ids],
        offline.set_index("account_id").loc[ids],
    )
    feature_columns = [c for c in offline.columns if "__" in c]
    assert len(feature_columns) >= 20
    mismatches = [
        (account, col, online.at[account, col], offline.at[account, col])
        for col in feature_columns
        for account in ids
        if normalise(online.at[account, col]) != normalise(offline.at[account, col])
    ]
    assert not mismatches, f"{len(mismatches)} online/offline mismatches, e.g. {mismatches[:3]}"
    assert online["account_payment_velocity__debt_amount"].notna().all()


def test_unknown_account_has_no_online_features(
    online_store: ScratchRepo, feature_data: FeatureData
) -> None:
    materialize_latest(online_store.store, feature_data.as_of)
    frame = online_feature_vectors(
        online_store.store, ["NO-SUCH-ACCOUNT"], scoring_time=feature_data.as_of
    )
    assert frame["account_payment_velocity__debt_amount"].isna().all()


def _account_with_history(data: FeatureData, snapshots: int = 4) -> tuple[str, pd.DataFrame]:
    velocity = pd.read_parquet(data.features_dir / "account_payment_velocity.parquet")
    counts = velocity.groupby("account_id").size()
    account = str(counts[counts >= snapshots].index[0])
    return account, velocity[velocity["account_id"] == account].sort_values("event_timestamp")


def test_point_in_time_by_event_time_and_ttl(
    online_store: ScratchRepo, feature_data: FeatureData
) -> None:
    account, rows = _account_with_history(feature_data)
    second, first = rows.iloc[1], rows.iloc[0]
    when = [
        second["event_timestamp"] + 10 * DAY,
        first["event_timestamp"] - DAY,
        rows.iloc[-1]["event_timestamp"] + 46 * DAY,
    ]
    entities = pd.DataFrame({"account_id": [account] * 3, "event_timestamp": when})
    got = historical(
        online_store,
        entities,
        ["account_payment_velocity:debt_amount", "account_payment_velocity:payment_history"],
    ).sort_values("event_timestamp")
    by_time = dict(
        zip(got["event_timestamp"], got["account_payment_velocity__debt_amount"], strict=True)
    )
    assert by_time[when[0]] == second["debt_amount"]  # the snapshot before, not after
    assert pd.isna(by_time[when[1]])  # before the first snapshot: nothing
    assert pd.isna(by_time[when[2]])  # past the 45-day TTL: stale, so null


def test_point_in_time_by_recording_time(feature_data: FeatureData, tmp_path: Path) -> None:
    """A value recorded after the entity time must not be served, even if its event time fits."""
    account, rows = _account_with_history(feature_data)
    t1, t2 = rows.iloc[0]["event_timestamp"], rows.iloc[1]["event_timestamp"]
    base = rows.iloc[[0]].copy()
    on_time = base.assign(created_timestamp=t1 - 5 * DAY, debt_amount=100.0)
    restated = base.assign(created_timestamp=t1 + 20 * DAY, debt_amount=555.0)  # corrected late
    late = base.assign(event_timestamp=t2, created_timestamp=t2 + 10 * DAY, debt_amount=999.0)
    features_dir = tmp_path / "features"
    features_dir.mkdir()
    pd.concat([on_time, restated, late]).to_parquet(
        features_dir / "account_payment_velocity.parquet"
    )
    applied = apply_scratch_repo(
        tmp_path / "repo",
        features_dir,
        "cwtest_pit",
        online={"type": "sqlite", "path": str(tmp_path / "o.db")},
    )
    when = [t1 + DAY, t1 + 25 * DAY, t2 + DAY]
    entities = pd.DataFrame({"account_id": [account] * 3, "event_timestamp": when})

    def debts(read: Callable[..., pd.DataFrame] = historical) -> list[float]:
        got = read(applied, entities, ["account_payment_velocity:debt_amount"])
        return list(got.sort_values("event_timestamp")["account_payment_velocity__debt_amount"])

    assert debts() == [100.0, 555.0, 555.0]
    # Feast's default would leak both the restatement and the late row: the filter matters.
    assert debts(unfiltered) == [555.0, 555.0, 999.0]


def test_labels_never_appear_before_they_matured(
    online_store: ScratchRepo, feature_data: FeatureData
) -> None:
    labels = pd.read_parquet(feature_data.features_dir / "labels.parquet")
    account = str(labels.groupby("account_id").size().idxmax())
    mine = labels[labels["account_id"] == account].sort_values("event_timestamp")
    when = [t + DAY for t in mine["event_timestamp"]]
    entities = pd.DataFrame({"account_id": [account] * len(when), "event_timestamp": when})
    got = historical(online_store, entities, ["account_default_labels:default_30d"]).sort_values(
        "event_timestamp"
    )
    for entity_time, value in zip(
        got["event_timestamp"], got["account_default_labels__default_30d"], strict=True
    ):
        known = mine[
            (mine["event_timestamp"] <= entity_time) & (mine["created_timestamp"] <= entity_time)
        ]
        expected = known.iloc[-1]["default_30d"] if len(known) else None
        assert (pd.isna(value) and expected is None) or value == expected


def test_production_profile_sql_registry_on_postgres_and_redis(
    feature_data: FeatureData, tmp_path: Path
) -> None:
    """The production shape: the registry in PostgreSQL, the online store in Redis."""
    project = f"cwtest_pg_{uuid.uuid4().hex[:8]}"
    registry = {
        "registry_type": "sql",
        "path": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        "cache_ttl_seconds": 0,
    }
    applied = apply_scratch_repo(
        tmp_path / "repo",
        feature_data.features_dir,
        project,
        online={"type": "redis", "connection_string": "127.0.0.1:6379"},
        registry=registry,
    )
    try:
        materialize_latest(applied.store, feature_data.as_of)
        ids = list(latest_accounts(feature_data, 5)["account_id"])
        online = online_feature_vectors(applied.store, ids, scoring_time=feature_data.as_of)
        assert online["account_payment_velocity__debt_amount"].notna().all()
        # a second client reads the same definitions from PostgreSQL
        other = open_scratch_store(
            tmp_path / "other",
            project,
            online={"type": "redis", "connection_string": "127.0.0.1:6379"},
            registry=registry,
        )
        assert other.get_feature_service(COLLECTION_RISK_V1).name == COLLECTION_RISK_V1
    finally:
        applied.store.teardown()  # removes the project's keys and its registry rows
