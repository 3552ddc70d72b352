"""The Redis Cluster online store against SQLite: the same generated feature tables, loaded
through the project's own materialisation path into both, read back equal through
get_online_features, and scored to the same probability by the scorer.

The cluster side uses the repository's own profile (feature_store.redis_cluster.yaml) in a
home of its own, applied and loaded as `collectwise apply` and `collectwise materialize` do.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from feast import FeatureStore

from collectwise.settings import Settings
from feature_repo.feature_services import COLLECTION_RISK_V1
from ingestion.feast_store import (
    ONLINE_VIEWS,
    apply_definitions,
    materialize_latest,
    materialize_newest,
    online_feature_vectors,
    open_store,
    resolve_customers,
)
from ingestion.online_batch import BatchReader, batch_reader
from ingestion.online_write import supports
from ingestion.retrieval import apply_scratch_repo
from serving.main import create_app
from tests.cluster.conftest import LocalRedisCluster
from tests.conftest import REPO_ROOT
from tests.integration.conftest import FeatureData
from tests.integration.test_online_batch import assert_same_vectors
from tests.serving.conftest import SCORE_KEY, ScorerWorld, scorer_settings, serve
from tests.serving.test_scorer import known_accounts

pytestmark = pytest.mark.integration

PROFILE = REPO_ROOT / "feature_store.redis_cluster.yaml"
ENV_FILE = REPO_ROOT / "profiles" / "redis_cluster.env"
AUTH = {"X-API-Key": SCORE_KEY}
# An id no account or customer has: its row must read back null in every feature.
NOBODY = "NO_SUCH_ENTITY"


@pytest.fixture(scope="module")
def cluster_store(
    feature_data: FeatureData,
    redis_cluster: LocalRedisCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> FeatureStore:
    """The cluster profile selected by environment, as an operator would: applied, then the
    newest snapshot loaded by materialize_newest (what `collectwise materialize` runs)."""
    home = tmp_path_factory.mktemp("cluster-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("FEAST_FS_YAML_FILE_PATH", str(PROFILE))
    patch.setenv("REDIS_CLUSTER_NODES", redis_cluster.connection_string)
    try:
        settings = Settings(home=home)
        store = open_store(settings)
        apply_definitions(store, feature_data.features_dir)
        assert materialize_newest(settings, feature_data.features_dir) is not None
    finally:
        patch.undo()
    return store


@pytest.fixture(scope="module")
def sqlite_store(feature_data: FeatureData, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("sqlite-home")
    online = {"type": "sqlite", "path": str(root / "online.db")}
    applied = apply_scratch_repo(
        root / "repo", feature_data.features_dir, "collectwise", online=online
    )
    materialize_latest(applied.store, feature_data.as_of)
    return applied.store


def test_profile_is_feasts_redis_cluster(cluster_store: FeatureStore) -> None:
    # The documented variables are the ones the profile reads.
    documented = dict(
        line.split("=", 1)
        for line in ENV_FILE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert documented["FEAST_FS_YAML_FILE_PATH"] == PROFILE.name
    assert "${REDIS_CLUSTER_NODES}" in PROFILE.read_text() and "REDIS_CLUSTER_NODES" in documented
    online = cluster_store.config.online_store
    assert online.type == "redis"
    assert str(online.redis_type.value) == "redis_cluster"
    assert online.connection_string.count(",") == 2
    views = [cluster_store.get_feature_view(name) for name in ONLINE_VIEWS]
    # Materialisation fell back to Feast's own write: the direct writer is single-Redis only.
    reason = supports(cluster_store, views)
    assert reason is not None and "redis_cluster" in reason


def test_online_values_equal_sqlite(
    feature_data: FeatureData,
    cluster_store: FeatureStore,
    sqlite_store: FeatureStore,
    redis_cluster: LocalRedisCluster,
) -> None:
    accounts = _online_accounts(feature_data.features_dir)
    assert len(accounts) >= 100
    customers = resolve_customers(sqlite_store, accounts)
    assert resolve_customers(cluster_store, accounts) == customers
    rows = [
        {
            "account_id": account,
            "customer_id": customer,
            "scoring_time": feature_data.as_of,
            "reported_monthly_income": 1000.0 + i,  # feeds the on-demand features
        }
        for i, (account, customer) in enumerate(customers.items())
        if customer is not None
    ]
    rows.append({**rows[0], "account_id": NOBODY, "customer_id": NOBODY})
    expected = _read(sqlite_store, rows)
    got = _read(cluster_store, rows)

    features = _service_features(sqlite_store)
    assert len(features) >= 20
    assert set(got) == set(expected) and set(features) <= set(got)
    for name in expected:
        unequal = [i for i, (a, b) in enumerate(zip(got[name], expected[name], strict=True))
                   if not _same(a, b)]  # fmt: skip
        assert not unequal, f"{name}: row {unequal[0]}: {got[name][unequal[0]]!r} != " + (
            f"{expected[name][unequal[0]]!r}"
        )
    # The comparison covered what it claims: arrays, real nulls, an entity found nowhere.
    assert any(isinstance(v, list) and v for name in features for v in got[name])
    assert any(v is None for name in features for v in got[name][:-1])
    assert all(got[name][-1] is None for name in features if "request_time" not in name)
    # The keys are spread over the three nodes: every node served part of the reads.
    assert all(count > 0 for count in redis_cluster.keys_per_node().values())


def test_scorer_answers_the_same_from_the_cluster(
    world: ScorerWorld, cluster_store: FeatureStore, tmp_path: Path
) -> None:
    accounts = known_accounts(world, 25)
    assert len(accounts) == 25
    answers = {
        name: _score_all(store, accounts, world.data.as_of.isoformat(), tmp_path / name)
        for name, store in (("sqlite", world.store), ("cluster", cluster_store))
    }
    for account in accounts:
        single_sqlite, single_cluster = (
            answers["sqlite"][0][account],
            answers["cluster"][0][account],
        )
        assert single_cluster["probability"] == single_sqlite["probability"], account
        for key in ("band", "decision", "reasons", "features_as_of", "missing_features", "model"):
            assert single_cluster[key] == single_sqlite[key], (account, key)
        batch_sqlite, batch_cluster = answers["sqlite"][1][account], answers["cluster"][1][account]
        assert (
            batch_cluster["probability"]
            == batch_sqlite["probability"]
            == (single_sqlite["probability"])
        )
    probabilities = {a["probability"] for a in answers["cluster"][0].values()}
    assert len(probabilities) > 5, "the accounts should not all score alike"


# ----------------------------------------------------------------- helpers


def _score_all(
    store: FeatureStore, accounts: list[str], as_of: str, root: Path
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Each account scored alone, then all in one batch, by a scorer over `store`."""
    single, batch = {}, {}
    with serve(create_app(scorer_settings(root), store=store)) as client:
        for account in accounts:
            answer = client.post(
                "/v1/score", json={"account_id": account, "as_of": as_of}, headers=AUTH
            )
            assert answer.status_code == 200, answer.text
            single[account] = answer.json()
        payload = {"accounts": [{"account_id": a} for a in accounts], "as_of": as_of}
        answer = client.post("/v1/score/batch", json=payload, headers=AUTH)
        assert answer.status_code == 200, answer.text
        assert not answer.json()["errors"]
        batch = {r["account_id"]: r for r in answer.json()["results"]}
    return single, batch


