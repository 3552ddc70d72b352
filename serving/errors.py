"""Domain errors mapped to HTTP in one place, each with a body that names the problem."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from serving.auth import AuthError, RateLimitedError, ScopeError
from serving.models import ModelUnavailableError
from serving.online import StoreUnavailableError

log = logging.getLogger(__name__)


class UnknownAccountError(LookupError):
    def __init__(self, account_id: str) -> None:
        super().__init__(
            f"account {account_id!r} has no features in the online store: it is unknown, "
            "or was not materialised"
        )
        self.account_id = account_id


class StaleFeaturesError(Exception):
    """Features older than their view's TTL, with the refuse policy configured."""


def _body(kind: str, detail: str) -> dict[str, str]:
    return {"error": kind, "detail": detail}


def install(app: FastAPI) -> None:
    def count(request: Request, kind: str) -> None:
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.errors.labels(kind).inc()

    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError) -> JSONResponse:
        count(request, "unauthenticated")
        return JSONResponse(
            _body("unauthenticated", str(exc)), 401, headers={"WWW-Authenticate": "ApiKey"}
        )

    @app.exception_handler(ScopeError)
    async def _scope(request: Request, exc: ScopeError) -> JSONResponse:
        count(request, "forbidden")
        return JSONResponse(_body("forbidden", str(exc)), 403)

    @app.exception_handler(RateLimitedError)
    async def _rate(request: Request, exc: RateLimitedError) -> JSONResponse:
        count(request, "rate_limited")
        headers = {"Retry-After": str(exc.retry_after)}
        return JSONResponse(_body("rate_limited", str(exc)), 429, headers=headers)

    @app.exception_handler(UnknownAccountError)
    async def _unknown(request: Request, exc: UnknownAccountError) -> JSONResponse:
        count(request, "unknown_account")
        return JSONResponse(_body("unknown_account", str(exc)), 404)

    @app.exception_handler(StoreUnavailableError)
    async def _store(request: Request, exc: StoreUnavailableError) -> JSONResponse:
        count(request, "store_unavailable")
        retry = str(request.app.state.settings.retry_after_seconds)
        detail = f"online feature store unavailable: {exc}"
        return JSONResponse(_body("store_unavailable", detail), 503, headers={"Retry-After": retry})

    @app.exception_handler(ModelUnavailableError)
    async def _model(request: Request, exc: ModelUnavailableError) -> JSONResponse:
        count(request, "model_unavailable")
        retry = str(request.app.state.settings.retry_after_seconds)
        return JSONResponse(
            _body("model_unavailable", str(exc)), 503, headers={"Retry-After": retry}
        )

    @app.exception_handler(StaleFeaturesError)
    async def _stale(request: Request, exc: StaleFeaturesError) -> JSONResponse:
        count(request, "stale_features")
        retry = str(request.app.state.settings.retry_after_seconds)
        return JSONResponse(_body("stale_features", str(exc)), 503, headers={"Retry-After": retry})
