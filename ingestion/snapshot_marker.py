"""The online store's snapshot marker: proof that every view holds the latest snapshot.

A scorer whose online store was emptied (a restarted Redis) or half loaded (materialisation
killed midway) would answer every account with 404 while saying it is ready. So
`materialize_latest` brackets its load with a marker kept in the online store itself,
through Feast's public write API, as rows of a reserved canary entity:

1. before loading: the account_profile canary says PENDING, with the wall-clock start;
2. after every view is loaded: each online view gets a canary row stamped with the
   snapshot time, and the account_profile canary says COMPLETE.

`problems_from_values` judges a read of the canaries:
- a view without a canary was emptied, or never loaded whole (a first load killed midway
  leaves some views empty): not servable;
- a PENDING marker younger than the grace period is a load in progress over a whole earlier
  snapshot: servable, as Feast's `serve_features_while_materializing` would have it;
- a PENDING marker older than that is a load that died: not servable until a rerun;
- a COMPLETE marker with a view canary older than it: that view lost its rows.
The marker lives where the features live, so it is lost exactly when they are, on SQLite
and Redis alike. The canary id is reserved: the scorer refuses ids that start with `__`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from feature_repo.views import CREATED_TS, EVENT_TS

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

log = logging.getLogger(__name__)

RESERVED_PREFIX = "__"
CANARY_ID = "__collectwise_canary__"
MARKER_VIEW = "account_profile"
MARKER_FEATURE = "customer_id"
# The pending marker's value: this prefix and the wall-clock time the load began.
PENDING = "__pending__:"
# How long a load may stay pending before readiness takes it for dead.
DEFAULT_GRACE = timedelta(minutes=30)
# COMPLETE doubles as the canary account's customer, so the customer views' canary rows are
# keyed by the same reserved id and reachable the way a real account's are.
COMPLETE = CANARY_ID
# Redis keeps a row only if it is newer than the one it holds: the pending marker is
# stamped just before the snapshot so that the complete marker always replaces it.
PENDING_OFFSET = timedelta(seconds=1)
CANARY_ROW = {"account_id": CANARY_ID, "customer_id": CANARY_ID}


def mark_pending(store: FeatureStore, as_of: datetime, now: datetime | None = None) -> None:
    """Say, in the store, that loading the snapshot of `as_of` began at `now`."""
    started = _utc(now or datetime.now(UTC)).isoformat()
    _write(store, MARKER_VIEW, _utc(as_of) - PENDING_OFFSET, PENDING + started)


def mark_complete(store: FeatureStore, as_of: datetime, views: Sequence[str]) -> None:
    """Stamp every view's canary with the snapshot, the marker view last."""
    when = _utc(as_of)
    for name in [v for v in views if v != MARKER_VIEW]:
        _write(store, name, when, COMPLETE)
    _write(store, MARKER_VIEW, when, COMPLETE)


def marker_refs(store: FeatureStore, views: Sequence[str]) -> list[str]:
    """One "view:feature" reference per view: what a read of the canaries asks for."""
    return [f"{name}:{_first_feature(_view(store, name))}" for name in views]


def marker_problems(
    store: FeatureStore, views: Sequence[str], grace: timedelta = DEFAULT_GRACE
) -> list[str]:
    """Why the online store does not hold one whole snapshot; empty when it does."""
    refs = marker_refs(store, views)
    values = store.get_online_features(
        features=refs, entity_rows=[CANARY_ROW], full_feature_names=True
    ).to_dict(include_event_timestamps=True)
    return problems_from_values(values, refs, datetime.now(UTC), grace)


def holds_snapshot(store: FeatureStore, views: Sequence[str], as_of: datetime) -> bool:
    """True when the online store holds the snapshot of `as_of` whole in every view: the
    marker is COMPLETE at that time and no view lacks it (nothing to load again)."""
    refs = marker_refs(store, views)
    values = store.get_online_features(
        features=refs, entity_rows=[CANARY_ROW], full_feature_names=True
    ).to_dict(include_event_timestamps=True)
    marker = f"{MARKER_VIEW}__{MARKER_FEATURE}"
    if (values.get(marker) or [None])[0] != COMPLETE:
        return False
    if problems_from_values(values, refs, datetime.now(UTC), DEFAULT_GRACE):
        return False
    stamp = _seconds((values.get(f"{marker}__ts") or [None])[0])
    return stamp >= _utc(as_of).timestamp()