def _online_accounts(features_dir: Path) -> list[str]:
    """The accounts of the newest profile snapshot: what the online store should hold."""
    profile = pd.read_parquet(features_dir / "account_profile.parquet")
    newest = profile.loc[profile["event_timestamp"] == profile["event_timestamp"].max()]
    return sorted(newest["account_id"].unique())


def _service_features(store: FeatureStore) -> list[str]:
    service = store.get_feature_service(COLLECTION_RISK_V1)
    return [
        f"{projection.name_to_use()}__{feature.name}"
        for projection in service.feature_view_projections
        for feature in projection.features
    ]


def _read(store: FeatureStore, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    service = store.get_feature_service(COLLECTION_RISK_V1)
    response = store.get_online_features(
        features=service, entity_rows=rows, full_feature_names=True
    )
    return dict(response.to_dict(include_event_timestamps=True))


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types; NaN equals NaN; lists element by element."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_batch_scoring_reads_the_cluster_as_feast_does(
    feature_data: FeatureData, cluster_store: FeatureStore
) -> None:
    """`collectwise score-batch`'s column-wise reader, on the cluster: a pipeline of HMGETs
    across the nodes gives what get_online_features gives."""
    accounts = [*_online_accounts(feature_data.features_dir), NOBODY]
    reader = batch_reader(cluster_store, COLLECTION_RISK_V1)
    assert isinstance(reader, BatchReader), reader
    try:
        ours = reader.frame(accounts, feature_data.as_of, 1500.0)
    finally:
        reader.close()
    feasts = online_feature_vectors(
        cluster_store, accounts, scoring_time=feature_data.as_of, reported_income=1500.0
    )
    assert ours["customer_id"].notna().sum() == len(accounts) - 1
    assert_same_vectors(ours, feasts)
