"""Online feature reads with a deadline, freshness checks and declared imputation.

The Feast SDK has no timeout: a read runs on a small thread pool and the caller waits at
most `timeout` seconds. A read that misses its deadline, or fails, marks the store down;
a background probe marks it up again once a read succeeds, so the service recovers alone.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from feature_repo.services import COLLECTION_RISK_V1
from serving import direct, ondemand
from serving.direct import DirectReader
from serving.ondemand import OnDemandPlan

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

log = logging.getLogger(__name__)

PROFILE_REF = "account_profile:customer_id"
ENTITY_KEYS = ("account_id", "customer_id")
TS_SUFFIX = "__ts"
# An id no account has: warm-up and health probes read it (a read, whatever its result).
WARM_UP_ID = "__collectwise_probe__"

# Missing values are not filled here: training.matrix.model_matrix declares what a missing
# value becomes (NaN for numbers, which the boosters route as learnt in training; all-zero
# one-hot for categories), for training and serving alike. Filling them differently online
# would break online/offline parity, so the scorer only reports which were missing.


class StoreUnavailableError(Exception):
    """The online store did not answer within the deadline, or failed (HTTP 503)."""


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
    workers: int = 8
    healthy: bool = True
    last_error: str | None = None
    # True: every read goes through get_online_features, which also runs the service's
    # on-demand views (slower; see serving.direct and serving.ondemand).
    via_sdk: bool = False
    _service: FeatureService | None = None
    _plan: OnDemandPlan | None = None
    _views: DirectReader | None = None
    _profile: DirectReader | None = None
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
            self._views = direct.for_refs(self.store, self._plan.refs)
            self._profile = direct.for_refs(self.store, [PROFILE_REF])
        else:
            log.info("online reads of %s go through get_online_features", self.service_name)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="online-read")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def read(
        self, account_ids: Sequence[str], scoring_time: datetime, income: float | None
    ) -> list[OnlineRow]:
        """Two batched reads (account -> customer, then the service), under one deadline.

        Both run in one pool task: each hand-over to a thread costs a wake-up, which on a
        busy machine shows in the tail.
        """
        customers, values = self._call(
            self._read_both, (list(account_ids), scoring_time, income), timeout=self.timeout
        )
        out = self._rows(account_ids, customers, values, scoring_time)
        for row in out:
            row.reported_income = income
        return out

    def _read_both(
        self, args: tuple[list[str], datetime, float | None]
    ) -> tuple[dict[str, str | None], dict[str, list[Any]]]:
        account_ids, scoring_time, income = args
        customers = self._customers(account_ids)
        rows = [
            {
                "account_id": a,
                "customer_id": customers.get(a) or "",
                "scoring_time": scoring_time,
                "reported_monthly_income": float(income or 0.0),
            }
            for a in account_ids
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

    def probe(self, account_id: str = WARM_UP_ID) -> bool:
        """A cheap read to learn whether the store answers; updates `healthy`."""
        try:
            self._call(self._customers, [account_id], timeout=self.timeout)
        except StoreUnavailableError:
            return False
        return True

    # ----------------------------------------------------------------- internals

    def _call(self, fn: Any, arg: Any, timeout: float) -> Any:
        if self._pool is None:
            raise RuntimeError("OnlineFeatures.open() was not called")
        future = self._pool.submit(fn, arg)
        try:
            result = future.result(timeout=timeout)
        except FutureTimeout as exc:
            self._mark_down(f"online store read exceeded {timeout * 1000:.0f} ms")
            raise StoreUnavailableError(self.last_error or "timeout") from exc
        except Exception as exc:
            self._mark_down(f"online store read failed: {type(exc).__name__}: {exc}")
            raise StoreUnavailableError(self.last_error or "error") from exc
        if not self.healthy:
            log.info("online store answers again")
        self.healthy, self.last_error = True, None
        return result

    def _mark_down(self, why: str) -> None:
        if self.healthy:
            log.error("%s; readiness drops until it answers again", why)
        self.healthy, self.last_error = False, why

    def _customers(self, account_ids: list[str]) -> dict[str, str | None]:
        rows = [{"account_id": a} for a in account_ids]
        if self._profile is not None:
            found = self._profile.read(rows)[PROFILE_REF.replace(":", "__")]
            return dict(zip(account_ids, found, strict=True))
        result = self.store.get_online_features(features=[PROFILE_REF], entity_rows=rows).to_dict()
        return dict(zip(result["account_id"], result["customer_id"], strict=True))

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
        position = {a: i for i, a in enumerate(values.get("account_id", []))}
        layout = self._layout(values)
        out = []
        for account in account_ids:
            i = position.get(account)
            if i is None:
                out.append(OnlineRow(account, None, {}, {}))
                continue
            out.append(self._row(account, customers.get(account), layout, i, scoring_time))
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
