"""Admission control: how many requests of one worker score at once.

The online read's deadline (serving.online) is wall-clock time, and in one Python process
wall-clock time includes waiting for the GIL. Eight batch requests reading, scoring and
explaining at once on one worker each took a share of one interpreter: a healthy store's
reads then missed the 500 ms deadline, were answered 503 and counted by the circuit breaker
as store failures. So a request first takes one of `slots` places, and only then starts the
read whose deadline guards the store: the deadline measures the store (and at most
`slots - 1` neighbours), not the queue.

A request that finds no place within `wait_seconds` gets 503 `busy` with Retry-After: the
worker is saturated, which says nothing about the store, so the breaker never hears of it.
The audit record is written after the place is given back: waiting for a group commit uses
no CPU, and requests that wait together share one commit (serving.recorder).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from collectwise.errors import UnavailableError


class BusyError(UnavailableError):
    """Every scoring place of this worker stayed taken for the whole wait (HTTP 503)."""

    kind = "busy"

    def __init__(self, slots: int, waited: float) -> None:
        super().__init__(
            f"the scorer is busy: its {slots} scoring places stayed taken for {waited:g} s; "
            "retry after the Retry-After seconds, or add workers"
        )
        self.retry_after = max(1, math.ceil(waited))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Admission:
    """At most `slots` requests hold a place at once; the others wait up to `wait_seconds`."""

    def __init__(self, slots: int, wait_seconds: float) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, not {slots}")
        self.slots = slots
        self.wait_seconds = wait_seconds
        self._places = threading.BoundedSemaphore(slots)

    @contextmanager
    def place(self) -> Iterator[None]:
        if not self._places.acquire(timeout=self.wait_seconds):
            raise BusyError(self.slots, self.wait_seconds)
        try:
            yield
        finally:
            self._places.release()
