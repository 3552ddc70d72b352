"""Point-in-time retrieval: the one place that asks Feast for feature vectors as of a moment.

Training sets, batch scoring of a raw file, batch drift and the skew replay all read the
feature service offline the same way, and benchmarks and tests time and check that same
way, so it is written once, here:

- entity_rows: the rule for an entity row. Account, customer and event time are the join;
  scoring_time and reported_monthly_income are the request data the on-demand view reads,
  exactly as serving sends them: the scoring moment (the event time unless given) and the
  income, with None or NaN read as "not supplied", i.e. 0.0 (feature_repo.request_features).
  Times are UTC.
- point_in_time_vectors: get_historical_features over a feature service (by default
  collection_risk_v1) with full_feature_names=True, so columns read `view__feature`, and
  filter_by_created_timestamp=True, so a row only sees values recorded by its moment
  (collection data are corrected late). Feast's DuckDB join returns rows in no fixed order;
  here they come back in the entity rows' order, one per entity row.
- scratch_repo: a throw-away Feast repo (feature_store.yaml with the embedded profile's
  DuckDB offline store, an online store of the caller's or SQLite in the folder, the
  definitions over one features directory applied), for batch scoring of a raw file,
  benchmarks and tests. The caller names the project, so parallel runs never share Redis
  keys or registry rows.

Feast is imported inside functions: importing it costs seconds.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd
import yaml

from feature_repo.feature_services import COLLECTION_RISK_V1
from ingestion.feast_store import EMBEDDED_PROFILE, apply_definitions

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore
    from feast.infra.offline_stores.offline_store import RetrievalJob

    from feature_repo.definitions import Definitions

log = logging.getLogger(__name__)

ACCOUNT = "account_id"
CUSTOMER = "customer_id"
EVENT_TIME = "event_timestamp"
SCORING_TIME = "scoring_time"
REPORTED_INCOME = "reported_monthly_income"
ENTITY_COLUMNS = (ACCOUNT, CUSTOMER, EVENT_TIME, SCORING_TIME, REPORTED_INCOME)
# What serving reads when no income came with the request (feature_repo.request_features).
INCOME_NOT_SUPPLIED = 0.0
PROFILE_FILE = "feature_store.yaml"
# Carries each entity row's position through Feast, whose join does not keep the order.
_ROW_ORDER = "_entity_row_order"

Values: TypeAlias = pd.Series | np.ndarray | Sequence[Any]
Features: TypeAlias = "str | FeatureService | Sequence[str]"


# --------------------------------------------------------------------------- entity rows


def entity_rows(
    account_ids: Values,
    customer_ids: Values,
    event_times: Values | datetime,
    scoring_times: Values | datetime | None = None,
    reported_income: Values | float | None = None,
    *,
    extra: Mapping[str, Values] | None = None,
) -> pd.DataFrame:
    """Entity rows with the request data serving would send, one per account, index 0..n-1.

    A time may be one moment for every row or one per row; naive times are read as UTC.
    scoring_times default to the event times. reported_income None or NaN (per row or for
    all) is 0.0; a column of numbers keeps its dtype. Ids are taken as given. `extra`
    columns (a label, a row key) come first and pass through Feast untouched.
    """
    n = len(account_ids)
    columns: dict[str, pd.Series] = {name: _column(v, n, name) for name, v in (extra or {}).items()}
    columns[ACCOUNT] = _column(account_ids, n, ACCOUNT)
    columns[CUSTOMER] = _column(customer_ids, n, CUSTOMER)
    columns[EVENT_TIME] = _utc(event_times, n, EVENT_TIME)
    scoring = event_times if scoring_times is None else scoring_times
    columns[SCORING_TIME] = _utc(scoring, n, SCORING_TIME)
    columns[REPORTED_INCOME] = _income(reported_income, n)
    return pd.DataFrame(columns)


def _column(values: Values, n: int, name: str) -> pd.Series:
    # A Series keeps its dtype but not its index: the frame is built by position, never by
    # index alignment, which would silently turn a mismatch into missing values.
    series = values.reset_index(drop=True) if isinstance(values, pd.Series) else pd.Series(values)
    if len(series) != n:
        raise ValueError(f"{name}: {len(series)} values for {n} entity rows")
    return series


def _utc(times: Values | datetime, n: int, name: str) -> pd.Series:
    if not isinstance(times, datetime):  # pd.Timestamp is a datetime too
        return pd.to_datetime(_column(times, n, name), utc=True)
    stamp = pd.Timestamp(times)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return pd.Series(stamp, index=pd.RangeIndex(n))


def _income(reported: Values | float | None, n: int) -> pd.Series:
    if reported is None or isinstance(reported, (int, float)):
        value = INCOME_NOT_SUPPLIED if reported is None else float(reported)
        value = INCOME_NOT_SUPPLIED if np.isnan(value) else value
        return pd.Series(value, index=pd.RangeIndex(n))
    numbers = pd.to_numeric(_column(reported, n, REPORTED_INCOME), errors="coerce")
    return numbers.fillna(INCOME_NOT_SUPPLIED)


# --------------------------------------------------------------------------- vectors


def historical_job(
    store: FeatureStore, entities: pd.DataFrame, features: Features = COLLECTION_RISK_V1
) -> RetrievalJob:
    """Feast's point-in-time job for the entity rows: a feature service (by name or object)
    or explicit feature refs, full feature names, values recorded by each row's moment.

    Rows of its result come in no fixed order; point_in_time_vectors restores it. Called
    alone only to time Feast's planning apart from its execution.
    """
    from feast import FeatureService  # noqa: PLC0415

    chosen: FeatureService | list[str]
    if isinstance(features, str):
        chosen = store.get_feature_service(features)
    else:
        chosen = features if isinstance(features, FeatureService) else list(features)
    return store.get_historical_features(
        entity_df=entities,
        features=chosen,
        full_feature_names=True,
        filter_by_created_timestamp=True,
    )


def point_in_time_vectors(
    store: FeatureStore, entities: pd.DataFrame, features: Features = COLLECTION_RISK_V1
) -> pd.DataFrame:
    """The features as of each entity row (see historical_job), in the entity rows' order
    with index 0..n-1; the entity columns pass through. Feast returns one row per entity
    row; callers that must not go on otherwise check the length themselves."""
    if _ROW_ORDER in entities.columns:
        raise ValueError(f"entity rows may not hold the column {_ROW_ORDER!r}")
    keyed = entities.reset_index(drop=True).assign(**{_ROW_ORDER: np.arange(len(entities))})
    frame = historical_job(store, keyed, features).to_df()
    frame = frame.sort_values(_ROW_ORDER, kind="stable").drop(columns=_ROW_ORDER)
    return frame.reset_index(drop=True)


# --------------------------------------------------------------------------- scratch repos


@dataclass(frozen=True)
class ScratchRepo:
    """A Feast repo of its own folder with the platform's definitions applied."""

    store: FeatureStore
    definitions: Definitions
    project: str
    repo: Path

    @property
    def profile(self) -> Path:
        return self.repo / PROFILE_FILE


