"""Store faults against a real Redis of our own: a frozen server gives 503 within the
deadline and drops readiness; the scorer recovers by itself when the server thaws."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from ingestion.feast_store import materialize_latest
from ingestion.retrieval import apply_scratch_repo
from serving.main import create_app
from tests.integration.conftest import FeatureData
from tests.serving.conftest import (
    SCORE_KEY,
    ScorerWorld,
    eventually,
    fit_model,
    scorer_settings,
    serve,
)
from tests.serving.test_scorer import known_accounts
from training import registry

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]
AUTH = {"X-API-Key": SCORE_KEY}
DEADLINE = 0.3


def test_frozen_store_gives_503_then_recovers(
    world: ScorerWorld, feature_data: FeatureData, own_redis: Any, tmp_path: Path
) -> None:
    server, port = own_redis
    online = {"type": "redis", "connection_string": f"127.0.0.1:{port}"}
    project = f"cwfault_{uuid.uuid4().hex[:8]}"
    applied = apply_scratch_repo(
        tmp_path / "repo", feature_data.features_dir, project, online=online
    )
    materialize_latest(applied.store, feature_data.as_of)
    # The champion was trained against the same definitions, so its fingerprint matches.
    assert (
        registry.show("champion").definitions_fingerprint
        == fit_model(world, trees=1).definitions_fingerprint
    )
    account = known_accounts(world, 1)[0]
    body = {"account_id": account, "as_of": feature_data.as_of.isoformat()}
    settings = scorer_settings(tmp_path, online_timeout_seconds=DEADLINE, retry_after_seconds=2)
    with serve(create_app(settings, store=applied.store)) as client:
        assert client.post("/v1/score", json=body, headers=AUTH).status_code == 200
        os.kill(server.pid, signal.SIGSTOP)  # the server stops answering, connections hang
        started = time.perf_counter()
        frozen = client.post("/v1/score", json=body, headers=AUTH)
        waited = time.perf_counter() - started
        assert frozen.status_code == 503 and frozen.headers["Retry-After"] == "2"
        assert frozen.json()["error"] == "store_unavailable"
        assert waited < DEADLINE * 4 + 1.0, f"answered after {waited:.2f}s"
        # Readiness is the probe's: the failed read wakes it, and its own read times out.
        assert eventually(lambda: client.get("/readyz").status_code == 503, DEADLINE * 4 + 2)
        os.kill(server.pid, signal.SIGCONT)
        assert eventually(lambda: client.get("/readyz").status_code == 200)
        assert client.post("/v1/score", json=body, headers=AUTH).status_code == 200


def test_an_emptied_store_is_not_ready_until_reloaded(
    world: ScorerWorld, feature_data: FeatureData, own_redis: Any, tmp_path: Path
) -> None:
    _, port = own_redis
    online = {"type": "redis", "connection_string": f"127.0.0.1:{port}"}
    applied = apply_scratch_repo(
        tmp_path / "repo",
        feature_data.features_dir,
        f"cwempty_{uuid.uuid4().hex[:8]}",
        online=online,
    )
    materialize_latest(applied.store, feature_data.as_of)
    settings = scorer_settings(tmp_path, store_probe_seconds=0.2)
    with serve(create_app(settings, store=applied.store)) as client:
        assert client.get("/readyz").status_code == 200
        redis.Redis(port=port).flushall()  # what a Redis restarted without persistence holds
        assert eventually(lambda: client.get("/readyz").status_code == 503)
        assert "no snapshot marker" in client.get("/readyz").json()["checks"]["store"]
        materialize_latest(applied.store, feature_data.as_of)
        assert eventually(lambda: client.get("/readyz").status_code == 200)


MATERIALIZE = """
import sys
from datetime import datetime
from feast import FeatureStore
from ingestion.feast_store import materialize_latest
materialize_latest(FeatureStore(repo_path=sys.argv[1]), datetime.fromisoformat(sys.argv[2]))
"""


def test_a_killed_materialization_is_not_ready_until_rerun(
    world: ScorerWorld, feature_data: FeatureData, tmp_path: Path
) -> None:
    online = {"type": "sqlite", "path": str(tmp_path / "online.db")}
    repo = tmp_path / "repo"
    applied = apply_scratch_repo(
        repo, feature_data.features_dir, f"cwkill_{uuid.uuid4().hex[:8]}", online=online
    )
    materialize_latest(applied.store, feature_data.as_of)
    # No grace: a pending load is dead at once (by default it may run for 30 minutes).
    settings = scorer_settings(tmp_path, store_probe_seconds=0.2, materialize_grace_seconds=0)
    with serve(create_app(settings, store=applied.store)) as client:
        assert client.get("/readyz").status_code == 200
        _kill_midway(repo, feature_data.as_of.isoformat(), applied.store)
        assert eventually(lambda: client.get("/readyz").status_code == 503)
        assert "did not finish" in client.get("/readyz").json()["checks"]["store"]
        materialize_latest(applied.store, feature_data.as_of)
        assert eventually(lambda: client.get("/readyz").status_code == 200)


def _kill_midway(repo: Path, as_of: str, store: Any) -> None:
    """Run `materialize_latest` in a process of its own and SIGKILL it once it has begun
    (its pending marker is in the store) and before it has finished."""
    from ingestion.feast_store import ONLINE_VIEWS
    from ingestion.snapshot_marker import CANARY_ROW, PENDING, marker_refs
    from serving import provider_read

    # Read as the scorer does (through the provider): Feast's own get_online_features
    # refuses a view while it is MATERIALIZING.
    marker = provider_read.for_refs(store, marker_refs(store, ONLINE_VIEWS)[-1:])
    assert marker is not None
    for _ in range(3):  # the load may win the race; then try again
        process = subprocess.Popen(
            [sys.executable, "-c", MATERIALIZE, str(repo), as_of], stderr=subprocess.DEVNULL
        )
        while process.poll() is None:
            state = marker.read([CANARY_ROW])["account_profile__customer_id"][0]
            if str(state).startswith(PENDING):
                process.kill()
                process.wait(timeout=10)
                return
            time.sleep(0.002)
    pytest.fail("materialisation finished every time before it could be killed")


def test_breaker_opens_on_repeated_failures_and_the_probe_closes_it(
    world: ScorerWorld, feature_data: FeatureData, own_redis: Any, tmp_path: Path
) -> None:
    server, port = own_redis
    online = {"type": "redis", "connection_string": f"127.0.0.1:{port}"}
    project = f"cwbreak_{uuid.uuid4().hex[:8]}"
    applied = apply_scratch_repo(
        tmp_path / "repo", feature_data.features_dir, project, online=online
    )
    materialize_latest(applied.store, feature_data.as_of)
    account = known_accounts(world, 1)[0]
    body = {"account_id": account, "as_of": feature_data.as_of.isoformat()}
    # A reset time longer than the test: only the probe's successful read can close it.
    settings = scorer_settings(
        tmp_path, online_timeout_seconds=DEADLINE, breaker_failures=3, breaker_reset_seconds=600
    )
    with serve(create_app(settings, store=applied.store)) as client:
        assert client.post("/v1/score", json=body, headers=AUTH).status_code == 200
        assert _circuit_metric(client) == 0.0
        os.kill(server.pid, signal.SIGSTOP)
        failed = [client.post("/v1/score", json=body, headers=AUTH) for _ in range(3)]
        assert [r.json()["error"] for r in failed] == ["store_unavailable"] * 3
        rejected = client.post("/v1/score", json=body, headers=AUTH)
        assert rejected.status_code == 503, rejected.text
        # Refused by the breaker itself: this error is raised before any read is submitted.
        assert rejected.json()["error"] == "store_circuit_open"
        assert 1 <= int(rejected.headers["Retry-After"]) <= 600
        assert "3 failed reads" in rejected.json()["detail"]
        assert _circuit_metric(client) == 2.0
        assert client.get("/readyz").json()["checks"]["circuit"] == "open"
        os.kill(server.pid, signal.SIGCONT)
        assert eventually(lambda: _circuit_metric(client) == 0.0)
        assert client.get("/readyz").json()["checks"]["circuit"] == "closed"
        assert client.post("/v1/score", json=body, headers=AUTH).status_code == 200


def _circuit_metric(client: Any) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("collectwise_online_store_circuit_state "):
            return float(line.split()[1])
    raise AssertionError("no collectwise_online_store_circuit_state in /metrics")
