"""POST /v1/counterfactual on the real scorer: scope, errors, and answers checked against the
registry's model (the changes applied to the account's audited vector lower its band)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from serving.audit import AuditLog
from serving.main import create_app
from tests.serving.conftest import (
    SCORE_KEY,
    ScorerWorld,
    fit_model,
    scorer_settings,
    serve,
)
from tests.serving.test_scorer import known_accounts
from training import registry
from training.counterfactual import ACTIONABLE
from training.model_matrix import column_sources
from training.reason_codes import reason_for

pytestmark = pytest.mark.integration

EXPLAIN_KEY = "cw_test_explain_key"
SCORER = {"X-API-Key": SCORE_KEY}
EXPLAINER = {"X-API-Key": EXPLAIN_KEY}
BAND_ORDER = {"low": 0, "medium": 1, "high": 2}


def _keys() -> str:
    def entry(name: str, key: str, scopes: list[str]) -> dict[str, object]:
        return {"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest(), "scopes": scopes}

    return json.dumps(
        [entry("platform", SCORE_KEY, ["score"]), entry("advisor", EXPLAIN_KEY, ["explain"])]
    )


@pytest.fixture(scope="module")
def champion_with_reference(world: ScorerWorld) -> Iterator[registry.ModelMetadata]:
    """A champion registered with its training reference (the counterfactual's search
    space), as `collectwise train register` registers one; the old champion restored after."""
    previous = registry.show("champion")
    model = fit_model(world, seed=1)
    # The registry keeps it as reference/reference.parquet (training.train.REFERENCE_FILE).
    reference = world.root / "cf" / "reference.parquet"
    reference.parent.mkdir(exist_ok=True)
    features = [c for c in world.dataset.columns if "__" in str(c)]
    world.dataset[["account_id", "event_timestamp", *features]].to_parquet(reference)
    meta = registry.register(
        model,
        metrics={registry.TEST_AUC: 0.85},
        params={"kind": "xgboost"},
        tags={},
        artifacts={"reference": reference},
        test_set_fingerprint="scorer-tests",
    )
    registry.promote(meta.version, force=True, who="tests", why="counterfactual tests")
    yield registry.show(meta.version)
    registry.promote(previous.version, force=True, who="tests", why="restore after the tests")


@pytest.fixture(scope="module")
def client(
    world: ScorerWorld,
    champion_with_reference: registry.ModelMetadata,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, Path]]:
    root = tmp_path_factory.mktemp("counterfactual")
    app = create_app(scorer_settings(root, api_keys=_keys()), store=world.store)
    with serve(app) as test_client:
        yield test_client, root


@pytest.fixture(scope="module")
def bands(world: ScorerWorld, client: tuple[TestClient, Path]) -> dict[str, list[str]]:
    """Known accounts by the band the served champion gives them."""
    accounts = known_accounts(world, 400)
    payload = {"accounts": [{"account_id": a} for a in accounts], "as_of": _as_of(world)}
    answer = client[0].post("/v1/score/batch", json=payload, headers=SCORER)
    assert answer.status_code == 200, answer.text
    out: dict[str, list[str]] = {"low": [], "medium": [], "high": []}
    for result in answer.json()["results"]:
        out[result["band"]].append(result["account_id"])
    return out


def _as_of(world: ScorerWorld) -> str:
    return world.data.as_of.isoformat()


def _ask(client: TestClient, world: ScorerWorld, account: str, **headers: str) -> Any:
    body = {"account_id": account, "as_of": _as_of(world)}
    return client.post("/v1/counterfactual", json=body, headers=headers or EXPLAINER)


def test_the_route_needs_the_explain_scope(
    world: ScorerWorld, client: tuple[TestClient, Path], bands: dict[str, list[str]]
) -> None:
    account = (bands["high"] or bands["medium"])[0]
    body = {"account_id": account, "as_of": _as_of(world)}
    assert client[0].post("/v1/counterfactual", json=body).status_code == 401
    refused = client[0].post("/v1/counterfactual", json=body, headers=SCORER)
    assert refused.status_code == 403 and "explain" in refused.json()["detail"]
    # And the explain scope alone does not score.
    assert client[0].post("/v1/score", json=body, headers=EXPLAINER).status_code == 403


def test_bad_and_unknown_accounts_are_clear_errors(
    world: ScorerWorld, client: tuple[TestClient, Path]
) -> None:
    invalid = client[0].post("/v1/counterfactual", json={"account_id": "no spaces!"},
                             headers=EXPLAINER)  # fmt: skip
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"][-1] == "account_id"
    extra = client[0].post(
        "/v1/counterfactual", json={"account_id": "A1", "max_changes": 9}, headers=EXPLAINER
    )
    assert extra.status_code == 422 and extra.json()["detail"][0]["loc"][-1] == "max_changes"
    unknown = _ask(client[0], world, "NO_SUCH_ACCOUNT")
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_account"
    assert "NO_SUCH_ACCOUNT" in unknown.json()["detail"]


def test_the_lowest_band_has_no_counterfactual(
    world: ScorerWorld, client: tuple[TestClient, Path], bands: dict[str, list[str]]
) -> None:
    assert bands["low"], "the test model puts some accounts in the low band"
    answer = _ask(client[0], world, bands["low"][0])
    assert answer.status_code == 409
    assert answer.json()["error"] == "no_counterfactual"
    assert "lowest band" in answer.json()["detail"]


def test_a_counterfactual_lowers_the_band_on_the_registered_model(
    world: ScorerWorld,
    client: tuple[TestClient, Path],
    bands: dict[str, list[str]],
    champion_with_reference: registry.ModelMetadata,
) -> None:
    flagged = (bands["high"] + bands["medium"])[:12]
    assert flagged, "the test model puts some accounts above the low band"
    answers = {a: _ask(client[0], world, a) for a in flagged}
    found = {a: r.json() for a, r in answers.items() if r.status_code == 200}
    assert found, {a: r.text for a, r in answers.items()}
    for answer in answers.values():
        # Where the search finds nothing within its bounds, the refusal says so.
        assert answer.status_code in (200, 409), answer.text
        if answer.status_code == 409:
            assert answer.json()["error"] == "no_counterfactual"
    model = registry.load_scoring_model(champion_with_reference.version)
    sources = column_sources(model.feature_service)
    audit = {(r.account_id, r.route): r for r in AuditLog(client[1] / "audit.db").recent(1000)}
    for account, got in found.items():
        assert got["model"]["version"] == champion_with_reference.version
        assert BAND_ORDER[got["band_after"]] == BAND_ORDER[got["band"]] - 1
        assert got["target_band"] == got["band_after"]
        assert got["probability_after"] < got["cutoff"] <= got["probability"]
        assert 1 <= len(got["changes"]) <= 3
        for change in got["changes"]:
            assert change["feature"] in ACTIONABLE
            assert change["code"] == reason_for(sources[change["feature"]]).code
            assert change["before"] != change["after"]
        # Recomputed: the audited vector with the changes applied, on the registry's model.
        row = audit[(account, "/v1/counterfactual")]
        assert row.probability == pytest.approx(got["probability"], abs=1e-12)
        x = np.array(row.vector, dtype=float)
        for change in got["changes"]:
            position = model.feature_columns.index(change["feature"])
            before = np.nan if change["before"] is None else change["before"]
            assert x[position] == pytest.approx(before, nan_ok=True)
            x[position] = change["after"]
        after = float(model.predict_proba_rows([x.tolist()])[0])
        assert after == pytest.approx(got["probability_after"], abs=1e-9)
        assert model.band(after) == got["band_after"]
