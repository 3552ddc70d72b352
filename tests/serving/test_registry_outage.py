"""The MLflow registry cut for real while the scorer serves: a real `mlflow server` behind a
local TCP proxy that the test closes. The scorer keeps answering with the models it has,
shows the outage in /readyz and /metrics, and recovers by itself once the proxy is back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from serving.main import create_app
from tests.mlflow_env import mlflow_at, running_mlflow_server
from tests.serving import conftest as serving
from tests.serving.conftest import SCORE_KEY, ScorerWorld, scorer_settings, serve
from tests.serving.test_scorer import body, known_accounts
from tests.tcp_proxy import TcpProxy, tcp_proxy
from training import registry

pytestmark = [pytest.mark.integration, pytest.mark.slow]

feature_data = serving.feature_data
world = serving.world
REGISTRY_DOWN = 'collectwise_backend_up{backend="registry"} 0.0'
REGISTRY_UP = 'collectwise_backend_up{backend="registry"} 1.0'


@pytest.fixture(scope="module")
def registry_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TcpProxy]:
    root = tmp_path_factory.mktemp("mlflow-server")
    with running_mlflow_server(root) as url, tcp_proxy("127.0.0.1", _port(url)) as proxy:
        yield proxy


def _port(url: str) -> int:
    return int(urlsplit(url).port or 0)


@pytest.fixture(scope="module")
def mlflow_env(registry_proxy: TcpProxy) -> Iterator[str]:
    """The serving world's MLflow, here the server behind the proxy (the world registers and
    promotes its champion through it)."""
    with mlflow_at(f"http://127.0.0.1:{registry_proxy.port}") as uri:
        yield uri


def _eventually(what: str, check: Callable[[], bool], seconds: float = 60.0) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"waited {seconds:.0f}s for {what}")
        time.sleep(0.1)
    return time.monotonic() - started


def _score(client: TestClient, world: ScorerWorld, account: str) -> int:
    answer = client.post("/v1/score", json=body(world, account), headers={"X-API-Key": SCORE_KEY})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["model"]["version"])


def test_the_scorer_serves_through_a_registry_outage_and_recovers(
    world: ScorerWorld, registry_proxy: TcpProxy, tmp_path: Path
) -> None:
    champion = registry.resolve_alias(registry.CHAMPION)
    accounts = known_accounts(world, 20)
    app = create_app(scorer_settings(tmp_path, model_refresh_seconds=0.2), store=world.store)
    with serve(app) as client:
        assert _score(client, world, accounts[0]) == champion
        registry_proxy.cut()
        down = _eventually(
            "the outage in /readyz",
            lambda: client.get("/readyz").json()["checks"]["registry"] != "ok",
        )
        assert REGISTRY_DOWN in client.get("/metrics").text
        detail = client.get("/readyz").json()["checks"]["registry"]
        assert detail.startswith("the MLflow registry is unreachable"), detail
        assert str(registry_proxy.port) in detail, detail
        # Scoring never stopped: the models it had are the models it serves.
        assert {_score(client, world, a) for a in accounts} == {champion}

        registry_proxy.restore()
        up = _eventually(
            "the registry back in /readyz",
            lambda: client.get("/readyz").json()["checks"]["registry"] == "ok",
        )
        assert REGISTRY_UP in client.get("/metrics").text
        assert _score(client, world, accounts[-1]) == champion
    # Figures for the operations note: how soon the outage and the recovery are seen.
    assert down < 60 and up < 60
