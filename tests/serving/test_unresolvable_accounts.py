"""Accounts the online store cannot resolve to a customer, written into a real store.

A shared Redis can hold another run's rows under the same project, and a store can hold an
account whose profile row has no customer (null, or "", which would read a customer view
keyed by ""), a customer id of another schema's type, or a profile row and nothing else. A
null customer id once reached Feast's entity-key serialisation ("Value type not supported
for feast feature store"). The scorer answers each such account as unknown: 404 with a body
naming it, never a 500 and never a score made of nothing but missing values.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from google.protobuf.timestamp_pb2 import Timestamp

from ingestion.feast_store import materialize_latest, online_feature_vectors
from ingestion.retrieval import ScratchRepo, scratch_repo
from serving import provider_read
from serving.main import create_app
from tests.integration.conftest import REDIS_URL, FeatureData
from tests.serving.conftest import SCORE_KEY, ScorerWorld, scorer_settings, serve
from tests.serving.test_scorer import known_accounts

pytestmark = pytest.mark.integration

AUTH = {"X-API-Key": SCORE_KEY}
# Account id -> what its rows in the online store are.
NULL_CUSTOMER = "ORPHAN-NULL"  # payment rows, a profile row whose customer_id is null
EMPTY_CUSTOMER = "ORPHAN-EMPTY"  # payment rows, customer_id "", a customer view keyed by ""
PROFILE_ONLY = "ORPHAN-PROFILE"  # a profile row naming a customer no view holds, nothing else
INT_CUSTOMER = "ORPHAN-INT"  # Redis only: customer_id written as an int64 by another schema
NO_CUSTOMER = "NO_SUCH_CUSTOMER_ANYWHERE"


@pytest.fixture(params=["sqlite", "redis"])
def store(
    request: pytest.FixtureRequest, feature_data: FeatureData, tmp_path: Path
) -> Iterator[ScratchRepo]:
    """The definitions applied and the snapshot loaded into a store of our own project."""
    project = f"cworphan_{uuid.uuid4().hex[:8]}"
    online: dict[str, object] = (
        {"type": "sqlite", "path": str(tmp_path / "online.db")}
        if request.param == "sqlite"
        else {"type": "redis", "connection_string": REDIS_URL}
    )
    with scratch_repo(feature_data.features_dir, project, online=online) as applied:
        materialize_latest(applied.store, feature_data.as_of)
        yield applied


def _write_orphans(applied: ScratchRepo, world: ScorerWorld, as_of: datetime) -> list[str]:
    """The unresolvable accounts' rows, through Feast's own write path; their ids."""
    store = applied.store
    donor = known_accounts(world, 1)[0]
    velocity = pd.read_parquet(world.data.features_dir / "account_payment_velocity.parquet")
    velocity = velocity[velocity["account_id"] == donor].sort_values("event_timestamp").tail(1)
    for account in (NULL_CUSTOMER, EMPTY_CUSTOMER):
        store.write_to_online_store("account_payment_velocity", velocity.assign(account_id=account))
    ratios = pd.read_parquet(world.data.features_dir / "customer_financial_ratios.parquet")
    store.write_to_online_store("customer_financial_ratios", ratios.tail(1).assign(customer_id=""))
    profiles = [(NULL_CUSTOMER, None), (EMPTY_CUSTOMER, ""), (PROFILE_ONLY, NO_CUSTOMER)]
    stamp = {"event_timestamp": as_of, "created_timestamp": as_of}
    store.write_to_online_store(
        "account_profile",
        pd.DataFrame([{"account_id": a, "customer_id": c, **stamp} for a, c in profiles]),
    )
    accounts = [a for a, _ in profiles]
    if applied.store.config.online_store.type == "redis":
        _write_int_customer(applied.project, as_of)
        accounts.append(INT_CUSTOMER)
    return accounts


def _write_int_customer(project: str, as_of: datetime) -> None:
    # Feast's write path would refuse an int for a String field; another schema's writer
    # (another run under the same project) does not ask ours, so the hash is written raw.
    key = EntityKey(join_keys=["account_id"], entity_values=[Value(string_val=INT_CUSTOMER)])
    stamp = Timestamp()
    stamp.FromDatetime(as_of.astimezone(UTC).replace(tzinfo=None))
    redis.Redis.from_url(f"redis://{REDIS_URL}").hset(
        _redis_key(project, key, 3),
        mapping={
            _mmh3("account_profile:customer_id"): Value(int64_val=5).SerializeToString(),
            "_ts:account_profile": stamp.SerializeToString(),
        },
    )


@pytest.mark.parametrize("online_path", ["direct", "sdk"])
def test_unresolvable_accounts_are_unknown_not_500(
    world: ScorerWorld, store: ScratchRepo, tmp_path: Path, online_path: str
) -> None:
    as_of = world.data.as_of
    orphans = _write_orphans(store, world, as_of)
    good = known_accounts(world, 1)[0]
    settings = scorer_settings(tmp_path, online_path=online_path)
    with serve(create_app(settings, store=store.store)) as client:
        singles = {a: _score(client, a, as_of) for a in orphans}
        batch = client.post(
            "/v1/score/batch",
            json={
                "accounts": [{"account_id": a} for a in [good, *orphans]],
                "as_of": as_of.isoformat(),
            },
            headers=AUTH,
        )
    for account, answer in singles.items():
        assert answer.status_code == 404, (account, answer.text)
        got = answer.json()
        assert got["error"] == "unknown_account", got
        assert account in got["detail"] and "online store" in got["detail"]
    assert batch.status_code == 200, batch.text
    body = batch.json()
    assert [r["account_id"] for r in body["results"]] == [good]
    assert [(e["account_id"], e["status"]) for e in body["errors"]] == [(a, 404) for a in orphans]
    assert all("no features in the online store" in e["detail"] for e in body["errors"])


def _score(client: Any, account: str, as_of: datetime) -> Any:
    payload = {"account_id": account, "as_of": as_of.isoformat()}
    return client.post("/v1/score", json=payload, headers=AUTH)


def test_a_missing_key_is_named_not_feasts_serialisation_error(store: ScratchRepo) -> None:
    # The benchmark's in-process stage once built an entity row from an unknown account's
    # customer (None) and met Feast's "Value type not supported for feast feature store".
    reader = provider_read.for_refs(store.store, ["customer_financial_ratios:debt_to_income_ratio"])
    assert reader is not None
    with pytest.raises(ValueError, match="without a customer_id"):
        reader.read([{"customer_id": None}])


def test_batch_vectors_keep_unresolvable_accounts_without_features(
    world: ScorerWorld, store: ScratchRepo
) -> None:
    # score-batch and `collectwise online-features` read through online_feature_vectors: an
    # orphan keeps its row (so it is reported, in order) but is never read under customer "".
    as_of = world.data.as_of
    orphans = _write_orphans(store, world, as_of)
    good = known_accounts(world, 1)[0]
    ids = [good, *orphans, good]
    frame = online_feature_vectors(store.store, ids, scoring_time=as_of)
    alone = online_feature_vectors(store.store, [good], scoring_time=as_of)
    assert list(frame["account_id"]) == ids
    assert frame["customer_id"].iloc[1:-1].isna().all(), frame[["account_id", "customer_id"]]
    features = [c for c in frame.columns if "__" in c]
    assert features and frame.iloc[1:-1][features].isna().all().all()
    for row in (0, len(ids) - 1):
        pd.testing.assert_series_equal(
            frame.iloc[row][alone.columns], alone.iloc[0], check_names=False, check_dtype=False
        )
