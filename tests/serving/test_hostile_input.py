"""Hostile and careless input against a real scorer (SQLite online store, real MLflow).

Each test sends what a pen-tester sent: oversized bodies, times out of range, non-finite
numbers, bad unicode, coerced types, reserved ids, duplicated batch items, batches larger
than a key's rate. Every answer is a 4xx that names the field, never echoes the input,
and never changes readiness.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import uvicorn

from benchmarks.scorer_harness import free_port
from ingestion.feast_store import materialize_latest
from ingestion.retrieval import apply_scratch_repo
from serving.main import create_app
from serving.servedlog import read_served
from tests.integration.conftest import REDIS_URL
from tests.serving.conftest import SCORE_KEY, SLOW_KEY, ScorerWorld, scorer_settings, serve
from tests.serving.test_scorer import known_accounts

pytestmark = pytest.mark.integration

AUTH = {"X-API-Key": SCORE_KEY, "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def client(world: ScorerWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("hostile")
    app = create_app(scorer_settings(root, rate_per_minute=100_000), store=world.store)
    with serve(app) as test_client:
        yield test_client


def _raw(client: Any, route: str, text: str) -> Any:
    return client.post(route, content=text.encode("utf-8", "surrogatepass"), headers=AUTH)


def _assert_ready(client: Any) -> None:
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    "as_of",
    ["2300-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "1600-06-01T00:00:00Z",
     "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-14:00", "1969-12-31T23:59:59Z"],
)  # fmt: skip
def test_times_out_of_range_are_422_and_leave_readiness(client: Any, as_of: str) -> None:
    for route, payload in (
        ("/v1/score", {"account_id": "A00000001", "as_of": as_of}),
        ("/v1/score/batch", {"accounts": [{"account_id": "A00000001"}], "as_of": as_of}),
    ):
        answer = client.post(route, json=payload, headers=AUTH)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == ["body", "as_of"]
        _assert_ready(client)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_income_is_422_without_echo(client: Any, number: str) -> None:
    single = _raw(
        client, "/v1/score", f'{{"account_id": "A1", "reported_monthly_income": {number}}}'
    )
    batch = _raw(
        client,
        "/v1/score/batch",
        f'{{"accounts": [{{"account_id": "A1", "reported_monthly_income": {number}}}]}}',
    )
    for answer in (single, batch):
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"][-1] == "reported_monthly_income"
        assert "input" not in answer.json()["detail"][0]
    _assert_ready(client)


def test_bad_unicode_and_reserved_ids_are_422(client: Any) -> None:
    lone = _raw(client, "/v1/score", '{"account_id": "\\ud800"}')
    extra_key = _raw(client, "/v1/score", '{"account_id": "A1", "\\udfff": 1}')
    reserved = client.post("/v1/score", json={"account_id": "__collectwise_canary__"}, headers=AUTH)
    for answer in (lone, extra_key, reserved):
        assert answer.status_code == 422, answer.text
        answer.content.decode("utf-8")  # the answer itself is valid UTF-8
    assert reserved.json()["detail"][0]["loc"] == ["body", "account_id"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("reported_monthly_income", True), ("reported_monthly_income", "2400"),
     ("explain", "yes"), ("explain", 0), ("as_of", 1_700_000_000)],
)  # fmt: skip
def test_no_type_coercion(client: Any, field: str, value: Any) -> None:
    answer = client.post("/v1/score", json={"account_id": "A1", field: value}, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"][-1] == field


def test_a_422_never_echoes_a_large_input(client: Any) -> None:
    huge_id = "x" * 200_000  # under the body limit, far over the field's
    answer = client.post("/v1/score", json={"account_id": huge_id, huge_id: 1}, headers=AUTH)
    assert answer.status_code == 422
    assert len(answer.content) < 2_000, len(answer.content)
    many = {"accounts": [{"account_id": "../../x"}] * 1000}
    answer = client.post("/v1/score/batch", json=many, headers=AUTH)
    assert answer.status_code == 422 and len(answer.content) < 10_000
    assert answer.json()["detail"][-1]["type"] == "more_errors"


def test_an_as_of_before_the_online_snapshot_is_422(world: ScorerWorld, client: Any) -> None:
    account = known_accounts(world, 1)[0]
    early = (world.data.as_of - pd.Timedelta(days=90)).isoformat()
    single = client.post("/v1/score", json={"account_id": account, "as_of": early}, headers=AUTH)
    assert single.status_code == 422 and single.json()["detail"][0]["loc"] == ["body", "as_of"]
    assert "latest snapshot" in single.json()["detail"][0]["msg"]
    payload = {"accounts": [{"account_id": account}], "as_of": early}
    batch = client.post("/v1/score/batch", json=payload, headers=AUTH).json()
    assert batch["results"] == [] and batch["errors"][0]["status"] == 422


def test_batch_items_are_keyed_by_position(world: ScorerWorld, tmp_path: Path) -> None:
    account = known_accounts(world, 1)[0]
    as_of = world.data.as_of.isoformat()
    incomes = [500.0, 9000.0, 500.0]
    payload = {
        "accounts": [{"account_id": account, "reported_monthly_income": i} for i in incomes],
        "as_of": as_of,
    }
    app = create_app(scorer_settings(tmp_path), store=world.store)
    with serve(app) as c:
        batch = c.post("/v1/score/batch", json=payload, headers=AUTH).json()
        singles = [
            c.post(
                "/v1/score",
                json={
                    "account_id": account,
                    "as_of": as_of,
                    "reported_monthly_income": i,
                    "explain": False,
                },
                headers=AUTH,
            ).json()["probability"]
            for i in incomes
        ]
    assert [r["index"] for r in batch["results"]] == [0, 1, 2]
    assert [r["probability"] for r in batch["results"]] == pytest.approx(singles, abs=1e-12)
    logged = read_served(tmp_path / "served")
    in_batch = logged.loc[logged["request_id"] == batch["request_id"]]
    # Each distinct (account, income) pair is scored and logged once, with its own income.
    assert sorted(in_batch["reported_monthly_income"]) == [500.0, 9000.0]


def test_a_batch_costs_one_token_per_account(world: ScorerWorld, tmp_path: Path) -> None:
    accounts = known_accounts(world, 3)
    slow = {"X-API-Key": SLOW_KEY}  # 2 requests a minute
    with serve(create_app(scorer_settings(tmp_path), store=world.store)) as c:
        two = {"accounts": [{"account_id": a} for a in accounts[:2]]}
        allowed = c.post("/v1/score/batch", json=two, headers=slow)
        after = c.post("/v1/score", json={"account_id": accounts[0]}, headers=slow)
    with serve(create_app(scorer_settings(tmp_path), store=world.store)) as c:
        three = {"accounts": [{"account_id": a} for a in accounts]}
        never = c.post("/v1/score/batch", json=three, headers=slow)
    assert allowed.status_code == 200
    assert after.status_code == 429  # the batch of two spent the key's two requests
    assert never.status_code == 429 and "smaller batches" in never.json()["detail"]


def test_max_batch_comes_from_the_settings(world: ScorerWorld, tmp_path: Path) -> None:
    app = create_app(scorer_settings(tmp_path, max_batch=5), store=world.store)
    with serve(app) as c:
        answer = c.post("/v1/score/batch", json={"accounts": [{"account_id": "A1"}] * 6},
                        headers=AUTH)  # fmt: skip
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "accounts"]
    assert "at most 5" in answer.json()["detail"][0]["msg"]


def test_a_batch_of_1000_on_sqlite(world: ScorerWorld, client: Any) -> None:
    accounts = known_accounts(world, 50)
    # 1,000 distinct (account, income) pairs: 1,000 entity rows in one request.
    items = [
        {"account_id": accounts[i % len(accounts)], "reported_monthly_income": 1000.0 + i}
        for i in range(1000)
    ]
    payload = {"accounts": items, "as_of": world.data.as_of.isoformat()}
    answer = client.post("/v1/score/batch", json=payload, headers=AUTH)
    assert answer.status_code == 200, answer.text[:500]
    assert len(answer.json()["results"]) == 1000 and not answer.json()["errors"]
    _assert_ready(client)


def test_audit_log_is_owner_only(client: Any, world: ScorerWorld, tmp_path: Path) -> None:
    app = create_app(scorer_settings(tmp_path), store=world.store)
    with serve(app) as c:
        c.post("/v1/score", json={"account_id": known_accounts(world, 1)[0]}, headers=AUTH)
    mode = stat.S_IMODE(os.stat(tmp_path / "audit.db").st_mode)
    assert mode == 0o600, oct(mode)


# ---------------------------------------------------------------- over a real socket


@pytest.fixture(scope="module")
def live_url(world: ScorerWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app under uvicorn on a port of its own, as `collectwise serve` runs it."""
    root = tmp_path_factory.mktemp("live")
    app = create_app(scorer_settings(root), store=world.store)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if requests.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def test_an_oversized_body_gets_413_while_healthz_answers(live_url: str) -> None:
    body = json.dumps({"accounts": [{"account_id": f"A{i:08d}"} for i in range(900_000)]})
    assert len(body) > 20_000_000
    answers: dict[str, Any] = {}

    def upload(name: str, data: Any) -> None:
        try:
            answers[name] = requests.post(live_url + "/v1/score/batch", data=data,
                                          headers=AUTH, timeout=60)  # fmt: skip
        except requests.ConnectionError as exc:  # the server may close while we still send
            answers[name] = exc

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        for i in range(0, len(body), 1 << 20):
            yield body[i : i + (1 << 20)].encode()

    uploads = [
        threading.Thread(target=upload, args=("declared", body)),
        threading.Thread(target=upload, args=("chunked", chunks())),
    ]
    for t in uploads:
        t.start()
    health = requests.get(live_url + "/healthz", timeout=10)
    for t in uploads:
        t.join(timeout=60)
    assert health.status_code == 200
    declared = answers["declared"]
    assert not isinstance(declared, Exception) and declared.status_code == 413
    assert declared.json()["error"] == "body_too_large" and len(declared.content) < 200
    chunked = answers["chunked"]
    assert isinstance(chunked, Exception) or chunked.status_code == 413
    # This test's own client shares the server's process (and GIL): the probe may have
    # missed a deadline while the client encoded 20 MB, and must be back by itself.
    assert _eventually(lambda: requests.get(live_url + "/readyz", timeout=5).status_code == 200)


def _eventually(check: Any, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_a_batch_of_1000_on_redis(world: ScorerWorld, tmp_path: Path) -> None:
    online = {"type": "redis", "connection_string": REDIS_URL}
    project = f"cwbatch_{uuid.uuid4().hex[:8]}"  # its own keys on the machine's Redis
    applied = apply_scratch_repo(tmp_path / "repo", world.data.features_dir, project, online=online)
    try:
        materialize_latest(applied.store, world.data.as_of)
        accounts = known_accounts(world, 50)
        items = [
            {"account_id": accounts[i % len(accounts)], "reported_monthly_income": 1000.0 + i}
            for i in range(1000)
        ]
        payload = {"accounts": items, "as_of": world.data.as_of.isoformat()}
        with serve(create_app(scorer_settings(tmp_path), store=applied.store)) as c:
            answer = c.post("/v1/score/batch", json=payload, headers=AUTH)
            ready = c.get("/readyz").status_code
    finally:
        applied.store.teardown()
    assert answer.status_code == 200, answer.text[:500]
    assert len(answer.json()["results"]) == 1000 and ready == 200
