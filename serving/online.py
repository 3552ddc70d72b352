"""Online feature reads with a deadline, freshness checks and declared imputation.

The Feast SDK has no timeout: a read runs on a small thread pool and the caller waits at
most `timeout` seconds per chunk of at most `chunk_rows` entity rows, so a 1,000-account
batch gets the time its size needs while one account still fails fast.

Readiness (`healthy`) is the probe's alone: a request whose read fails gets its 503 and
wakes the probe, but cannot mark the store down itself, so no client input can take the
scorer out of rotation. The probe reads the snapshot marker (ingestion.snapshot_marker):
the store is healthy when it answers within the deadline and holds one whole snapshot.

A circuit breaker (the circuitbreaker library) guards request reads: after
`breaker_failures` failed reads in a row it opens, and requests get 503 with Retry-After at
once, without waiting out the deadline on a store that is down. It closes when the probe
next succeeds, or when a request read succeeds after the reset time (half-open).
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from circuitbreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN, CircuitBreaker

from collectwise.errors import UnavailableError
from feature_repo.feature_services import COLLECTION_RISK_V1
from ingestion import ondemand
from ingestion.feast_store import ONLINE_VIEWS, customer_key
from ingestion.ondemand import OnDemandPlan
from ingestion.snapshot_marker import (
    CANARY_ROW,
    DEFAULT_GRACE,
    marker_problems,
    marker_refs,
    problems_from_values,
)
from serving import provider_read
from serving.provider_read import Reader

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

log = logging.getLogger(__name__)

PROFILE_REF = "account_profile:customer_id"
ENTITY_KEYS = ("account_id", "customer_id")
TS_SUFFIX = "__ts"
# An id no account has: warm-up and health probes read it (a read, whatever its result).
WARM_UP_ID = "__collectwise_probe__"

# Missing values are not filled here: training.model_matrix.model_matrix declares what a missing
# value becomes (NaN for numbers, which the boosters route as learnt in training; all-zero
# one-hot for categories), for training and serving alike. Filling them differently online
# would break online/offline parity, so the scorer only reports which were missing.


class StoreUnavailableError(UnavailableError):
    """The online store did not answer within the deadline, or failed (HTTP 503)."""

    kind = "store_unavailable"


class CircuitOpenError(StoreUnavailableError):
    """The breaker is open: the store failed repeatedly and is not tried (HTTP 503)."""

    kind = "store_circuit_open"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


# The breaker's states as the metric collectwise_online_store_circuit_state reports them.
CIRCUIT_STATE_CODES = {STATE_CLOSED: 0, STATE_HALF_OPEN: 1, STATE_OPEN: 2}


def store_breaker(failures: int = 5, reset_seconds: float = 10.0) -> CircuitBreaker:
    """A breaker that counts only failed or late store reads, never a client's bad input."""
    return CircuitBreaker(
        failure_threshold=failures,
        recovery_timeout=reset_seconds,
        expected_exception=StoreUnavailableError,
        name="online-store",
    )


@dataclass
class OnlineRow:
    """One account's online features as Feast returned them, with what was done to them."""

    account_id: str
    customer_id: str | None
    features: dict[str, Any]
    as_of: dict[str, datetime | None]
    stale_views: list[str] = field(default_factory=list)
    # Missing values, given the model matrix's declared missing encoding (reported).
    missing: list[str] = field(default_factory=list)
    reported_income: float | None = None

    @property
    def known(self) -> bool:
        return bool(self.customer_id)


