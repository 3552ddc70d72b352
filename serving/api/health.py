"""Liveness, readiness and Prometheus metrics (open: they reveal no account data)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from serving.api.deps import ServiceDep
from serving.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is alive (it answers); says nothing about its dependencies."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(service: ServiceDep, response: Response) -> Health:
    """Ready to score: the store answers, a champion is loaded and its features match."""
    models = service.watcher.current
    checks = {
        "store": "ok" if service.online.healthy else service.online.last_error,
        "model": "ok" if models.champion is not None else models.problem,
        "champion_version": models.champion.version if models.champion else None,
        "circuit": service.online.circuit_state,
        # Down: the scorer keeps serving the models it has and retries with backoff.
        "registry": "ok" if service.registry_error is None else service.registry_error,
    }
    ready = service.ready
    if not ready:
        response.status_code = 503
    return Health(status="ready" if ready else "not ready", checks=checks)


@router.get("/metrics", include_in_schema=False)
def metrics(service: ServiceDep) -> Response:
    if service.recorder is not None:
        service.metrics.recorder_dropped.set(service.recorder.dropped)
    service.publish_circuit()
    return Response(service.metrics.exposition(), media_type="text/plain; version=0.0.4")
