"""API keys with scopes and a per-key rate limit.

Keys are random 32-byte tokens, so a plain sha256 is the right hash (a slow password hash
buys nothing against a key with 256 bits of entropy and would cost every request). The
comparison runs in constant time over every configured key, so timing reveals nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from dataclasses import dataclass

from collectwise.errors import ForbiddenError, TooManyRequestsError, UnauthenticatedError
from collectwise.settings import ApiKeyEntry

KEY_PREFIX = "cw_"


class AuthError(UnauthenticatedError):
    """No key, or a key that matches nothing (HTTP 401)."""


class ScopeError(ForbiddenError):
    """A valid key without the scope the route needs (HTTP 403)."""


class RateLimitedError(TooManyRequestsError):
    """Over the key's rate (HTTP 429)."""

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail or f"rate limit exceeded; retry after {retry_after}s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Caller:
    name: str
    scopes: frozenset[str]
    rate_per_minute: int | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyRing:
    def __init__(self, entries: list[ApiKeyEntry]) -> None:
        self._entries = [(bytes.fromhex(e.sha256), e) for e in entries]

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, key: str | None) -> ApiKeyEntry:
        if not key:
            raise AuthError("missing API key: send it in the X-API-Key header")
        digest = hashlib.sha256(key.encode()).digest()
        found = None
        for stored, entry in self._entries:
            # No early exit: every entry is compared whatever matched first.
            if hmac.compare_digest(stored, digest):
                found = entry
        if found is None:
            raise AuthError("invalid API key")
        return found

    def authorise(self, key: str | None, scope: str) -> Caller:
        entry = self.entry(key)
        if scope not in entry.scopes:
            raise ScopeError(f"this key lacks the '{scope}' scope")
        return Caller(entry.name, frozenset(entry.scopes), entry.rate_per_minute)


class RateLimiter:
    """A token bucket per caller: `rate` requests per minute, bursts up to one minute's worth.

    In-process, so with several uvicorn workers each enforces its own bucket (the effective
    limit is rate x workers); a shared limiter would need Redis on the request path.
    """

    def __init__(self, default_rate: int) -> None:
        self._default = default_rate
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def per_minute(self, rate: int | None = None) -> int:
        return rate or self._default

    def take(self, caller: str, rate: int | None = None, cost: float = 1.0) -> None:
        per_minute = float(rate or self._default)
        per_second = per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(caller, (per_minute, now))
            tokens = min(per_minute, tokens + (now - last) * per_second)
            if tokens < cost:
                self._buckets[caller] = (tokens, now)
                raise RateLimitedError(max(1, math.ceil((cost - tokens) / per_second)))
            self._buckets[caller] = (tokens - cost, now)
