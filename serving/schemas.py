"""Request and response models of the scoring API (separate, as the FastAPI template does)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from collectwise.settings import MAX_BATCH_CEILING
from serving.events import as_utc

# Letters, digits and _ . : - ; ids that begin with "__" are reserved for the platform's own
# canary and probe entities (ingestion.snapshot_marker), so no caller can score them.
ACCOUNT_ID_PATTERN = r"^(_?[A-Za-z0-9.:-][A-Za-z0-9_.:-]*|_)$"
ACCOUNT_ID_MAX_LENGTH = 64
ACCOUNT_ID = Field(
    min_length=1,
    max_length=ACCOUNT_ID_MAX_LENGTH,
    pattern=ACCOUNT_ID_PATTERN,
    description="the account to score, as known to the feature store",
    examples=["A00000001"],
)
# Scoring moments the platform accepts: within what Feast's pandas timestamps can hold, and
# far enough from either end that ageing a feature by days cannot overflow.
AS_OF_MIN = datetime(1970, 1, 1, tzinfo=UTC)
AS_OF_MAX = datetime(2200, 1, 1, tzinfo=UTC)
AS_OF = Field(
    default=None,
    description="the scoring moment for request-time features (default: now), from 1970 up "
    "to 2200; a time without a zone is read as UTC",
    # JSON Schema has no date range; the year pattern states the bounds in the contract.
    json_schema_extra={"pattern": r"^(19[7-9][0-9]|2[01][0-9]{2})-"},
    # Not strict: in strict mode pydantic takes no ISO string for a datetime.
    strict=False,
)
INCOME = Field(
    default=None,
    ge=0,
    le=10_000_000,
    allow_inf_nan=False,
    description="monthly income verified with this request",
)
# Strict: a JSON string or boolean is not a number, and 0 / "yes" are not booleans.
STRICT = ConfigDict(extra="forbid", strict=True)


def as_of_text(value: object) -> object:
    """Only an ISO 8601 string (or nothing): lax pydantic would read a number as epoch
    seconds, which the contract does not offer."""
    if value is None or isinstance(value, str | datetime):
        return value
    raise ValueError("as_of must be an ISO 8601 date-time string")


def checked_as_of(value: datetime | None) -> datetime | None:
    """UTC, and within [AS_OF_MIN, AS_OF_MAX): anything else is a client error (422)."""
    if value is None:
        return None
    try:
        moment = as_utc(value)
    except OverflowError:
        raise ValueError("as_of is out of range") from None
    if not AS_OF_MIN <= moment < AS_OF_MAX:
        raise ValueError(f"as_of must lie from {AS_OF_MIN:%Y-%m-%d} up to {AS_OF_MAX:%Y-%m-%d}")
    return moment


class ScoreRequest(BaseModel):
    model_config = ConfigDict(
        **STRICT,
        json_schema_extra={
            "examples": [
                {"account_id": "A00000001"},
                {
                    "account_id": "A00000001",
                    "as_of": "2026-11-20T09:00:00Z",
                    "reported_monthly_income": 2400.0,
                },
            ]
        },
    )

    account_id: str = ACCOUNT_ID
    as_of: datetime | None = AS_OF
    reported_monthly_income: float | None = INCOME
    explain: bool = Field(default=True, description="include reason codes")

    _as_of_text = field_validator("as_of", mode="before")(as_of_text)
    _as_of = field_validator("as_of")(checked_as_of)


class BatchItem(BaseModel):
    model_config = STRICT

    account_id: str = ACCOUNT_ID
    reported_monthly_income: float | None = INCOME


class BatchRequest(BaseModel):
    model_config = ConfigDict(
        **STRICT,
        json_schema_extra={
            "examples": [{"accounts": [{"account_id": "A00000001"}, {"account_id": "A00000002"}]}]
        },
    )

    accounts: list[BatchItem] = Field(
        min_length=1,
        max_length=MAX_BATCH_CEILING,
        description="the accounts to score, at most serving.max_batch (default 1,000); "
        "one account may appear more than once, e.g. at two reported incomes",
    )
    as_of: datetime | None = AS_OF
    explain: bool = Field(default=False, description="include reason codes for every account")

    _as_of_text = field_validator("as_of", mode="before")(as_of_text)
    _as_of = field_validator("as_of")(checked_as_of)


class ModelRef(BaseModel):
    name: str
    version: int
    alias: str


class ReasonCode(BaseModel):
    """A feature that raised the risk, with its stable code and customer-facing sentence
    from the reason-code table (training/reason_codes.py)."""

    code: str = Field(
        examples=["R03"], description="stable code of the feature in the reason-code table"
    )
    feature: str = Field(examples=["request_time_features__days_overdue_at_request"])
    value: Any = Field(examples=[96.0])
    contribution: float = Field(
        gt=0, description="SHAP contribution in log-odds; always positive (raised the risk)"
    )
    sentence: str = Field(examples=["The account has been overdue for a long time."])


class CounterfactualRequest(BaseModel):
    model_config = ConfigDict(
        **STRICT, json_schema_extra={"examples": [{"account_id": "A00000001"}]}
    )

    account_id: str = ACCOUNT_ID
    as_of: datetime | None = AS_OF
    reported_monthly_income: float | None = INCOME

    _as_of_text = field_validator("as_of", mode="before")(as_of_text)
    _as_of = field_validator("as_of")(checked_as_of)


class FeatureChange(BaseModel):
    code: str = Field(examples=["R05"], description="the feature's code in the reason table")
    feature: str = Field(examples=["account_payment_velocity__payment_velocity"])
    before: float | None = Field(description="the value now; null when it is missing")
    after: float
    percentile_before: float = Field(ge=0, le=100, description="among the model's training rows")
    percentile_after: float = Field(ge=0, le=100)


class CounterfactualResponse(BaseModel):
    request_id: str
    account_id: str
    model: ModelRef
    probability: float = Field(ge=0, le=1, description="the account's probability now")
    band: str = Field(examples=["high"])
    target_band: str = Field(examples=["medium"], description="the next band down")
    cutoff: float = Field(description="the probability to get under to reach target_band")
    probability_after: float = Field(ge=0, le=1, description="with the changes applied")
    band_after: str
    changes: list[FeatureChange] = Field(
        description="the fewest, smallest changes of actionable features found, others fixed"
    )
    cost: float = Field(ge=0, description="summed moves through the training population")
    message: str


class ScoreResponse(BaseModel):
    request_id: str
    account_id: str
    probability: float = Field(ge=0, le=1, description="probability of no payment in 30 days")
    band: str = Field(examples=["high"])
    decision: bool = Field(description="true: at or above the model's stored threshold")
    threshold: float
    model: ModelRef
    reasons: list[ReasonCode] = Field(
        description="up to serving.max_reasons features that raised the risk, largest "
        "contribution first, ties by code; never one that lowered it"
    )
    features_as_of: dict[str, datetime | None]
    degraded: bool
    degraded_reasons: list[str]
    missing_features: list[str]
    scored_at: datetime


class BatchError(BaseModel):
    index: int = Field(description="the account's position in the request")
    account_id: str
    status: int
    detail: str


class BatchResult(ScoreResponse):
    index: int = Field(description="the account's position in the request")


class BatchResponse(BaseModel):
    request_id: str
    results: list[BatchResult]
    errors: list[BatchError]


class CurrentModels(BaseModel):
    champion: dict[str, Any] | None
    challenger: dict[str, Any] | None
    mode: str
    challenger_share: float
    problem: str | None


class ErrorBody(BaseModel):
    error: str = Field(examples=["unknown_account"])
    detail: str


class Health(BaseModel):
    status: str
    checks: dict[str, Any] = Field(default_factory=dict)
