"""`rebuild-online`: load the online store again from the offline feature tables, then check
that a sample of accounts reads online exactly as point-in-time retrieval reads them offline.

The load is the platform's own materialisation (ingestion.feast_store.materialize_latest,
which recreates lost online tables and keeps the snapshot marker the scorer's readiness
needs). The check reads the same accounts both ways through the home's Feast store: the
online vectors the scorer would see and the offline vectors training would see at the
snapshot time (ingestion.retrieval.point_in_time_vectors), compared value by value.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from collectwise.errors import ConflictError
from ingestion.feast_store import (
    FeaturesMissingError,
    features_as_of,
    materialize_latest,
    online_feature_vectors,
    open_store,
)
from ingestion.retrieval import entity_rows, point_in_time_vectors

if TYPE_CHECKING:
    from feast import FeatureStore

    from collectwise.settings import Settings

log = logging.getLogger(__name__)

PROFILE_TABLE = "account_profile.parquet"


@dataclass(frozen=True)
class Mismatch:
    account_id: str
    feature: str
    online: Any
    offline: Any

    def __str__(self) -> str:
        online, offline = _shown(self.online), _shown(self.offline)
        return f"{self.account_id} {self.feature}: online {online}, offline {offline}"


def _shown(value: Any) -> str:
    plain = normalise(value)
    return "missing" if plain is None else str(plain)


@dataclass(frozen=True)
class RebuildOutcome:
    as_of: datetime
    window: tuple[datetime, datetime]
    checked_accounts: int
    checked_values: int
    seconds: float


class OnlineMismatchError(ConflictError):
    """The rebuilt online store disagrees with offline retrieval; the message names where."""


def rebuild_online(
    settings: Settings, features_dir: Path | None = None, sample: int = 50, seed: int = 0
) -> RebuildOutcome:
    """Materialise the newest snapshot into the home's online store, then compare `sample`
    accounts (a seeded draw) online against offline; raise naming any mismatch."""
    started = time.monotonic()
    features = features_dir or settings.paths.features_dir
    as_of = features_as_of(features)
    store = open_store(settings)
    window = _materialize(store, as_of)
    accounts = sample_accounts(features, as_of, sample, seed)
    values, mismatches = compare_online_offline(store, accounts, as_of)
    if mismatches:
        shown = "; ".join(str(m) for m in mismatches[:5])
        raise OnlineMismatchError(
            f"online store disagrees with offline retrieval at {as_of:%Y-%m-%d}: "
            f"{len(mismatches)} of {values} values over {len(accounts)} accounts, e.g. {shown}"
        )
    outcome = RebuildOutcome(as_of, window, len(accounts), values, time.monotonic() - started)
    log.info(
        "online store rebuilt for %s; %d accounts (%d values) match offline retrieval (%.1f s)",
        as_of,
        outcome.checked_accounts,
        outcome.checked_values,
        outcome.seconds,
    )
    return outcome


def _materialize(store: FeatureStore, as_of: datetime) -> tuple[datetime, datetime]:
    from feast.errors import FeastObjectNotFoundException  # noqa: PLC0415

    try:
        return materialize_latest(store, as_of)
    except (FeastObjectNotFoundException, FileNotFoundError) as exc:
        # No registry, or one without the views: the definitions were never applied here.
        raise FeaturesMissingError(
            f"the Feast registry has no feature views ({exc}): run `collectwise apply` first"
        ) from exc


def sample_accounts(features_dir: Path, as_of: datetime, n: int, seed: int) -> pd.DataFrame:
    """A seeded draw of n accounts (id and customer) from the snapshot at as_of."""
    columns = ["account_id", "customer_id", "event_timestamp"]
    profile = pd.read_parquet(features_dir / PROFILE_TABLE, columns=columns)
    latest = profile[profile["event_timestamp"] == pd.Timestamp(as_of)]
    if latest.empty:
        raise FeaturesMissingError(f"{features_dir / PROFILE_TABLE}: no accounts at {as_of}")
    drawn = latest.sample(n=min(n, len(latest)), random_state=seed)
    return drawn.sort_values("account_id")[["account_id", "customer_id"]].reset_index(drop=True)


def compare_online_offline(
    store: FeatureStore, accounts: pd.DataFrame, as_of: datetime
) -> tuple[int, list[Mismatch]]:
    """How many values were compared, and those where the online vector differs from
    get_historical_features at as_of (the same accounts, the same feature service)."""
    ids: Sequence[str] = list(accounts["account_id"])
    online = online_feature_vectors(store, ids, scoring_time=as_of).set_index("account_id")
    entities = entity_rows(accounts["account_id"], accounts["customer_id"], as_of)
    offline = point_in_time_vectors(store, entities).set_index("account_id")
    columns = [c for c in offline.columns if "__" in c]
    mismatches = [
        Mismatch(account, column, online.at[account, column], offline.at[account, column])
        for account in ids
        for column in columns
        if normalise(online.at[account, column]) != normalise(offline.at[account, column])
    ]
    return len(ids) * len(columns), mismatches


def normalise(value: Any) -> Any:
    """One comparable form for a value the online and offline paths type differently: lists
    as tuples of floats, numbers as floats, missing as None, times as UTC timestamps."""
    if hasattr(value, "tolist") and not isinstance(value, (int, float, str)):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return tuple(float(v) for v in value)
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if hasattr(value, "isoformat"):
        ts = pd.Timestamp(value)
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value
