"""Serving health as data: a real scorer's /metrics, read twice around real failures (its
own Redis frozen with SIGSTOP), becomes window metrics, and the default rule alerts."""

from __future__ import annotations

import os
import signal
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collectwise.settings import MonitoringSettings
from ingestion.feast_store import materialize_latest
from ingestion.retrieval import apply_scratch_repo
from monitoring.job_finish import finish_job
from monitoring.monitor_db import MonitoringStore
from monitoring.serving_health import serving_health_job
from serving.main import create_app
from tests.integration.conftest import FeatureData
from tests.serving.conftest import SCORE_KEY, ScorerWorld, eventually, scorer_settings, serve
from tests.serving.test_scorer import known_accounts
from training import registry

pytestmark = pytest.mark.integration
AUTH = {"X-API-Key": SCORE_KEY}
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_serving_health_windows_and_alerts(
    world: ScorerWorld, feature_data: FeatureData, own_redis: Any, tmp_path: Path
) -> None:
    server, port = own_redis
    online = {"type": "redis", "connection_string": f"127.0.0.1:{port}"}
    applied = apply_scratch_repo(
        tmp_path / "repo",
        feature_data.features_dir,
        f"cwhealth_{uuid.uuid4().hex[:8]}",
        online=online,
    )
    materialize_latest(applied.store, feature_data.as_of)
    accounts = known_accounts(world, 5)
    as_of = feature_data.as_of.isoformat()
    state = tmp_path / "state.json"
    champion = registry.show("champion").version
    settings = scorer_settings(tmp_path, online_timeout_seconds=0.3, breaker_failures=50)
    with serve(create_app(settings, store=applied.store)) as client:

        def score(account: str) -> int:
            body = {"account_id": account, "as_of": as_of}
            return client.post("/v1/score", json=body, headers=AUTH).status_code

        # A baseline read first: the window is what happens after it, whatever this
        # process's metrics held before (another test's app in multiprocess mode).
        serving_health_job(client.get("/metrics").text, state, now=T0 - timedelta(minutes=1))
        assert [score(a) for a in accounts] == [200] * 5
        bad = client.post("/v1/score", json={"account_id": ""}, headers=AUTH)
        assert bad.status_code == 422
        client.get("/readyz")  # not a scoring route: never counted
        first = serving_health_job(client.get("/metrics").text, state, now=T0)

        os.kill(server.pid, signal.SIGSTOP)
        assert [score(a) for a in accounts[:3]] == [503] * 3
        os.kill(server.pid, signal.SIGCONT)
        assert eventually(lambda: client.get("/readyz").status_code == 200)
        assert score(accounts[0]) == 200
        second = serving_health_job(
            client.get("/metrics").text, state, now=T0 + timedelta(minutes=5)
        )

    m = first.metrics
    assert first.window_start == T0 - timedelta(minutes=1) and m["serving.requests"] == 6
    assert m["serving.error_rate"] == 0 and m["serving.client_error_rate"] == pytest.approx(1 / 6)
    assert m[f"serving.scores.champion.v{champion}"] == 5
    assert 0 < m["serving.latency_p50_ms"] <= m["serving.latency_p99_ms"]
    assert m["serving.process_rss_mb"] > 0

    # The second run sees only what happened since the first.
    m = second.metrics
    assert second.window_start == T0 and m["serving.requests"] == 4
    assert m["serving.error_rate"] == pytest.approx(3 / 4)
    assert m[f"serving.scores.champion.v{champion}"] == 1
    assert m["serving.memory_growth"] > 0 and m["serving.process_cpu_share"] >= 0

    db_url = f"sqlite:///{tmp_path / 'monitoring.db'}"
    store = MonitoringStore(db_url)
    try:
        first_alerts = finish_job(first, MonitoringSettings(db_url=db_url), store=store)
        assert "serving errors" not in [a.rule_name for a in first_alerts]
        opened = finish_job(second, MonitoringSettings(db_url=db_url), store=store)
        # The frozen reads also waited out the 0.3 s deadline: p99 latency fires too.
        assert {"serving errors", "serving p99 latency"} <= {a.rule_name for a in opened}
    finally:
        store.dispose()


def test_a_restarted_scorer_counts_from_zero(world: ScorerWorld, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    account = known_accounts(world, 1)[0]
    body = {"account_id": account, "as_of": world.data.as_of.isoformat()}
    texts = []
    for n in (3, 1):  # two scorer processes' lives: 3 requests, then (restarted) 1
        with serve(create_app(scorer_settings(tmp_path / str(n)), store=world.store)) as client:
            for _ in range(n):
                assert client.post("/v1/score", json=body, headers=AUTH).status_code == 200
            texts.append(client.get("/metrics").text)
    serving_health_job(texts[0], state, now=T0)
    after_restart = serving_health_job(texts[1], state, now=T0 + timedelta(minutes=1))
    assert after_restart.metrics["serving.requests"] == 1
