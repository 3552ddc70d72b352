"""A fingerprint of what a feature service resolves to in the Feast registry.

A model version is only reproducible against the feature definitions it was trained on, so
every dataset and model carries this hash. It covers what decides the values a model sees
(views, fields and dtypes, TTLs, timestamp columns, on-demand code, request schema, entity
keys) and deliberately leaves out what does not (descriptions, tags, data paths, the
registry's location, when it was applied), so it changes when a definition changes and
survives a re-apply or a move of the data.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import Entity, FeatureService, FeatureStore, FeatureView
    from feast.feature_view_projection import FeatureViewProjection
    from feast.on_demand_feature_view import OnDemandFeatureView


def definitions_fingerprint(store: FeatureStore, service_name: str) -> str:
    """sha256 of the canonical JSON of the service's resolved definitions."""
    text = json.dumps(resolved_definitions(store, service_name), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def service_feature_refs(store: FeatureStore, service_name: str) -> list[str]:
    """The service's features as full names ("view__feature"), in service order."""
    service = store.get_feature_service(service_name)
    return feature_refs(service)


def feature_refs(service: FeatureService) -> list[str]:
    """Full feature names of a service object, whether from the registry or from code."""
    return [
        f"{p.name_to_use()}__{f.name}" for p in service.feature_view_projections for f in p.features
    ]


def resolved_definitions(store: FeatureStore, service_name: str) -> dict[str, Any]:
    """The canonical, JSON-ready form of what the service resolves to (the hashed content)."""
    service = store.get_feature_service(service_name)
    on_demand = {v.name: v for v in store.list_on_demand_feature_views()}
    views: list[dict[str, Any]] = []
    entity_names: set[str] = set()
    for projection in sorted(service.feature_view_projections, key=lambda p: p.name_to_use()):
        if projection.name in on_demand:
            views.append(_on_demand_view(projection, on_demand[projection.name]))
        else:
            view = store.get_feature_view(projection.name)
            views.append(_batch_view(projection, view))
            entity_names.update(view.entities)
    entities = [_entity(store.get_entity(name)) for name in sorted(entity_names)]
    return {"service": service.name, "views": views, "entities": entities}


def _projection(projection: FeatureViewProjection) -> dict[str, Any]:
    # Aliases and key maps rename columns, so they are part of what a model sees.
    return {
        "name": projection.name,
        "alias": projection.name_alias or None,
        "join_key_map": dict(sorted((projection.join_key_map or {}).items())),
        "fields": [[f.name, str(f.dtype)] for f in projection.features],
    }


def _batch_view(projection: FeatureViewProjection, view: FeatureView) -> dict[str, Any]:
    source = view.batch_source
    return {
        **_projection(projection),
        "kind": "batch",
        "ttl_seconds": _seconds(view.ttl),
        "entities": sorted(view.entities),
        "timestamp_field": source.timestamp_field if source else None,
        "created_timestamp_column": source.created_timestamp_column if source else None,
    }


def _on_demand_view(projection: FeatureViewProjection, view: OnDemandFeatureView) -> dict[str, Any]:
    requests = {
        name: [[f.name, str(f.dtype)] for f in source.schema]
        for name, source in sorted(view.source_request_sources.items())
    }
    return {
        **_projection(projection),
        "kind": "on_demand",
        "mode": view.mode,
        "udf": view.feature_transformation.udf_string if view.feature_transformation else None,
        "request_sources": requests,
        "source_views": sorted(view.source_feature_view_projections),
    }


def _entity(entity: Entity) -> dict[str, Any]:
    return {
        "name": entity.name,
        "join_key": entity.join_key,
        "value_type": entity.value_type.name,
    }


def _seconds(ttl: timedelta | None) -> float | None:
    return ttl.total_seconds() if ttl is not None else None
