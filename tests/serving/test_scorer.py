"""The scorer end to end: real Feast (SQLite online), real MLflow, real audit and served logs."""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from serving.audit import AuditLog
from serving.main import create_app
from serving.servedlog import read_served
from tests.serving.conftest import (
    ADMIN_KEY,
    SCORE_KEY,
    SLOW_KEY,
    ScorerWorld,
    fit_model,
    register_model,
    scorer_settings,
    serve,
)
from training import registry
from training.dataset import retrieve_features
from training.model_matrix import model_matrix

pytestmark = pytest.mark.integration

AUTH = {"X-API-Key": SCORE_KEY}


def known_accounts(world: ScorerWorld, n: int) -> list[str]:
    latest = world.dataset["event_timestamp"].max()
    ids = world.dataset.loc[world.dataset["event_timestamp"] == latest, "account_id"]
    profile = pd.read_parquet(world.data.features_dir / "account_profile.parquet")
    online = profile.loc[profile["event_timestamp"] == profile["event_timestamp"].max()]
    return sorted(set(ids) & set(online["account_id"]) or set(online["account_id"]))[:n]


def body(world: ScorerWorld, account: str, **extra: Any) -> dict[str, Any]:
    return {"account_id": account, "as_of": world.data.as_of.isoformat(), **extra}


def test_score_one_account_with_reasons_and_parity(world: ScorerWorld, tmp_path: Any) -> None:
    accounts = known_accounts(world, 5)
    app = create_app(scorer_settings(tmp_path), store=world.store)
    with serve(app) as client:
        answers = [client.post("/v1/score", json=body(world, a), headers=AUTH) for a in accounts]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert 0 <= got["probability"] <= 1 and got["band"] in {"low", "medium", "high"}
        assert got["decision"] == (got["probability"] >= got["threshold"])
        assert got["model"]["alias"] == "champion" and not got["degraded"]
        assert all(r["contribution"] > 0 and r["sentence"] for r in got["reasons"])
        assert set(got["features_as_of"]) >= {"account_payment_velocity"}

    # Same numbers online and offline: the logged vector is the training vector at as_of.
    audit = AuditLog(tmp_path / "audit.db")
    assert audit.verify().ok
    logged = {r.account_id: r for r in audit.recent(100)}
    entities = pd.DataFrame(
        {
            "account_id": accounts,
            "customer_id": [_customer(world, a) for a in accounts],
            "event_timestamp": world.data.as_of,
            "scoring_time": world.data.as_of,
            "reported_monthly_income": 0.0,
            "default_30d": 0,  # retrieve_features carries the label column through
        }
    )
    features = retrieve_features(world.store, entities).set_index("account_id")
    offline = model_matrix(features)
    for account in accounts:
        np.testing.assert_array_equal(np.array(logged[account].vector), offline.loc[account].values)
    champion = registry.load_scoring_model("champion")
    expected = champion.predict_proba(offline)
    for account, p in zip(offline.index, expected, strict=True):
        assert logged[account].probability == pytest.approx(p, abs=1e-12)


def _customer(world: ScorerWorld, account: str) -> str:
    rows = world.dataset.loc[world.dataset["account_id"] == account, "customer_id"]
    return str(rows.iloc[-1])


def test_errors_are_clear(world: ScorerWorld, tmp_path: Any) -> None:
    account = known_accounts(world, 1)[0]
    app = create_app(scorer_settings(tmp_path), store=world.store)
    with serve(app) as client:
        unknown = client.post("/v1/score", json=body(world, "NO_SUCH_ACCOUNT"), headers=AUTH)
        assert unknown.status_code == 404 and "NO_SUCH_ACCOUNT" in unknown.json()["detail"]
        assert client.post("/v1/score", json=body(world, account)).status_code == 401
        bad_key = client.post("/v1/score", json=body(world, account), headers={"X-API-Key": "x"})
        assert bad_key.status_code == 401
        wrong_scope = client.post(
            "/v1/score", json=body(world, account), headers={"X-API-Key": ADMIN_KEY}
        )
        assert wrong_scope.status_code == 403
        invalid = client.post(
            "/v1/score", json={"account_id": account, "reported_monthly_income": -5}, headers=AUTH
        )
        assert invalid.status_code == 422
        assert invalid.json()["detail"][0]["loc"][-1] == "reported_monthly_income"
        slow = {"X-API-Key": SLOW_KEY}
        codes = [
            client.post("/v1/score", json=body(world, account), headers=slow) for _ in range(3)
        ]
        assert [c.status_code for c in codes] == [200, 200, 429]
        assert int(codes[-1].headers["Retry-After"]) >= 1
        too_many = {"accounts": [{"account_id": account}] * 1001}
        assert client.post("/v1/score/batch", json=too_many, headers=AUTH).status_code == 422


