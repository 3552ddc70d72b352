"""Errors that know what they are: each domain error carries its HTTP status, the error kind an
API body names, and the exit code of a command that meets it.

A domain error's message names the input and the problem in one line. The scorer answers any
of them through one FastAPI handler (serving.errors); the `collectwise` command turns any of
them into that one line and its exit code, never a traceback (collectwise.shell). Each
concrete error also derives from the built-in it has always been (ValueError, LookupError,
...), so code that catches those keeps working.

This module is the bottom of the import graph with collectwise.settings: it imports nothing of
ours.
"""

from __future__ import annotations

from typing import ClassVar

# Exit codes of the console script: 1 for a bad input or a refused request (the caller must
# change something), 3 for a dependency that is down (the same call may work later). Usage
# errors keep click's 2.
EXIT_FAILED = 1
EXIT_UNAVAILABLE = 3


class CollectwiseError(Exception):
    """A failure the platform can explain: its message names the input and the problem."""

    http_status: ClassVar[int] = 500
    kind: ClassVar[str] = "error"
    exit_code: ClassVar[int] = EXIT_FAILED

    def headers(self) -> dict[str, str]:
        """HTTP headers an answer to this error carries (e.g. Retry-After)."""
        return {}


class InvalidInputError(CollectwiseError):
    """The input is malformed or out of bounds: a file, a field, an option."""

    http_status = 422
    kind = "invalid_input"


class NotFoundError(CollectwiseError):
    """The thing asked for does not exist (an account, a rule, a version)."""

    http_status = 404
    kind = "not_found"


class ConflictError(CollectwiseError):
    """The request contradicts the current state (a name taken, a version already champion)."""

    http_status = 409
    kind = "conflict"


class UnauthenticatedError(CollectwiseError):
    http_status = 401
    kind = "unauthenticated"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "ApiKey"}


class ForbiddenError(CollectwiseError):
    http_status = 403
    kind = "forbidden"


class TooManyRequestsError(CollectwiseError):
    http_status = 429
    kind = "rate_limited"
    # Seconds until a retry may succeed; set by the raiser.
    retry_after: int = 1

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class UnavailableError(CollectwiseError):
    """A dependency is down or not ready (the online store, the model registry)."""

    http_status = 503
    kind = "unavailable"
    exit_code = EXIT_UNAVAILABLE


class BackendDownError(UnavailableError):
    """A backend the command needs (a database, the MLflow registry, Redis) did not answer."""

    kind = "backend_down"


# (module, class names, what the message must say) of the client errors that mean "the
# server did not answer", by library: matched by name so no client is imported to check.
_UNREACHABLE = (
    ("sqlalchemy.exc", ("OperationalError", "InterfaceError"), ("connect", "connection")),
    ("psycopg", ("OperationalError",), ("connect", "connection")),
    ("mlflow.exceptions", ("MlflowException",), ("Max retries exceeded", "Connection refused")),
    ("redis.exceptions", ("ConnectionError", "TimeoutError"), ("",)),
    # A Redis Cluster that lost a node refuses commands with these, not a ConnectionError.
    ("redis.exceptions", ("ClusterDownError", "SlotNotCoveredError", "MasterDownError"), ("",)),
    ("requests.exceptions", ("ConnectionError", "ConnectTimeout"), ("",)),
)


def backend_down(exc: BaseException) -> BackendDownError | None:
    """The one line for an exception (or one it was raised from) that says a backend is
    unreachable, naming which; None for anything else."""
    seen: BaseException | None = exc
    while seen is not None:
        module = type(seen).__module__
        text = str(seen).strip().splitlines()[0] if str(seen).strip() else type(seen).__name__
        for prefix, names, words in _UNREACHABLE:
            matches = module.startswith(prefix) and type(seen).__name__ in names
            if matches and any(w.lower() in text.lower() for w in words):
                return BackendDownError(f"{_backend(seen)} is unreachable: {text[:300]}")
        seen = seen.__cause__ or seen.__context__
    return None


def _backend(exc: BaseException) -> str:
    module = type(exc).__module__
    if module.startswith("redis"):
        return "the online store (Redis)"
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    if module.startswith("mlflow") or any(f.startswith("mlflow") for f in frames):
        return "the MLflow registry"
    if module.startswith("requests"):
        return "a service the command called"
    return "the platform database"
