"""The definitions fingerprint changes when a definition changes, and only then."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from feast import FeatureStore, FeatureView, Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64

from feature_repo.definitions import Definitions, build_definitions
from feature_repo.entities import account
from feature_repo.feature_services import COLLECTION_RISK_V1, make_collection_risk_v1
from feature_repo.request_features import make_request_time_view
from feature_repo.views import Views
from ingestion.retrieval import open_scratch_store
from training.fingerprint import definitions_fingerprint, service_feature_refs

pytestmark = pytest.mark.unit


def applied(repo: Path, objects: list[Any]) -> FeatureStore:
    """A fresh file registry and SQLite online store under `repo`, with `objects` applied."""
    repo.mkdir(parents=True)
    store = open_scratch_store(repo, "fingerprint")
    store.apply(objects)
    return store


def fingerprint(store: FeatureStore) -> str:
    return definitions_fingerprint(store, COLLECTION_RISK_V1)


def with_views(base: Definitions, views: Views) -> list[Any]:
    """The definitions' objects, with the service and on-demand view rebuilt over `views`."""
    request_view = make_request_time_view(views)
    service = make_collection_risk_v1(views, request_view)
    return [*base.entities, *views.all(), request_view, service]


def changed_view(view: FeatureView, fields: list[Field]) -> FeatureView:
    """A copy of an account-level view with another schema."""
    return FeatureView(
        name=view.name,
        entities=[account],
        ttl=view.ttl,
        schema=fields,
        source=view.batch_source,
        online=view.online,
    )


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    return applied(
        tmp_path_factory.mktemp("a") / "repo",
        build_definitions(Path("/data/one/features")).objects(),
    )


def test_stable_across_data_paths_registries_and_reapply(
    baseline: FeatureStore, tmp_path: Path
) -> None:
    elsewhere = applied(
        tmp_path / "other", build_definitions(Path("/somewhere/else/features")).objects()
    )
    assert fingerprint(elsewhere) == fingerprint(baseline)
    # apply the same definitions again on top: nothing changed, nothing to see
    elsewhere.apply(build_definitions(Path("/a/third/place")).objects())
    assert fingerprint(elsewhere) == fingerprint(baseline)
    assert len(fingerprint(baseline)) == 64


def test_changes_when_a_field_is_added_or_retyped(baseline: FeatureStore, tmp_path: Path) -> None:
    base = build_definitions(Path("/data/one/features"))
    behaviour = base.views.account_contact_behavior
    added = changed_view(behaviour, [*behaviour.features, Field(name="extra", dtype=Float64)])
    store = applied(
        tmp_path / "added",
        with_views(base, dataclasses.replace(base.views, account_contact_behavior=added)),
    )
    assert fingerprint(store) != fingerprint(baseline)
    assert "account_contact_behavior__extra" in service_feature_refs(store, COLLECTION_RISK_V1)

    retyped_fields = [
        Field(name=f.name, dtype=Float64 if f.dtype == Int64 else f.dtype)
        for f in behaviour.features
    ]
    retyped = changed_view(behaviour, retyped_fields)
    other = applied(
        tmp_path / "retyped",
        with_views(base, dataclasses.replace(base.views, account_contact_behavior=retyped)),
    )
    assert fingerprint(other) not in {fingerprint(baseline), fingerprint(store)}


def request_time_features(inputs: pd.DataFrame) -> pd.DataFrame:
    # An edited copy of the repo's UDF: the overdue days are no longer floored.
    import pandas as pd

    out = pd.DataFrame(index=inputs.index)
    since = pd.to_datetime(inputs["overdue_since"], utc=True)
    now = pd.to_datetime(inputs["scoring_time"], utc=True)
    out["days_overdue_at_request"] = ((now - since).dt.total_seconds() / 86400.0).fillna(0.0)
    out["debt_to_reported_income"] = pd.to_numeric(inputs["debt_to_income_ratio"])
    return out


def test_changes_when_the_udf_changes(baseline: FeatureStore, tmp_path: Path) -> None:
    base = build_definitions(Path("/data/one/features"))
    original = base.request_view
    edited = on_demand_feature_view(
        sources=[
            base.views.account_payment_velocity,
            base.views.customer_financial_ratios,
            base.request_source,
        ],
        schema=list(original.features),
        mode="pandas",
    )(request_time_features)
    service = make_collection_risk_v1(base.views, edited)
    store = applied(tmp_path / "udf", [*base.entities, *base.views.all(), edited, service])
    refs = service_feature_refs(store, COLLECTION_RISK_V1)
    assert refs == service_feature_refs(baseline, COLLECTION_RISK_V1)
    assert fingerprint(store) != fingerprint(baseline)


def test_feature_refs_in_service_order(baseline: FeatureStore) -> None:
    refs = service_feature_refs(baseline, COLLECTION_RISK_V1)
    assert refs[0] == "account_payment_velocity__debt_amount"
    assert refs[-1] == "request_time_features__debt_to_reported_income"
    assert len(refs) == len(set(refs)) == 27