@dataclass
class OnlineFeatures:
    store: FeatureStore
    service_name: str = COLLECTION_RISK_V1
    timeout: float = 0.5
    chunk_rows: int = 250
    workers: int = 8
    # Whether readiness also needs the snapshot marker (False: any answer will do), and how
    # long a materialisation may run before readiness takes it for dead.
    check_marker: bool = True
    marker_grace: timedelta = DEFAULT_GRACE
    healthy: bool = True
    last_error: str | None = None
    # Set by a failed request read: the probe runs at once instead of at its next tick.
    suspect: threading.Event = field(default_factory=threading.Event)
    # True: every read goes through get_online_features, which also runs the service's
    # on-demand views (slower; see serving.provider_read and ingestion.ondemand).
    via_sdk: bool = False
    breaker: CircuitBreaker = field(default_factory=store_breaker)
    _service: FeatureService | None = None
    _plan: OnDemandPlan | None = None
    _views: Reader | None = None
    _profile: Reader | None = None
    _marker: Reader | None = None
    _marker_refs: list[str] = field(default_factory=list)
    _ttls: dict[str, timedelta] = field(default_factory=dict)
    _pool: ThreadPoolExecutor | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self) -> None:
        # Fetched once: get_feature_service on every request costs milliseconds (DESIGN.md).
        self._service = self.store.get_feature_service(self.service_name)
        self._ttls = {
            p.name: self.store.get_feature_view(p.name).ttl or timedelta(0)
            for p in self._service.feature_view_projections
            if p.name != "request_time_features"
        }
        if not self.via_sdk:
            self._plan = ondemand.for_service(self.store, self._service)
        if self._plan is not None:
            self._views = provider_read.for_refs(self.store, self._plan.refs)
            self._profile = provider_read.for_refs(self.store, [PROFILE_REF])
        else:
            log.info("online reads of %s go through get_online_features", self.service_name)
        self._marker_refs = marker_refs(self.store, ONLINE_VIEWS)
        # Through the provider: get_online_features refuses a view while Feast marks it
        # MATERIALIZING, which would take the scorer out of rotation on every load.
        self._marker = provider_read.for_refs(self.store, self._marker_refs)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="online-read")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        for reader in (self._views, self._profile, self._marker):
            if reader is not None:
                reader.close()

    def read(
        self,
        account_ids: Sequence[str],
        scoring_time: datetime,
        incomes: float | Sequence[float | None] | None = None,
    ) -> list[OnlineRow]:
        """One row per position of `account_ids`, each with its own reported income (one
        value for all, or one per account); read in chunks, each under the deadline."""
        ids = list(account_ids)
        per_row = _per_row(incomes, len(ids))
        out: list[OnlineRow] = []
        for start in range(0, len(ids), self.chunk_rows):
            chunk = slice(start, start + self.chunk_rows)
            out.extend(self._read_chunk(ids[chunk], per_row[chunk], scoring_time))
        return out

    def _read_chunk(
        self, ids: list[str], incomes: list[float | None], scoring_time: datetime
    ) -> list[OnlineRow]:
        # Both reads run in one pool task: each hand-over to a thread costs a wake-up,
        # which on a busy machine shows in the tail.
        customers, values = self._request_call(self._read_both, (ids, scoring_time, incomes))
        out = self._rows(ids, customers, values, scoring_time)
        for row, income in zip(out, incomes, strict=True):
            row.reported_income = income
        return out

    def _read_both(
        self, args: tuple[list[str], datetime, list[float | None]]
    ) -> tuple[dict[str, str | None], dict[str, list[Any]]]:
        account_ids, scoring_time, incomes = args
        customers = self._customers(list(dict.fromkeys(account_ids)))
        rows = [
            {
                "account_id": a,
                "customer_id": customers[a],
                "scoring_time": scoring_time,
                "reported_monthly_income": float(income or 0.0),
            }
            for a, income in zip(account_ids, incomes, strict=True)
            if customers.get(a)
        ]
        return customers, self._service_read(rows) if rows else {}

    def warm_up(self, timeout: float = 30.0) -> None:
        """Run both reads once (connections, ODFV code) so the first request is not slower.

        Ids that exist nowhere still go through every layer; Feast answers them with nulls.
        """
        row = {
            "account_id": WARM_UP_ID,
            "customer_id": WARM_UP_ID,
            "scoring_time": datetime.now(UTC),
            "reported_monthly_income": 0.0,
        }
        for _ in range(3):
            self._call(self._customers, [WARM_UP_ID], timeout=timeout)
            self._call(self._service_read, [row], timeout=timeout)
        self.probe()

    def probe(self) -> bool:
        """Whether the store answers and holds one whole snapshot; sets `healthy`."""
        self.suspect.clear()
        try:
            problems = self._call(self._probe_read, None, timeout=self.timeout)
        except StoreUnavailableError as exc:
            self._mark_down(str(exc))
            return False
        if problems:
            self._mark_down("; ".join(problems))
            return False
        if not self.healthy:
            log.info("online store answers again and holds a whole snapshot")
        if self.breaker.state != STATE_CLOSED:
            # The probe is the half-open trial that does not wait for the reset time.
            log.info("online store circuit closed: the probe read succeeded")
            self.breaker.reset()
        self.healthy, self.last_error = True, None
        return True

    # ----------------------------------------------------------------- internals

    def _probe_read(self, _: None) -> list[str]:
        if self.check_marker and self._marker is not None:
            values = self._marker.read([CANARY_ROW])
            return problems_from_values(
                values, self._marker_refs, datetime.now(UTC), self.marker_grace
            )
        if self.check_marker:
            return marker_problems(self.store, ONLINE_VIEWS, self.marker_grace)
        self._customers([WARM_UP_ID])
        return []

    @property
    def circuit_state(self) -> str:
        """closed, half_open or open."""
        return str(self.breaker.state)

    def _request_call(self, fn: Any, arg: Any) -> Any:
        if self.breaker.opened:
            raise CircuitOpenError(
                f"online store circuit open after {self.breaker.failure_count} failed reads "
                f"({self.breaker.last_failure}); not tried until it recovers",
                retry_after=int(self.breaker.open_remaining),
            )
        was_closed = self.breaker.state == STATE_CLOSED
        try:
            # The breaker records the outcome: a StoreUnavailableError counts, success resets.
            with self.breaker:
                return self._call(fn, arg, timeout=self.timeout)
        except StoreUnavailableError as exc:
            self.suspect.set()
            if self.breaker.state == STATE_OPEN and was_closed:
                log.error("online store circuit opened: %s", exc)
            raise

    def _call(self, fn: Any, arg: Any, timeout: float) -> Any:
        if self._pool is None:
            raise RuntimeError("OnlineFeatures.open() was not called")
        future = self._pool.submit(fn, arg)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout as exc:
            why = f"online store read exceeded {timeout * 1000:.0f} ms"
            raise StoreUnavailableError(why) from exc
        except Exception as exc:
            raise StoreUnavailableError(
                f"online store read failed: {type(exc).__name__}: {_brief(exc)}"
            ) from exc

    def _mark_down(self, why: str) -> None:
        if self.healthy:
            log.error("%s; readiness drops until it answers again", why)
        self.healthy, self.last_error = False, why

    def _customers(self, account_ids: list[str]) -> dict[str, str | None]:
        rows = [{"account_id": a} for a in account_ids]
        if self._profile is not None:
            found = self._profile.read(rows)[PROFILE_REF.replace(":", "__")]
        else:
            response = self.store.get_online_features(features=[PROFILE_REF], entity_rows=rows)
            found = response.to_dict()["customer_id"]
        return {a: customer_key(c) for a, c in zip(account_ids, found, strict=True)}

    def _service_read(self, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        if self._service is None:
            raise RuntimeError("OnlineFeatures.open() was not called")
        if self._plan is None:
            response = self.store.get_online_features(
                features=self._service, entity_rows=rows, full_feature_names=True
            )
            return response.to_dict(include_event_timestamps=True)
        entities = [{k: r[k] for k in ENTITY_KEYS} for r in rows]
        if self._views is not None:
            values = self._views.read(entities)
        else:
            values = self.store.get_online_features(
                features=self._plan.refs, entity_rows=entities, full_feature_names=True
            ).to_dict(include_event_timestamps=True)
        request = {k: [r[k] for r in rows] for k in rows[0] if k not in ENTITY_KEYS}
        self._plan.apply(values, request)
        return values

    def _rows(
        self,
        account_ids: Sequence[str],
        customers: dict[str, str | None],
        values: dict[str, list[Any]],
        scoring_time: datetime,
    ) -> list[OnlineRow]:
        # `values` holds one row per known position, in order (see _read_both).
        layout = self._layout(values)
        out = []
        i = 0
        for account in account_ids:
            customer = customers.get(account)
            if not customer:
                out.append(OnlineRow(account, None, {}, {}))
                continue
            row = self._row(account, customer, layout, i, scoring_time)
            i += 1
            # A customer but not one feature view's row: the profile row came from another
            # load (another run's rows in a shared store). Scoring it would answer with the
            # model's prior as if the account were known; it is unknown (404).
            out.append(row if _has_features(row) else OnlineRow(account, None, {}, {}))
        return out

    def _layout(
        self, values: dict[str, list[Any]]
    ) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
        """The feature columns, and per view with a TTL the event times of its first feature
        (Feast stamps a row per view), worked out once for all rows of a read."""
        features: dict[str, list[Any]] = {}
        times: dict[str, list[Any]] = {}
        for key, column in values.items():
            if key.endswith(TS_SUFFIX) or key in ENTITY_KEYS:
                continue
            features[key] = column
            view = key.split("__", 1)[0]
            if view in self._ttls and view not in times:
                times[view] = values.get(key + TS_SUFFIX) or [None] * len(column)
        return features, times

    def _row(
        self,
        account: str,
        customer: str | None,
        layout: tuple[dict[str, list[Any]], dict[str, list[Any]]],
        i: int,
        scoring_time: datetime,
    ) -> OnlineRow:
        columns, times = layout
        features = {key: column[i] for key, column in columns.items()}
        as_of = {view: _timestamp(stamps[i]) for view, stamps in times.items()}
        row = OnlineRow(account, customer, features, as_of)
        row.stale_views = self._stale(as_of, scoring_time)
        row.missing = missing_features(features)
        return row

    def _stale(self, as_of: dict[str, datetime | None], scoring_time: datetime) -> list[str]:
        stale = []
        for view, ttl in self._ttls.items():
            seen = as_of.get(view)
            # Feast does not enforce TTL on online reads: a value older than it is stale.
            if seen is None or (ttl and scoring_time - seen > ttl):
                stale.append(view)
        return stale


def _brief(exc: BaseException) -> str:
    """The first line of an error, without the raw key bytes a Redis Cluster pipeline error
    quotes (the command it failed on), for a 503's detail."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return _BYTES_LITERAL.sub("b'...'", text)[:300]


_BYTES_LITERAL = re.compile(r"b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\"")


def _has_features(row: OnlineRow) -> bool:
    # as_of holds every feature view of the service; empty only for a service without any.
    return not row.as_of or any(seen is not None for seen in row.as_of.values())


def missing_features(features: dict[str, Any]) -> list[str]:
    return [
        name
        for name, value in features.items()
        if value is None or (isinstance(value, float) and math.isnan(value))
    ]


def _timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    seconds = float(getattr(value, "seconds", value))
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds > 0 else None


def _per_row(incomes: float | Sequence[float | None] | None, n: int) -> list[float | None]:
    if incomes is None or isinstance(incomes, float | int):
        return [None if incomes is None else float(incomes)] * n
    values = list(incomes)
    if len(values) != n:
        raise ValueError(f"{len(values)} incomes for {n} accounts")
    return values
