"""A Redis Cluster node taken away for real while the scorer serves: frozen (SIGSTOP, its
connections hang), killed (SIGKILL, its port refuses), or killed for longer than the node
timeout (the other nodes then declare the cluster down and refuse every command). Each way
the scorer answers its usual 503 within the deadline, never a 500 and never a hang, drops
readiness, and serves again once the node is back (SIGCONT, or a restart on the same port
and cluster config, then the snapshot reloaded: the node kept nothing).

The first two score an account whose hash lives on the node taken away, and that node also
holds the snapshot marker the readiness probe reads: the fault is where the reads go. The
third scores an account whose hashes all live on the healthy nodes.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from feast.infra.online_stores.helpers import _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from ingestion.feast_store import materialize_latest
from ingestion.retrieval import ScratchRepo, apply_scratch_repo
from ingestion.snapshot_marker import CANARY_ID
from serving.main import create_app
from tests.cluster.conftest import LocalRedisCluster, NodeProcess
from tests.integration.conftest import FeatureData
from tests.serving.conftest import SCORE_KEY, ScorerWorld, eventually, scorer_settings, serve
from tests.serving.test_scorer import known_accounts

pytestmark = pytest.mark.integration

log = logging.getLogger(__name__)

AUTH = {"X-API-Key": SCORE_KEY}
DEADLINE = 0.3
# What "within its deadline" allows on a busy 2-core machine: the deadline itself, the
# scorer's own work and the test client, as the single-Redis fault test allows.
ANSWER_BOUND_S = DEADLINE * 4 + 1.0
# Requests sent while the node is away: enough to open the breaker (5 failures by default),
# so both of the scorer's 503s are met.
OUTAGE_REQUESTS = 8
UNAVAILABLE = {"store_unavailable", "store_circuit_open"}
# Redis' default cluster-node-timeout, and the one the cluster-down test uses meanwhile.
NODE_TIMEOUT_MS = 15_000
FAST_NODE_TIMEOUT_MS = 2_000


@pytest.fixture(scope="module")
def cluster_repo(
    feature_data: FeatureData,
    redis_cluster: LocalRedisCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> ScratchRepo:
    project = f"cwclusterfault_{uuid.uuid4().hex[:8]}"
    applied = apply_scratch_repo(
        tmp_path_factory.mktemp("cluster-fault") / "repo",
        feature_data.features_dir,
        project,
        online=redis_cluster.online_store,
    )
    materialize_latest(applied.store, feature_data.as_of)
    return applied


def test_frozen_node_gives_503_then_recovers(
    world: ScorerWorld, cluster_repo: ScratchRepo, redis_cluster: LocalRedisCluster, tmp_path: Path
) -> None:
    node, account = _node_and_account(world, cluster_repo, redis_cluster)

    def thaw(_: Any) -> None:
        node.thaw()  # the node kept its data: nothing to reload

    _outage_and_recovery(world, cluster_repo, account, tmp_path, node.freeze, thaw)
    redis_cluster.wait_ok()


def test_killed_node_gives_503_then_recovers_after_restart(
    world: ScorerWorld, cluster_repo: ScratchRepo, redis_cluster: LocalRedisCluster, tmp_path: Path
) -> None:
    node, account = _node_and_account(world, cluster_repo, redis_cluster)
    back = _restart_and_reload(node, redis_cluster, cluster_repo, world)
    _outage_and_recovery(world, cluster_repo, account, tmp_path, node.kill, back)


def test_node_down_past_the_node_timeout_takes_every_read_down_then_recovers(
    world: ScorerWorld, cluster_repo: ScratchRepo, redis_cluster: LocalRedisCluster, tmp_path: Path
) -> None:
    """With no replica to take over its slots, the other nodes declare the cluster down once
    the node timeout passes and refuse every command (CLUSTERDOWN): an account whose hashes
    live on the healthy nodes gets the same 503, and is served again after the restart."""
    node, _ = _node_and_account(world, cluster_repo, redis_cluster)
    account = _account_away_from(node, world, cluster_repo, redis_cluster)
    survivors = [other for other in redis_cluster.nodes if other is not node]

    def kill_until_the_cluster_is_down() -> None:
        node.kill()
        redis_cluster.wait_state("fail", survivors, 30)

    back = _restart_and_reload(node, redis_cluster, cluster_repo, world)
    # Shortened for this test only, so the cluster gives up in seconds, not the default 15.
    redis_cluster.set_node_timeout(FAST_NODE_TIMEOUT_MS)
    try:
        details = _outage_and_recovery(
            world, cluster_repo, account, tmp_path, kill_until_the_cluster_is_down, back
        )
    finally:
        redis_cluster.set_node_timeout(NODE_TIMEOUT_MS)
    assert any("ClusterDownError" in detail for detail in details), details
    # The failed pipeline's error quotes its command; the 503 keeps the words, not the keys.
    assert not any("\\x" in detail for detail in details), details


# ----------------------------------------------------------------- helpers


def _outage_and_recovery(
    world: ScorerWorld,
    repo: ScratchRepo,
    account: str,
    root: Path,
    take_away: Callable[[], None],
    give_back: Callable[[Any], None],
) -> list[str]:
    """Score, take the node away, score through the outage, give it back, score again;
    returns the outage's 503 details."""
    body = {"account_id": account, "as_of": world.data.as_of.isoformat()}
    settings = scorer_settings(root, online_timeout_seconds=DEADLINE, retry_after_seconds=2)
    with serve(create_app(settings, store=repo.store)) as client:
        before = client.post("/v1/score", json=body, headers=AUTH)
        assert before.status_code == 200, before.text
        assert client.get("/readyz").status_code == 200

        take_away()
        waits, errors, details = [], [], []
        for _ in range(OUTAGE_REQUESTS):
            started = time.perf_counter()
            answer = client.post("/v1/score", json=body, headers=AUTH)
            waits.append(time.perf_counter() - started)
            assert answer.status_code == 503, answer.text
            assert answer.headers["Retry-After"]
            errors.append(answer.json()["error"])
            details.append(str(answer.json()["detail"]))
        log.info("503s in %s s: %s", [round(w, 3) for w in waits], errors)
        assert max(waits) < ANSWER_BOUND_S, f"answers took {waits}"
        # Read failures first, then the breaker refuses without trying the store.
        assert errors[0] == "store_unavailable" and errors[-1] == "store_circuit_open", errors
        assert set(errors) <= UNAVAILABLE, errors
        # Readiness is the probe's: its own read of the marker goes to the same node.
        assert eventually(lambda: client.get("/readyz").status_code == 503, ANSWER_BOUND_S + 2)

        back = time.perf_counter()
        give_back(client)
        assert eventually(lambda: client.get("/readyz").status_code == 200, 30), _store_check(
            client
        )
        after = client.post("/v1/score", json=body, headers=AUTH)
        log.info("serving again %.2f s after the node was given back", time.perf_counter() - back)
        assert after.status_code == 200, after.text
        assert after.json()["probability"] == before.json()["probability"]
    return details