def test_batch_one_read_with_unknowns(world: ScorerWorld, tmp_path: Any) -> None:
    accounts = known_accounts(world, 40)
    payload = {
        "accounts": [{"account_id": a} for a in [*accounts, "GHOST"]],
        "as_of": world.data.as_of.isoformat(),
    }
    app = create_app(scorer_settings(tmp_path), store=world.store)
    with serve(app) as client:
        answer = client.post("/v1/score/batch", json=payload, headers=AUTH)
        single = client.post("/v1/score", json=body(world, accounts[3]), headers=AUTH).json()
        metrics = client.get("/metrics").text
    count = re.search(
        r'collectwise_request_latency_seconds_count\{route="/v1/score/batch"\} (\S+)', metrics
    )
    assert count is not None and float(count.group(1)) == 1
    # A batch lists unknown accounts in its body: not counted as errors.
    assert 'collectwise_errors_total{type="unknown_account"}' not in metrics
    assert 'collectwise_model_version{alias="champion"}' in metrics
    got = answer.json()
    assert answer.status_code == 200
    assert [r["account_id"] for r in got["results"]] == accounts
    assert [e["account_id"] for e in got["errors"]] == ["GHOST"]
    # A batch scores each account exactly as a single call would.
    assert got["results"][3]["probability"] == pytest.approx(single["probability"], abs=1e-12)


def test_stale_features_degrade_or_refuse(world: ScorerWorld, tmp_path: Any) -> None:
    account = known_accounts(world, 1)[0]
    late = (world.data.as_of + pd.Timedelta(days=400)).isoformat()
    payload = {"account_id": account, "as_of": late}
    with serve(create_app(scorer_settings(tmp_path), store=world.store)) as client:
        degraded = client.post("/v1/score", json=payload, headers=AUTH).json()
    assert degraded["degraded"] and any("stale" in r for r in degraded["degraded_reasons"])
    refusing = create_app(scorer_settings(tmp_path, stale_policy="refuse"), store=world.store)
    with serve(refusing) as client:
        refused = client.post("/v1/score", json=payload, headers=AUTH)
    assert refused.status_code == 503 and refused.json()["error"] == "stale_features"


def test_shadow_challenger_and_alias_moves_without_restart(
    world: ScorerWorld, tmp_path: Any
) -> None:
    account = known_accounts(world, 1)[0]
    champion = registry.show("champion")
    challenger = register_model(fit_model(world, seed=3, trees=10), auc=0.81)
    app = create_app(scorer_settings(tmp_path), store=world.store)
    with serve(app) as client:
        _wait_for(client, champion.version, challenger.version)
        first = client.post("/v1/score", json=body(world, account), headers=AUTH).json()
        assert first["model"]["version"] == champion.version
        registry.promote(challenger.version, force=True, who="tests", why="blue-green test")
        _wait_for(client, challenger.version, None)
        second = client.post("/v1/score", json=body(world, account), headers=AUTH).json()
        assert second["model"]["version"] == challenger.version
        registry.rollback("tests", "restore for the next tests")
        _wait_for(client, champion.version, None)
    served = read_served(tmp_path / "served")
    shadowed = served.loc[served["request_id"] == first["request_id"]]
    assert shadowed["challenger_version"].iloc[0] == challenger.version
    assert 0 <= shadowed["challenger_probability"].iloc[0] <= 1


def _wait_for(client: Any, champion: int, challenger: int | None, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        current = client.get("/v1/models/current", headers=AUTH).json()
        got = (
            (current["champion"] or {}).get("version"),
            (current["challenger"] or {}).get("version"),
        )
        if got == (champion, challenger):
            return
        time.sleep(0.1)
    raise AssertionError(f"scorer never served champion {champion} / challenger {challenger}")


def test_fingerprint_mismatch_is_not_served(world: ScorerWorld, tmp_path: Any) -> None:
    model = fit_model(world, seed=5, trees=5)
    model.definitions_fingerprint = "0" * 64
    wrong = register_model(model, auc=0.9)
    registry.promote(wrong.version, force=True, who="tests", why="mismatch test")
    try:
        app = create_app(scorer_settings(tmp_path), store=world.store)
        with serve(app) as client:
            ready = client.get("/readyz")
            scored = client.post("/v1/score", json=body(world, "A1"), headers=AUTH)
            alerts = app.state.service.alerts
    finally:
        registry.rollback("tests", "restore after mismatch test")
    assert ready.status_code == 503 and "changed since training" in ready.json()["checks"]["model"]
    assert scored.status_code == 503 and scored.json()["error"] == "model_unavailable"
    assert alerts and "not served" in alerts[0]["message"]
