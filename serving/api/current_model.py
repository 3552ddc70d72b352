"""GET /v1/models/current: what is being served, and why not when nothing is."""

from __future__ import annotations

from fastapi import APIRouter

from serving.api.deps import AUTH_RESPONSES, ScoreCaller, ServiceDep
from serving.model_set import ServedModel
from serving.schemas import CurrentModels

router = APIRouter(prefix="/v1/models", tags=["models"], responses=AUTH_RESPONSES)


def _describe(served: ServedModel | None) -> dict[str, object] | None:
    if served is None:
        return None
    meta = served.loaded.meta
    return {
        "name": meta.name,
        "version": meta.version,
        "alias": served.alias,
        "feature_service": meta.feature_service,
        "definitions_fingerprint": meta.definitions_fingerprint,
        "threshold": meta.threshold,
        "bands": meta.bands,
        "metrics": meta.metrics,
        "created": meta.created.isoformat(),
        "reason_codes": served.explainer is not None,
    }


@router.get("/current", response_model=CurrentModels)
def current(service: ServiceDep, caller: ScoreCaller) -> CurrentModels:
    models = service.watcher.current
    return CurrentModels(
        champion=_describe(models.champion),
        challenger=_describe(models.challenger),
        mode=service.options.mode,
        challenger_share=service.options.share,
        problem=models.problem,
    )