def open_scratch_store(
    repo: Path,
    project: str,
    *,
    online: Mapping[str, object] | None = None,
    registry: str | Mapping[str, object] | None = None,
) -> FeatureStore:
    """A Feast store over a fresh feature_store.yaml in repo (created if need be): the
    embedded profile's provider and DuckDB offline store, the online store given (else
    SQLite in repo) and the registry given (else a file in repo). Nothing is applied."""
    from feast import FeatureStore  # noqa: PLC0415

    repo = Path(repo)
    repo.mkdir(parents=True, exist_ok=True)
    if isinstance(registry, Mapping):
        registry = dict(registry)
    config = {
        **EMBEDDED_PROFILE,
        "project": project,
        "registry": registry or str(repo / "registry.db"),
        "online_store": dict(online or {"type": "sqlite", "path": str(repo / "online.db")}),
    }
    (repo / PROFILE_FILE).write_text(yaml.safe_dump(config))
    return FeatureStore(repo_path=str(repo))


def apply_scratch_repo(
    repo: Path,
    features_dir: Path,
    project: str,
    *,
    online: Mapping[str, object] | None = None,
    registry: str | Mapping[str, object] | None = None,
) -> ScratchRepo:
    """open_scratch_store, then the definitions over features_dir applied. The folder and
    the store stay: tearing down is the caller's (scratch_repo does it for a temp folder)."""
    store = open_scratch_store(repo, project, online=online, registry=registry)
    return _applied(store, Path(features_dir), project, Path(repo))


def _applied(store: FeatureStore, features_dir: Path, project: str, repo: Path) -> ScratchRepo:
    definitions = apply_definitions(store, features_dir)
    log.debug("applied project %s over %s in %s", project, features_dir, repo)
    return ScratchRepo(store, definitions, project, repo)


@contextmanager
def scratch_repo(
    features_dir: Path,
    project: str,
    *,
    online: Mapping[str, object] | None = None,
    repo: Path | None = None,
    registry: str | Mapping[str, object] | None = None,
) -> Iterator[ScratchRepo]:
    """A throw-away Feast repo with the definitions over features_dir applied.

    Without `repo` it lives in a new temporary folder, and afterwards the store is torn down
    (its online tables or Redis keys go) and the folder deleted. A `repo` of the caller's is
    kept, store and all, for the caller to look into or remove.
    """
    if repo is not None:
        yield apply_scratch_repo(repo, features_dir, project, online=online, registry=registry)
        return
    folder = Path(tempfile.mkdtemp(prefix=f"{project}-"))
    store: FeatureStore | None = None
    try:
        store = open_scratch_store(folder, project, online=online, registry=registry)
        yield _applied(store, Path(features_dir), project, folder)
    finally:
        # Torn down even when applying failed half-way: a Redis store may hold keys by then.
        if store is not None:
            store.teardown()
        shutil.rmtree(folder, ignore_errors=True)
