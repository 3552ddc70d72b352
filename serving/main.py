"""The scoring service: `create_app()` and its lifespan.

The lifespan opens the Feast store, loads the champion (and challenger) from the MLflow
registry, checks each model's feature fingerprint against the live Feast registry (a
mismatch is not served: readiness stays false, an error line and an alert record say why),
warms up, and starts the model watcher and the store probe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collectwise.settings import Settings, get_settings
from feature_repo.feature_services import COLLECTION_RISK_V1
from serving import errors
from serving.admission import Admission
from serving.api import counterfactual, current_model, health, score
from serving.auth import KeyRing, RateLimiter
from serving.metrics import ServiceMetrics
from serving.model_set import ModelWatcher
from serving.online import OnlineFeatures, store_breaker
from serving.runtime import Service, build_recorder, fingerprint_check
from serving.scoring import ScoringOptions

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)

API_DESCRIPTION = """Scores delinquent accounts: the probability that an account will not pay
in the next 30 days, its risk band, the decision at the model's threshold, and the reasons.
Send an API key in `X-API-Key`; `score` scope for scoring, `explain` for counterfactuals,
`admin` for administration."""


def _open_store(settings: Settings) -> FeatureStore:
    from ingestion.feast_store import open_store  # noqa: PLC0415

    return open_store(settings)


def build_service(platform: Settings, store: FeatureStore) -> Service:
    service_name = COLLECTION_RISK_V1
    settings = platform.serving
    online = OnlineFeatures(
        store,
        service_name,
        timeout=settings.online_timeout_seconds,
        chunk_rows=settings.online_chunk_rows,
        check_marker=settings.readiness_marker,
        marker_grace=timedelta(seconds=settings.materialize_grace_seconds),
        via_sdk=settings.online_path == "sdk",
        breaker=store_breaker(settings.breaker_failures, settings.breaker_reset_seconds),
    )
    online.open()
    metrics = ServiceMetrics(settings.metrics_dir)
    holder: list[Service] = []
    watcher = ModelWatcher(
        fingerprint_check(store), on_problem=lambda m: holder[0].alert(m) if holder else None
    )
    service = Service(
        settings=settings,
        store=store,
        online=online,
        watcher=watcher,
        keys=KeyRing(settings.key_entries()),
        limiter=RateLimiter(settings.rate_per_minute),
        metrics=metrics,
        options=ScoringOptions(
            mode=settings.challenger_mode,
            share=settings.challenger_share,
            reasons=settings.max_reasons,
        ),
        recorder=(
            build_recorder(platform.paths, store, service_name, settings)
            if settings.record
            else None
        ),
        admission=Admission(settings.scoring_slots, settings.admission_wait_seconds),
    )
    holder.append(service)
    if not len(service.keys):
        log.warning("no API keys configured: every scoring request will get 401")
    return service


def create_app(platform: Settings | None = None, store: FeatureStore | None = None) -> FastAPI:
    """The app; settings and store default to the environment's (tests pass their own)."""
    platform = platform or get_settings()
    settings = platform.serving

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = build_service(platform, store or _open_store(platform))
        app.state.service, app.state.metrics = service, service.metrics
        service.start()
        log.info("scorer ready: %s", service.ready)
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="Collectwise scorer",
        version="1",
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    errors.install(app)
    for router in (score.router, counterfactual.router, current_model.router, health.router):
        app.include_router(router)
    app.add_middleware(TimedRoutes)
    # Bodies over the limit get 413 before they are parsed: parsing a 30 MB body held the
    # event loop, and /healthz with it, for tens of seconds. Starlette's limiter counts
    # what arrives (its 413 goes through our handlers); the outer check answers a declared
    # length at once.
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=settings.max_body_bytes)
    app.add_middleware(DeclaredBodyLimit, max_bytes=settings.max_body_bytes)
    return app


class DeclaredBodyLimit:
    """413 in the API's JSON error shape for a body whose declared length is over the limit,
    before anything reads it (Starlette's own answer to that case is plain text)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = Headers(scope=scope).get("content-length") if scope["type"] == "http" else None
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            detail = f"the body is {declared} bytes; at most {self.max_bytes} are accepted"
            await JSONResponse(errors.body("body_too_large", detail), 413)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class TimedRoutes:
    """Latency per route template, as a plain ASGI middleware.

    Starlette's BaseHTTPMiddleware (app.middleware("http")) wraps every request in extra
    tasks and streams; at scoring latencies that overhead is visible, this is not.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]  # what an exception that escapes every handler becomes

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            metrics = getattr(scope["app"].state, "metrics", None) if "app" in scope else None
            if metrics is not None:
                path = getattr(scope.get("route"), "path", "unmatched")
                metrics.latency.labels(path).observe(time.perf_counter() - started)
                metrics.requests.labels(path, f"{status[0] // 100}xx").inc()
