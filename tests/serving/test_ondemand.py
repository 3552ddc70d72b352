"""The scorer's own run of the on-demand views against Feast's, and against offline retrieval.

ingestion.ondemand calls the registered transformation itself instead of letting
get_online_features do it; these tests hold it to both of Feast's answers, with and without
a reported income, for known and unknown accounts.
"""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from feature_repo.feature_services import COLLECTION_RISK_V1
from ingestion import ondemand
from ingestion.feast_store import materialize_latest
from ingestion.retrieval import apply_scratch_repo
from serving import provider_read
from serving.online import OnlineFeatures, OnlineRow
from tests.integration.conftest import FeatureData
from tests.serving.conftest import ScorerWorld
from tests.serving.test_scorer import known_accounts
from training.dataset import retrieve_features

pytestmark = pytest.mark.integration

REQUEST = ("request_time_features__days_overdue_at_request",)
RATIO = "request_time_features__debt_to_reported_income"


def reads(world: ScorerWorld, via_sdk: bool, store: Any = None) -> OnlineFeatures:
    online = OnlineFeatures(store or world.store, via_sdk=via_sdk, timeout=30.0)
    online.open()
    return online


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b) if not isinstance(a, list) else list(a) == list(b)


def assert_rows_equal(mine: list[OnlineRow], feast: list[OnlineRow]) -> None:
    assert [r.account_id for r in mine] == [r.account_id for r in feast]
    for a, b in zip(mine, feast, strict=True):
        assert (a.customer_id, a.as_of, a.stale_views, sorted(a.missing)) == (
            b.customer_id,
            b.as_of,
            b.stale_views,
            sorted(b.missing),
        )
        assert sorted(a.features) == sorted(b.features)
        for name in a.features:
            assert same(a.features[name], b.features[name]), (a.account_id, name)


def test_the_plan_reads_the_views_and_runs_the_registered_transformation(world: ScorerWorld):
    service = world.store.get_feature_service(COLLECTION_RISK_V1)
    plan = ondemand.for_service(world.store, service)
    assert plan is not None
    assert all(":" in ref and not ref.startswith("request_time_features") for ref in plan.refs)
    assert {*REQUEST, RATIO} <= plan.returned


@pytest.fixture(scope="module")
def redis_store(world: ScorerWorld, feature_data: FeatureData) -> Any:
    """The same features in the machine's Redis, under a project of this test's own."""
    online = {"type": "redis", "connection_string": "127.0.0.1:6379"}
    project = f"cwtest_direct_{uuid.uuid4().hex[:8]}"
    applied = apply_scratch_repo(
        world.root / "redis_repo", feature_data.features_dir, project, online=online
    )
    materialize_latest(applied.store, feature_data.as_of)
    yield applied.store
    applied.store.teardown()


@pytest.mark.parametrize("income", [None, 2500.0])
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_the_scorer_computes_what_feast_computes(
    world: ScorerWorld, income, backend, request
) -> None:
    store = request.getfixturevalue("redis_store") if backend == "redis" else world.store
    accounts = [*known_accounts(world, 40), "NO_SUCH_ACCOUNT"]
    later = world.data.as_of + timedelta(days=9, hours=5)  # days overdue age with the request
    mine = reads(world, via_sdk=False, store=store)
    feast = reads(world, via_sdk=True, store=store)
    assert mine._views is not None and mine._profile is not None  # the direct path is used
    try:
        for when in (world.data.as_of, later):
            assert_rows_equal(mine.read(accounts, when, income), feast.read(accounts, when, income))
            one = accounts[:1]
            assert_rows_equal(mine.read(one, when, income), feast.read(one, when, income))
    finally:
        mine.close()
        feast.close()


def test_a_reported_income_online_equals_offline(world: ScorerWorld) -> None:
    accounts = known_accounts(world, 10)
    online = reads(world, via_sdk=False)
    try:
        rows = online.read(accounts, world.data.as_of, 2500.0)
    finally:
        online.close()
    entities = pd.DataFrame(
        {
            "account_id": accounts,
            "customer_id": [r.customer_id for r in rows],
            "event_timestamp": world.data.as_of,
            "scoring_time": world.data.as_of,
            "reported_monthly_income": 2500.0,
            "default_30d": 0,  # retrieve_features carries the label column through
        }
    )
    offline = retrieve_features(world.store, entities).set_index("account_id")
    for row in rows:
        for name in (*REQUEST, RATIO):
            expected = float(offline.loc[row.account_id, name])
            assert np.isclose(row.features[name], expected, rtol=0, atol=0), name


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_the_column_reader_answers_what_the_provider_reader_answers(
    world: ScorerWorld, backend: str, request: pytest.FixtureRequest
) -> None:
    """Every value and event time, for accounts sharing a customer, a customer listed twice
    and ids the store does not hold."""
    store = request.getfixturevalue("redis_store") if backend == "redis" else world.store
    profile = pd.read_parquet(world.data.features_dir / "account_profile.parquet")
    shared = profile.groupby("customer_id")["account_id"].unique()
    pair = next(list(a[:2]) for a in shared if len(a) > 1)
    accounts = [*known_accounts(world, 20), *pair, pair[0], "NO_SUCH_ACCOUNT"]
    customers = dict(zip(profile["account_id"], profile["customer_id"], strict=False))
    rows = [{"account_id": a, "customer_id": customers.get(a, "NO_SUCH_CUSTOMER")}
            for a in accounts]  # fmt: skip
    service = store.get_feature_service(COLLECTION_RISK_V1)
    plan = ondemand.for_service(store, service)
    assert plan is not None
    refs = [*plan.refs, "account_profile:customer_id"]
    columns = provider_read.for_refs(store, refs)
    assert isinstance(columns, provider_read.ColumnReader)
    tables = provider_read._tables(store, refs)
    assert tables is not None
    provider = provider_read.DirectReader(store, tables)
    try:
        mine, theirs = columns.read(rows), provider.read(rows)
    finally:
        columns.close()
    assert list(mine) == list(theirs)
    for name in theirs:
        assert len(mine[name]) == len(theirs[name])
        for a, b in zip(mine[name], theirs[name], strict=True):
            assert same(a, b) and type(a) is type(b), (name, a, b)
