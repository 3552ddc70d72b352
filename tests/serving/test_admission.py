"""Admission control on a real scorer (SQLite store, MLflow registry): batches that arrive
together queue for a scoring place instead of sharing one interpreter until their store reads
miss the deadline, and a worker with no place free answers 503 busy without the breaker
taking it for a store failure."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.main import create_app
from tests.integration.conftest import FeatureData
from tests.serving.conftest import SCORE_KEY, ScorerWorld, scorer_settings, serve
from tests.serving.test_scorer import known_accounts

pytestmark = pytest.mark.integration
AUTH = {"X-API-Key": SCORE_KEY}


def test_concurrent_batches_with_reasons_all_score_on_a_healthy_store(
    world: ScorerWorld, feature_data: FeatureData, tmp_path: Path
) -> None:
    # Before admission control, 8 batch-100 requests with reasons at once on one worker had
    # 8-12 of 40 answered 503 "online store read exceeded 500 ms" on this healthy store.
    accounts = known_accounts(world, 100)
    body = {
        "accounts": [{"account_id": a} for a in accounts],
        "as_of": feature_data.as_of.isoformat(),
        "explain": True,
    }
    settings = scorer_settings(tmp_path, rate_per_minute=1_000_000)
    with serve(create_app(settings, store=world.store)) as client:
        service = client.app.state.service  # type: ignore[attr-defined]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: _post(client, body), range(40)))
        statuses = [status for status, _ in answers]
        assert statuses == [200] * 40, [detail for status, detail in answers if status != 200]
        assert all(scored == len(accounts) for _, scored in answers)
        assert service.online.breaker.failure_count == 0
        assert service.online.circuit_state == "closed"


def _post(client: TestClient, body: dict[str, object]) -> tuple[int, object]:
    response = client.post("/v1/score/batch", json=body, headers=AUTH)
    if response.status_code != 200:
        return response.status_code, response.json()
    return 200, len(response.json()["results"])


def test_a_worker_without_a_free_place_answers_busy_and_the_breaker_stays_closed(
    world: ScorerWorld, feature_data: FeatureData, tmp_path: Path
) -> None:
    body = {"account_id": known_accounts(world, 1)[0], "as_of": feature_data.as_of.isoformat()}
    settings = scorer_settings(tmp_path, scoring_slots=1, admission_wait_seconds=0.2)
    with serve(create_app(settings, store=world.store)) as client:
        service = client.app.state.service  # type: ignore[attr-defined]
        # The one place is held (as by a long request) for longer than a request may wait.
        with service.admission.place():
            busy = [client.post("/v1/score", json=body, headers=AUTH) for _ in range(6)]
        assert {r.status_code for r in busy} == {503}
        assert busy[0].json()["error"] == "busy"
        assert "1 scoring places stayed taken for 0.2 s" in busy[0].json()["detail"]
        assert busy[0].headers["Retry-After"] == "1"
        # Six refusals, more than breaker_failures: the store was never blamed.
        assert service.online.breaker.failure_count == 0
        assert client.get("/readyz").status_code == 200
        metrics = client.get("/metrics").text
        assert 'collectwise_errors_total{type="busy"} 6.0' in metrics
        # The place is free again: the next request scores.
        assert client.post("/v1/score", json=body, headers=AUTH).status_code == 200