def problems_from_values(
    values: dict[str, list[Any]], refs: Sequence[str], now: datetime, grace: timedelta
) -> list[str]:
    """The check itself, on a read of the canaries (full feature names, `<name>__ts` event
    times in seconds or datetimes, as get_online_features' to_dict gives them)."""
    marker = f"{MARKER_VIEW}__{MARKER_FEATURE}"
    state = (values.get(marker) or [None])[0]
    if state is None:
        return ["the online store holds no snapshot marker: it was emptied or never loaded "
                "by `collectwise materialize`"]  # fmt: skip
    stamps = {ref: _seconds((values.get(ref.replace(":", "__") + "__ts") or [None])[0])
              for ref in refs}  # fmt: skip
    empty = [ref.split(":", 1)[0] for ref, seen in stamps.items() if not seen]
    if str(state).startswith(PENDING):
        return _pending_problems(str(state), empty, now, grace)
    if empty:
        return [f"views {', '.join(empty)} hold no whole snapshot: run `collectwise materialize`"]
    marked = stamps.get(f"{MARKER_VIEW}:{MARKER_FEATURE}", 0.0)
    behind = [ref.split(":", 1)[0] for ref, seen in stamps.items() if seen < marked]
    if behind:
        return [f"views {', '.join(behind)} lack the latest snapshot (the store was emptied "
                "or half loaded): run `collectwise materialize`"]  # fmt: skip
    return []


def _pending_problems(state: str, empty: list[str], now: datetime, grace: timedelta) -> list[str]:
    started = _started(state)
    if started is None or now - started > grace:
        when = f"at {started:%Y-%m-%d %H:%M} UTC " if started else ""
        return [f"a materialisation began {when}and did not finish within {grace}: run "
                "`collectwise materialize` again"]  # fmt: skip
    if empty:
        # A first load in progress: nothing whole to serve yet.
        return [f"views {', '.join(empty)} are still loading their first snapshot"]
    return []


def _started(state: str) -> datetime | None:
    try:
        return _utc(datetime.fromisoformat(state[len(PENDING) :]))
    except ValueError:
        return None


# ----------------------------------------------------------------- internals


def _write(store: FeatureStore, name: str, when: datetime, state: str) -> None:
    store.write_to_online_store(name, _canary_frame(_view(store, name), when, state))


def _view(store: FeatureStore, name: str) -> FeatureView:
    return store.get_feature_view(name)


def _first_feature(view: FeatureView) -> str:
    return MARKER_FEATURE if view.name == MARKER_VIEW else view.features[0].name


def _canary_frame(view: FeatureView, when: datetime, state: str) -> pd.DataFrame:
    # Feast refuses an all-null row, so every feature gets a typed placeholder.
    row: dict[str, Any] = {key: CANARY_ID for key in view.join_keys}
    row.update({f.name: _placeholder(f, when) for f in view.features})
    if view.name == MARKER_VIEW:
        row[MARKER_FEATURE] = state
    row[EVENT_TS] = when
    row[CREATED_TS] = when
    return pd.DataFrame([row])


def _placeholder(field: Any, when: datetime) -> Any:
    kind = field.dtype.to_value_type().name
    if kind.endswith("_LIST"):
        return [0.0] if "FLOAT" in kind or "DOUBLE" in kind else [0]
    if kind == "STRING":
        return CANARY_ID
    if kind == "UNIX_TIMESTAMP":
        return when
    if kind == "BOOL":
        return False
    return 0.0 if kind in {"FLOAT", "DOUBLE"} else 0


def _seconds(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, datetime):
        return _utc(value).timestamp()
    return float(getattr(value, "seconds", value))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
