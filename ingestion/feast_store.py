"""Thin access to the Feast feature store: open a profile, materialise, read online vectors.

Feast is imported lazily inside functions: importing it costs seconds, and the CLI should
start fast for commands that do not need it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from collectwise.errors import InvalidInputError
from feature_repo.feature_services import COLLECTION_RISK_V1
from feature_repo.views import SNAPSHOT_TTL
from ingestion.snapshot_marker import holds_snapshot, mark_complete, mark_pending

if TYPE_CHECKING:
    from feast import FeatureStore

    from collectwise.settings import Settings
    from feature_repo.definitions import Definitions

log = logging.getLogger(__name__)

ONLINE_VIEWS = (
    "account_payment_velocity",
    "customer_financial_ratios",
    "account_contact_behavior",
    "account_profile",
)


class FeaturesMissingError(InvalidInputError, FileNotFoundError):
    """No feature tables or Feast profile where they were expected; the message says what to
    run."""


def open_store(settings: Settings, feature_store_yaml: Path | None = None) -> FeatureStore:
    """The Feast store of the settings' profile (or of another yaml), rooted at the home:
    the yaml's relative paths (registry, SQLite file) are read from there."""
    from feast import FeatureStore  # noqa: PLC0415

    yaml = feature_store_yaml or settings.feature_store_yaml
    if not Path(yaml).is_file():
        raise FeaturesMissingError(
            f"no Feast profile at {yaml}: run `collectwise init` in the project home, or "
            "choose one with FEAST_FS_YAML_FILE_PATH"
        )
    _require_engines(Path(yaml))
    store = FeatureStore(repo_path=str(settings.home), fs_yaml_file=Path(yaml))
    _resolve_staging(store, settings.home)
    return store


def _require_engines(profile_file: Path) -> None:
    """A profile on Spark (offline store or batch engine) without pyspark or Java fails here
    with one line naming what to install, not deep inside Feast or the JVM launcher."""
    import yaml  # noqa: PLC0415

    profile = yaml.safe_load(profile_file.read_text()) or {}
    sections = (profile.get(key) for key in ("offline_store", "batch_engine"))
    kinds = [str(s.get("type", "") if isinstance(s, dict) else s or "") for s in sections]
    if any("spark" in kind.lower() for kind in kinds):
        from ingestion.spark_features import require_spark  # noqa: PLC0415

        require_spark()


def _resolve_staging(store: FeatureStore, home: Path) -> None:
    # Feast's Spark store stages results only under an absolute path or a URI; a profile's
    # relative staging_location is read from the home, as its registry and SQLite paths are.
    offline = store.config.offline_store
    staging = getattr(offline, "staging_location", None)
    if staging and "://" not in staging and not Path(staging).is_absolute():
        offline.staging_location = str(Path(home) / staging)


# The embedded default profile (feature_store.yaml at the repo root says the same): what
# `collectwise init` writes into a project home that has none, e.g. beside an installed wheel.
EMBEDDED_PROFILE: dict[str, Any] = {
    "project": "collectwise",
    "provider": "local",
    "registry": "data/registry.db",
    "offline_store": {"type": "duckdb"},
    "online_store": {"type": "sqlite", "path": "data/online_store.db"},
    "entity_key_serialization_version": 3,
}


def apply_definitions(store: FeatureStore, features_dir: Path) -> Definitions:
    """Register the platform's Feast objects over features_dir (what `feast apply` does from
    the repo root, without needing the source tree); returns what was applied."""
    from feature_repo.definitions import build_definitions  # noqa: PLC0415

    # The store's profile decides the kind of source its offline store reads.
    definitions = build_definitions(features_dir, store.config)
    store.apply(definitions.objects())
    return definitions


def features_as_of(features_dir: Path) -> datetime:
    """The snapshot time of the newest feature rows, from the builder's manifest."""
    manifest = Path(features_dir) / "_manifest.json"
    if not manifest.exists():
        raise FeaturesMissingError(f"{manifest} not found: run `collectwise build-features` first")
    return datetime.fromisoformat(json.loads(manifest.read_text())["as_of"]).astimezone(UTC)


def materialize_latest(
    store: FeatureStore, as_of: datetime, *, direct: bool = True
) -> tuple[datetime, datetime]:
    """Load the newest snapshot of every online view into the online store.

    The window is one TTL wide: older rows would be stale online anyway, and Feast keeps
    only the newest row per entity. With direct (the default) the rows are written by
    ingestion.online_write, byte for byte what Feast writes but several times faster,
    wherever that path supports the store; otherwise, or with direct=False, by Feast.
    """
    start = as_of - SNAPSHOT_TTL
    end = as_of + timedelta(seconds=1)
    views = ensure_online_tables(store)
    # Bracketed by the snapshot marker, so a scorer can tell a whole snapshot from an
    # emptied or half-loaded store (ingestion.snapshot_marker).
    mark_pending(store, as_of)
    log.info("materialising %s from %s to %s", ", ".join(ONLINE_VIEWS), start, end)
    _load(store, views, start, end, direct=direct)
    mark_complete(store, as_of, ONLINE_VIEWS)
    return start, end


