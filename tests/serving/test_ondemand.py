"""The scorer's own run of the on-demand views against Feast's, and against offline retrieval.

serving.ondemand calls the registered transformation itself instead of letting
get_online_features do it; these tests hold it to both of Feast's answers, with and without
a reported income, for known and unknown accounts.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from feature_repo.services import COLLECTION_RISK_V1
from serving import ondemand
from serving.online import OnlineFeatures, OnlineRow
from tests.serving.conftest import ScorerWorld
from tests.serving.test_scorer import known_accounts
from training.dataset import retrieve_features

pytestmark = pytest.mark.integration

REQUEST = ("request_time_features__days_overdue_at_request",)
RATIO = "request_time_features__debt_to_reported_income"


def reads(world: ScorerWorld, feast_ondemand: bool) -> OnlineFeatures:
    online = OnlineFeatures(world.store, feast_ondemand=feast_ondemand, timeout=30.0)
    online.open()
    return online


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b) if not isinstance(a, list) else list(a) == list(b)


def assert_rows_equal(mine: list[OnlineRow], feast: list[OnlineRow]) -> None:
    assert [r.account_id for r in mine] == [r.account_id for r in feast]
    for a, b in zip(mine, feast, strict=True):
        assert (a.customer_id, a.as_of, a.stale_views, a.missing) == (
            b.customer_id,
            b.as_of,
            b.stale_views,
            b.missing,
        )
        assert list(a.features) == list(b.features)  # same names, same order
        for name in a.features:
            assert same(a.features[name], b.features[name]), (a.account_id, name)


def test_the_plan_reads_the_views_and_runs_the_registered_transformation(world: ScorerWorld):
    service = world.store.get_feature_service(COLLECTION_RISK_V1)
    plan = ondemand.for_service(world.store, service)
    assert plan is not None
    assert all(":" in ref and not ref.startswith("request_time_features") for ref in plan.refs)
    assert {*REQUEST, RATIO} <= plan.returned


@pytest.mark.parametrize("income", [None, 2500.0])
def test_the_scorer_computes_what_feast_computes(world: ScorerWorld, income) -> None:
    accounts = [*known_accounts(world, 40), "NO_SUCH_ACCOUNT"]
    later = world.data.as_of + timedelta(days=9, hours=5)  # days overdue age with the request
    mine = reads(world, feast_ondemand=False)
    feast = reads(world, feast_ondemand=True)
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
    online = reads(world, feast_ondemand=False)
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
