"""Request and response models of the scoring API (separate, as the FastAPI template does)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

ACCOUNT_ID = Field(
    min_length=1,
    max_length=64,
    pattern=r"^[A-Za-z0-9_.:-]+$",
    description="the account to score, as known to the feature store",
    examples=["A00000001"],
)


class ScoreRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
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
    as_of: datetime | None = Field(
        default=None,
        description="the scoring moment for request-time features (default: now); "
        "a time without a zone is read as UTC",
    )
    reported_monthly_income: float | None = Field(
        default=None, ge=0, le=10_000_000, description="income verified with this request"
    )
    explain: bool = Field(default=True, description="include reason codes")

    @field_validator("as_of")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        from serving.events import as_utc  # noqa: PLC0415

        return None if value is None else as_utc(value)


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str = ACCOUNT_ID
    reported_monthly_income: float | None = Field(default=None, ge=0, le=10_000_000)


class BatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"accounts": [{"account_id": "A00000001"}, {"account_id": "A00000002"}]}]
        },
    )

    accounts: list[BatchItem] = Field(min_length=1, max_length=1000)
    as_of: datetime | None = None
    explain: bool = Field(default=False, description="include reason codes for every account")

    @field_validator("as_of")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        from serving.events import as_utc  # noqa: PLC0415

        return None if value is None else as_utc(value)


class ModelRef(BaseModel):
    name: str
    version: int
    alias: str


class ReasonCode(BaseModel):
    feature: str = Field(examples=["request_time_features__days_overdue_at_request"])
    value: Any = Field(examples=[96.0])
    contribution: float = Field(description="SHAP contribution in log-odds (positive: riskier)")
    sentence: str = Field(examples=["Days overdue aged to the request: 96.00; raises the risk."])


class ScoreResponse(BaseModel):
    request_id: str
    account_id: str
    probability: float = Field(ge=0, le=1, description="probability of no payment in 30 days")
    band: str = Field(examples=["high"])
    decision: bool = Field(description="true: at or above the model's stored threshold")
    threshold: float
    model: ModelRef
    reasons: list[ReasonCode]
    features_as_of: dict[str, datetime | None]
    degraded: bool
    degraded_reasons: list[str]
    missing_features: list[str]
    scored_at: datetime


class BatchError(BaseModel):
    account_id: str
    status: int
    detail: str


class BatchResponse(BaseModel):
    request_id: str
    results: list[ScoreResponse]
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
