"""Dependencies shared by the routers: the running service and an authorised caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from serving.auth import Caller
from serving.runtime import Service
from serving.schemas import ErrorBody

# auto_error=False: a missing key is our AuthError (401 with a clear body), not FastAPI's 403.
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


# The dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency on the
# thread pool, one hand-over (and one wake-up under load) per dependency per request, for
# work that takes microseconds and never blocks (a dict lookup, a sha256, a locked counter).


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


def require(scope: str) -> Callable[..., Awaitable[Caller]]:
    async def dependency(
        service: ServiceDep, key: Annotated[str | None, Security(api_key_header)]
    ) -> Caller:
        entry = service.keys.entry(key)
        caller = service.keys.authorise(key, scope)
        service.limiter.take(caller.name, entry.rate_per_minute)
        return caller

    return dependency


# Documented on every authenticated route, so the OpenAPI contract lists what callers meet.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no API key, or an unknown one"},
    403: {"model": ErrorBody, "description": "the key lacks the route's scope"},
    429: {"model": ErrorBody, "description": "over the key's rate limit (Retry-After set)"},
}

# Documented on every route that takes a body: a body that is not JSON at all, or too big.
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "the body could not be read"},
    413: {"model": ErrorBody, "description": "the body is over serving.max_body_bytes"},
}

ScoreCaller = Annotated[Caller, Depends(require("score"))]
AdminCaller = Annotated[Caller, Depends(require("admin"))]
# Counterfactuals search the model around an account: more than a score reveals, so a key
# needs this scope besides (or instead of) `score`.
ExplainCaller = Annotated[Caller, Depends(require("explain"))]