def _restart_and_reload(
    node: NodeProcess, cluster: LocalRedisCluster, repo: ScratchRepo, world: ScorerWorld
) -> Callable[[Any], None]:
    """How a killed node is given back: started again, then the snapshot reloaded."""
    old_pid = node.pid

    def give_back(client: Any) -> None:
        node.start()  # the same port, nodes-<port>.conf and directory: it rejoins as itself
        assert node.pid != old_pid
        cluster.wait_ok()
        # Nothing was persisted (--save '', no AOF), so the node came back empty, marker
        # and all: readiness must say so rather than serve a third of the accounts unknown.
        assert eventually(lambda: "no snapshot marker" in _store_check(client), 15), _store_check(
            client
        )
        assert client.get("/readyz").status_code == 503
        # The operator's (and the scheduler's) answer: load the snapshot again.
        materialize_latest(repo.store, world.data.as_of)

    return give_back


def _store_check(client: Any) -> str:
    return str(client.get("/readyz").json()["checks"].get("store"))


def _node_and_account(
    world: ScorerWorld, repo: ScratchRepo, cluster: LocalRedisCluster
) -> tuple[NodeProcess, str]:
    """The node holding the marker's account hash, and a known account hashed to it."""
    node = cluster.node_of(_key(repo.project, "account_id", CANARY_ID))
    for account in known_accounts(world, 200):
        if cluster.node_of(_key(repo.project, "account_id", account)) is node:
            return node, account
    raise AssertionError(f"no known account hashes to node {node.port}")


def _account_away_from(
    node: NodeProcess, world: ScorerWorld, repo: ScratchRepo, cluster: LocalRedisCluster
) -> str:
    """A known account whose account and customer hashes both live on other nodes."""
    customers = world.dataset.drop_duplicates("account_id", keep="last").set_index("account_id")
    for account in known_accounts(world, 200):
        customer = str(customers.loc[account, "customer_id"])
        keys = [
            _key(repo.project, "account_id", account),
            _key(repo.project, "customer_id", customer),
        ]
        if all(cluster.node_of(key) is not node for key in keys):
            return account
    raise AssertionError(f"every known account has a hash on node {node.port}")


def _key(project: str, join_key: str, value: str) -> bytes:
    """Feast's Redis key of one entity: its serialised key, then the project."""
    entity = EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(string_val=value)])
    return _redis_key(project, entity, entity_key_serialization_version=3)
