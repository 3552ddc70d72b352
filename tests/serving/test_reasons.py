"""Every model version's reasons are held to the one reason-code table (training.reason_codes).

The table covers every feature a feature service can give a model; the scorer's reasons
(real scorer, real MLflow, real SHAP) are all in it, all raised the risk, at most the
configured number of them, in the fixed order; a model with a feature the table lacks is
refused when it is registered and when the scorer loads it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from feature_repo.definitions import build_definitions
from serving.audit import AuditLog
from serving.main import create_app
from serving.model_set import ModelWatcher, uncovered_reasons
from serving.runtime import fingerprint_check
from tests.serving.conftest import (
    SCORE_KEY,
    ScorerWorld,
    fit_model,
    register_model,
    scorer_settings,
    serve,
)
from tests.serving.test_scorer import known_accounts
from training import registry
from training.estimators import build_estimator
from training.explain import explain_rows
from training.model_matrix import EXCLUDED_FEATURES, column_sources, model_columns, model_matrix
from training.reason_codes import (
    UncoveredFeaturesError,
    check_covered,
    model_features,
    reason_for,
    reason_table,
)
from training.registry import LoadedModel
from training.scoring_model import ScoringModel

pytestmark = pytest.mark.integration

AUTH = {"X-API-Key": SCORE_KEY}
# Words a reason given to a customer must never use: the protected attributes
# (training.fairness: age band, sex) and what stands for them.
PROTECTED_WORDS = ("age", "sex", "gender", "female", "male", "born", "birth", "nationality")


def test_the_table_has_one_row_per_feature_of_every_service() -> None:
    table = reason_table()
    codes = [e.code for e in table.values()]
    assert len(set(codes)) == len(codes) == len(table)
    assert all(re.fullmatch(r"R\d{2}", c) for c in codes)
    for service in build_definitions(Path("unused")).services:
        inputs = model_features(model_columns(service.name), service.name)
        assert inputs, service.name
        for feature in inputs:
            assert table[feature].feature == feature
        # Catalogue features the matrix leaves out keep a row too: a later service may use them.
        timestamps = {"account_payment_velocity__overdue_since"}
        assert EXCLUDED_FEATURES - timestamps <= set(table)
    for entry in table.values():
        words = set(re.findall(r"[a-z]+", entry.sentence.lower()))
        assert not words & set(PROTECTED_WORDS), entry
        assert entry.sentence[0].isupper() and entry.sentence.endswith(".")
        assert "__" not in entry.sentence and "_" not in entry.sentence


def test_the_test_models_features_are_all_in_the_table(world: ScorerWorld) -> None:
    champion = registry.load_scoring_model("champion")
    check_covered(champion.feature_columns, champion.feature_service)
    sources = column_sources(champion.feature_service)
    assert {sources[c] for c in champion.feature_columns} <= set(reason_table())


@pytest.mark.parametrize("max_reasons", [4, 2])
def test_reasons_are_coded_positive_bounded_and_ordered(
    world: ScorerWorld, tmp_path: Path, max_reasons: int
) -> None:
    accounts = known_accounts(world, 60)
    payload = {
        "accounts": [{"account_id": a} for a in accounts],
        "as_of": world.data.as_of.isoformat(),
        "explain": True,
    }
    app = create_app(scorer_settings(tmp_path, max_reasons=max_reasons), store=world.store)
    with serve(app) as client:
        batch = client.post("/v1/score/batch", json=payload, headers=AUTH)
        one = client.post(
            "/v1/score",
            json={"account_id": accounts[0], "as_of": world.data.as_of.isoformat()},
            headers=AUTH,
        )
    assert batch.status_code == 200 and one.status_code == 200, (batch.text, one.text)
    results = batch.json()["results"]
    assert len(results) == len(accounts)
    assert one.json()["reasons"] == results[0]["reasons"]
    for result in results:
        _check_reasons(result["reasons"], max_reasons)
    # Not vacuous: accounts do get reasons, and some get the full number.
    assert max(len(r["reasons"]) for r in results) == max_reasons
    _reasons_are_the_top_positive_contributions(results, tmp_path / "audit.db", max_reasons)


def _check_reasons(reasons: list[dict[str, Any]], max_reasons: int) -> None:
    assert len(reasons) <= max_reasons
    for reason in reasons:
        entry = reason_for(reason["feature"])
        assert (reason["code"], reason["sentence"]) == (entry.code, entry.sentence)
        assert reason["contribution"] > 0
    keys = [(-r["contribution"], r["code"]) for r in reasons]
    assert keys == sorted(keys)


def _reasons_are_the_top_positive_contributions(
    results: list[dict[str, Any]], audit_db: Path, max_reasons: int
) -> None:
    """Recomputed from the audited vectors with the registry's model: same features, same
    contributions, so no feature that raised the risk more was left out."""
    champion = registry.load_scoring_model("champion")
    logged = {r.request_id + r.account_id: r.vector for r in AuditLog(audit_db).recent(1000)}
    vectors = [logged[r["request_id"] + r["account_id"]] for r in results]
    x = pd.DataFrame(np.array(vectors), columns=champion.feature_columns)
    sources = column_sources(champion.feature_service)
    contributions = explain_rows(champion.estimator, x)
    per_feature = contributions.T.groupby(contributions.columns.map(sources)).sum().T
    for i, result in enumerate(results):
        row = per_feature.iloc[i].round(4)
        top = row[row > 0]
        expected = sorted(top.index, key=lambda f: (-top[f], reason_for(f).code))[:max_reasons]
        assert [r["feature"] for r in result["reasons"]] == expected
        got = [r["contribution"] for r in result["reasons"]]
        assert got == pytest.approx([top[f] for f in expected], abs=2e-4)


def _model_with_an_uncoded_feature(world: ScorerWorld) -> ScoringModel:
    """The test model's inputs plus one column the reason table has never heard of."""
    x = model_matrix(world.dataset)
    x["account_payment_velocity__mystery_signal"] = np.arange(len(x), dtype=float) % 7
    y = world.dataset["default_30d"].to_numpy()
    params = {"n_estimators": 5, "max_depth": 2, "n_jobs": 1}
    estimator = build_estimator("xgboost", params, "none", None, None, 0).fit(x, y)
    base = fit_model(world, trees=2)
    return ScoringModel(
        estimator=estimator,
        calibrator=None,
        threshold=base.threshold,
        low_max=base.low_max,
        medium_max=base.medium_max,
        feature_columns=list(x.columns),
        feature_service=base.feature_service,
        definitions_fingerprint=base.definitions_fingerprint,
    )


def test_a_model_with_an_uncoded_feature_is_refused(world: ScorerWorld) -> None:
    model = _model_with_an_uncoded_feature(world)
    before = [m.version for m in registry.list_versions()]
    with pytest.raises(UncoveredFeaturesError, match="mystery_signal"):
        register_model(model, auc=0.99)
    assert [m.version for m in registry.list_versions()] == before

    # A version that reached the registry by other means is not served either.
    problem = uncovered_reasons(model)
    assert problem is not None and "mystery_signal" in problem
    meta = registry.show("champion")
    alerts: list[str] = []
    watcher = ModelWatcher(
        fingerprint_check(world.store),
        load=lambda _version: LoadedModel(meta, model),
        resolve=lambda alias: meta.version if alias == "champion" else None,
        on_problem=alerts.append,
    )
    watcher.refresh()
    assert watcher.current.champion is None
    assert watcher.current.problem is not None and "mystery_signal" in watcher.current.problem
    assert len(alerts) == 1 and "reason-code table" in alerts[0]