def _load(
    store: FeatureStore, views: list[Any], start: datetime, end: datetime, *, direct: bool
) -> None:
    from ingestion.online_write import supports, write_views  # noqa: PLC0415

    reason = supports(store, views) if direct else "Feast's own write path was asked for"
    if reason is None:
        loads = write_views(store, views, start, end)
        log.info(
            "loaded %d entity rows in %.2f s (direct write)",
            sum(load.entities for load in loads),
            sum(load.seconds for load in loads),
        )
        return
    log.info("Feast loads the views: %s", reason)
    store.materialize(start_date=start, end_date=end, feature_views=list(ONLINE_VIEWS))


def materialize_newest(
    settings: Settings, features_dir: Path | None = None, *, only_new: bool = False
) -> tuple[datetime, datetime] | None:
    """What `collectwise materialize` does, for it and the scheduler alike: load the newest
    snapshot of the feature tables into the online store of the settings' profile. With
    only_new, nothing (None) when the store already holds that snapshot whole."""
    as_of = features_as_of(features_dir or settings.paths.features_dir)
    store = open_store(settings)
    if only_new and _holds(store, as_of):
        log.info("the online store already holds the snapshot of %s: nothing to load", as_of)
        return None
    return materialize_latest(store, as_of)


def _holds(store: FeatureStore, as_of: datetime) -> bool:
    try:
        return holds_snapshot(store, ONLINE_VIEWS, as_of)
    except Exception as exc:  # a lost or unreadable store holds nothing: load it whole
        log.warning("could not read the online store's snapshot marker (%s): loading", exc)
        return False


def ensure_online_tables(store: FeatureStore) -> list[Any]:
    """(Re)create the online store's tables for the registered online views.

    `feast apply` creates them, but an online store that was lost or wiped (a deleted SQLite
    file, a flushed Redis) would otherwise make materialisation fail. Re-applying the
    registry's own views is idempotent and changes no definition. Returns those views.
    """
    views: list[Any] = [store.get_feature_view(name) for name in ONLINE_VIEWS]
    store.apply(views, partial=True)
    return views


def resolve_customers(store: FeatureStore, account_ids: Sequence[str]) -> dict[str, str | None]:
    """Which customer holds each account, from the online account_profile view; None where
    the profile names no usable customer (see customer_key)."""
    rows = [{"account_id": a} for a in account_ids]
    result = store.get_online_features(
        features=["account_profile:customer_id"], entity_rows=rows
    ).to_dict()
    found = zip(result["account_id"], result["customer_id"], strict=True)
    return {account: customer_key(customer) for account, customer in found}


def customer_key(value: Any) -> str | None:
    """The customer an account_profile value names, or None: only a non-empty string is one.

    A null (an account whose profile row lacks its customer), an empty string (which would
    read a customer view keyed by "") or a value of another type (rows another schema wrote
    under this project) means the account cannot be resolved: it is unknown, and no entity
    row is built for it (a null would fail Feast's entity-key serialisation).
    """
    return value if isinstance(value, str) and value else None


def online_feature_vectors(
    store: FeatureStore,
    account_ids: Sequence[str],
    scoring_time: datetime | None = None,
    reported_income: float = 0.0,
    service_name: str = COLLECTION_RISK_V1,
) -> pd.DataFrame:
    """The service's online feature vectors, one row per account in the order given, full
    feature names.

    An account the store cannot resolve keeps its row with customer_id None and no features,
    as the scorer answers it unknown: one whose profile names no usable customer (no entity
    row is built for it) or whose customer and account views hold nothing.
    """
    customers = resolve_customers(store, account_ids)
    when = scoring_time or datetime.now(UTC)
    rows: list[dict[str, Any]] = [
        {
            "account_id": account,
            "customer_id": customer,
            "scoring_time": when,
            "reported_monthly_income": reported_income,
        }
        for account, customer in customers.items()
        if customer is not None
    ]
    service = store.get_feature_service(service_name)
    columns = ["account_id", "customer_id", *service_columns(service)]
    found = pd.DataFrame(columns=columns)
    if rows:
        response = store.get_online_features(
            features=service, entity_rows=rows, full_feature_names=True
        )
        found = response.to_df()
    return in_callers_order(found[columns], account_ids)


def in_callers_order(found: pd.DataFrame, account_ids: Sequence[str]) -> pd.DataFrame:
    """The found vectors (one row per account: account_id, customer_id, features) as the
    caller asked for them: its order, its repeats. A row whose feature views hold nothing
    is an unknown account, like one not found: customer_id None, no features."""
    from_views = [c for c in found.columns if c.split("__")[0] in ONLINE_VIEWS]
    found = found[found[from_views].notna().any(axis=1)]
    wanted = pd.DataFrame({"account_id": list(account_ids)})
    # A left merge keeps the caller's order and repeats; the found rows are unique.
    return wanted.merge(found, on="account_id", how="left", validate="many_to_one")


def service_columns(service: Any) -> list[str]:
    """The service's features under their full names (view__feature), in service order."""
    return [
        f"{projection.name_to_use()}__{feature.name}"
        for projection in service.feature_view_projections
        for feature in projection.features
    ]
