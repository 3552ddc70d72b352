"""Domain errors mapped to HTTP in one place, each with a body that names the problem.

A 422 names each bad field and what is wrong with it, but never echoes the input: an echo
of a 20 MB body is a 20 MB answer, and a NaN or a lone surrogate in the input cannot even
be encoded as JSON (that was a 500).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from collectwise.errors import CollectwiseError, ConflictError, NotFoundError, UnavailableError
from serving.online import StoreUnavailableError

log = logging.getLogger(__name__)


class UnknownAccountError(NotFoundError, LookupError):
    kind = "unknown_account"

    def __init__(self, account_id: str) -> None:
        super().__init__(
            f"account {account_id!r} has no features in the online store: it is unknown, "
            "or was not materialised"
        )
        self.account_id = account_id


class NoCounterfactualError(ConflictError):
    """The account's band cannot be lowered: it is in the lowest band already, or no change
    within the search's bounds gets it there (HTTP 409)."""

    kind = "no_counterfactual"


class StaleFeaturesError(UnavailableError):
    """Features older than their view's TTL, with the refuse policy configured."""

    kind = "stale_features"


class ModelFailedError(CollectwiseError):
    """The served model raised while scoring: a clear 500 naming the version (counted against
    it, for its probation), never an exception that escapes the app and resets the connection."""

    kind = "model_failed"

    def __init__(self, name: str, version: int, cause: Exception) -> None:
        super().__init__(
            f"model {name} v{version} failed to score this request ({type(cause).__name__}); "
            "a champion that keeps failing is rolled back"
        )


# At most this many field errors in one 422, and this many characters of any text in it.
MAX_FIELD_ERRORS = 20
MAX_TEXT = 400
HTTP_KINDS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
              413: "body_too_large"}  # fmt: skip


def body(kind: str, detail: str) -> dict[str, str]:
    return {"error": kind, "detail": detail}


def invalid(field: str, message: str, kind: str = "value_error") -> RequestValidationError:
    """A 422 for a body field that validated but cannot be served (e.g. an as_of before the
    online snapshot), in the same shape as the schema's own validation errors."""
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": kind}])


def field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Where and what, without the input; at most MAX_FIELD_ERRORS, then a count."""
    out = [
        {
            "loc": [p if isinstance(p, int) else _text(p) for p in e.get("loc", ())],
            "msg": _message(e),
            "type": _text(e.get("type", "value_error")),
        }
        for e in list(errors)[:MAX_FIELD_ERRORS]
    ]
    if len(errors) > MAX_FIELD_ERRORS:
        more = len(errors) - MAX_FIELD_ERRORS
        out.append({"loc": ["body"], "msg": f"and {more} more errors", "type": "more_errors"})
    return out


def _message(error: Any) -> str:
    msg = str(error.get("msg", "invalid"))
    ctx = error.get("ctx") or {}
    if error.get("type") == "json_invalid" and isinstance(ctx.get("error"), str):
        msg = f"{msg}: {ctx['error']}"
    return _text(msg)


def _text(value: Any) -> str:
    # backslashreplace: a lone surrogate from the input must not break the UTF-8 answer.
    text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def install(app: FastAPI) -> None:
    """One handler for every domain error, one for invalid bodies, one for HTTP errors."""
    app.add_exception_handler(CollectwiseError, _domain)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http)


def _count(request: Request, kind: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(kind).inc()


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    # Registered for CollectwiseError only: the error knows its status, kind and headers.
    error = exc if isinstance(exc, CollectwiseError) else CollectwiseError(str(exc))
    _count(request, error.kind)
    detail = str(error)
    if isinstance(error, StoreUnavailableError):
        detail = f"online feature store unavailable: {error}"
    headers = error.headers()
    if error.http_status == 503:
        headers.setdefault("Retry-After", str(request.app.state.settings.retry_after_seconds))
    return JSONResponse(body(error.kind, detail), error.http_status, headers=headers)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    _count(request, "invalid_request")
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse({"detail": field_errors(errors)}, 422)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    status = getattr(exc, "status_code", 500)
    kind = HTTP_KINDS.get(status, "http_error")
    _count(request, kind)
    detail = _text(getattr(exc, "detail", ""))
    return JSONResponse(body(kind, detail), status, headers=getattr(exc, "headers", None))
