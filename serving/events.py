"""What the scorer records about every scored account: one `ScoreEvent` per account.

The same event feeds the hash-chained audit log (serving.audit) and the served-features log
that monitoring reads (serving.servedlog). It holds ids, never personal data, and names the
caller by its API key's name, never the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class ScoreEvent:
    """One account scored by one request (a batch request yields one event per account).

    `features` maps full Feast names ("view__feature") to the raw online values, arrays as
    lists of floats and missing values as None; `vector` is the model matrix row in the
    model's feature_columns order (NaN allowed), which is what replay feeds back to the model.
    """

    request_id: str
    scored_at: datetime
    route: str
    caller: str
    account_id: str
    customer_id: str | None
    scoring_time: datetime
    reported_monthly_income: float | None
    features: dict[str, Any]
    feature_timestamps: dict[str, datetime | None]
    vector: list[float]
    model_name: str
    model_version: int
    model_alias: str
    probability: float
    band: str
    decision: bool
    challenger_version: int | None
    challenger_probability: float | None
    degraded: bool
    imputed: list[str]
    latency_ms: float


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already (never local time)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
