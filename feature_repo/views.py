"""Feature views: the catalogue of DESIGN.md, defined once for training, serving and drift.

Built by a factory over a features directory so tests can point the same definitions at a
temporary directory; feature_repo/repo.py builds the instances `feast apply` registers.

Sources are the parquet tables written by `collectwise build-features`: event_timestamp is
the snapshot (as-of) time, created_timestamp when the newest input was recorded. Training
reads them with filter_by_created_timestamp=True, so a value recorded after a snapshot can
never reach that snapshot's training row.

TTL is 45 days because snapshots are monthly: a value older than one missed snapshot plus
slack is stale, and get_historical_features returns null rather than a stale value.

Each view's source is chosen by the profile (the RepoConfig given to make_views): Feast's
Spark offline store reads only SparkSource, every other store here reads FileSource, so the
same parquet tables are described by the one source the profile's store accepts. Nothing
else differs, and the definitions fingerprint (training.fingerprint) does not see the kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from feast import FeatureView, Field, FileSource
from feast.data_format import ParquetFormat
from feast.repo_config import OFFLINE_STORE_CLASS_FOR_TYPE, get_offline_store_type
from feast.types import Array, Float64, Int64, String, UnixTimestamp

from feature_repo.entities import account, customer

if TYPE_CHECKING:
    from feast.data_source import DataSource
    from feast.repo_config import RepoConfig

SNAPSHOT_TTL = timedelta(days=45)
EVENT_TS = "event_timestamp"
CREATED_TS = "created_timestamp"


@dataclass(frozen=True)
class Views:
    account_payment_velocity: FeatureView
    customer_financial_ratios: FeatureView
    account_contact_behavior: FeatureView
    account_profile: FeatureView
    account_default_labels: FeatureView

    def all(self) -> list[FeatureView]:
        return [
            self.account_payment_velocity,
            self.customer_financial_ratios,
            self.account_contact_behavior,
            self.account_profile,
            self.account_default_labels,
        ]


SourceKind = Literal["file", "spark"]


def source_kind(config: RepoConfig | None) -> SourceKind:
    """The kind of source the profile's offline store reads: "spark" for Feast's Spark store,
    "file" for any other and when no profile is given (views built only to be read)."""
    if config is None:
        return "file"
    # A profile may name the store by its short type or by its class path: compare classes.
    chosen = get_offline_store_type(config.offline_store.type)
    return "spark" if chosen == OFFLINE_STORE_CLASS_FOR_TYPE["spark"] else "file"


@dataclass(frozen=True)
class _Sources:
    """Builds each view's source over one features directory, of the profile's kind."""

    features_dir: Path
    kind: SourceKind

    def __call__(self, name: str, description: str) -> DataSource:
        path = str(Path(self.features_dir) / f"{name}.parquet")
        if self.kind == "spark":
            # Imported here: only the Spark profile needs Feast's Spark contrib package.
            from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import (  # noqa: PLC0415
                SparkSource,
            )

            return SparkSource(
                name=f"{name}_source",
                path=path,
                file_format="parquet",
                timestamp_field=EVENT_TS,
                created_timestamp_column=CREATED_TS,
                description=description,
            )
        return FileSource(
            name=f"{name}_source",
            path=path,
            file_format=ParquetFormat(),
            timestamp_field=EVENT_TS,
            created_timestamp_column=CREATED_TS,
            description=description,
        )


def make_views(features_dir: Path, config: RepoConfig | None = None) -> Views:
    """The views over features_dir, with sources of the kind config's offline store reads
    (see source_kind); without a config, FileSource."""
    source = _Sources(Path(features_dir), source_kind(config))
    return Views(
        account_payment_velocity=_velocity(source),
        customer_financial_ratios=_ratios(source),
        account_contact_behavior=_behaviour(source),
        account_profile=_profile(source),
        account_default_labels=_labels(source),
    )


def _velocity(source: _Sources) -> FeatureView:
    # How much is owed, how overdue it is and how payments have moved over recent months.
    return FeatureView(
        name="account_payment_velocity",
        entities=[account],
        ttl=SNAPSHOT_TTL,
        schema=[
            Field(name="debt_amount", dtype=Float64, description="balance on the latest statement"),
            Field(name="days_overdue", dtype=Int64, description="days overdue at the snapshot"),
            Field(
                name="overdue_since",
                dtype=UnixTimestamp,
                description="when the account fell overdue; null when not overdue",
            ),
            Field(
                name="payment_history",
                dtype=Array(Float64),
                description="net paid in each of the 6 months before, most recent first",
            ),
            Field(
                name="payment_velocity",
                dtype=Float64,
                description="mean monthly net payment over 3 months / debt, in [0, 1]",
            ),
            Field(
                name="payment_consistency_score",
                dtype=Float64,
                description="share of months paid x (1 - coefficient of variation), in [0, 1]",
            ),
            Field(
                name="seasonal_payment_pattern",
                dtype=Float64,
                description="paid in this calendar month last year / monthly mean; 1 = none",
            ),
            Field(
                name="trend_direction",
                dtype=Int64,
                description="sign of the 6-month payment slope: -1, 0, 1",
            ),
            Field(
                name="credit_utilisation",
                dtype=Float64,
                description="balance / credit limit; null without a limit",
            ),
            Field(name="max_days_past_due_6m", dtype=Int64),
            Field(name="months_past_due_6m", dtype=Int64),
            Field(
                name="balance_change_6m",
                dtype=Float64,
                description="relative change of the balance over 6 months",
            ),
            Field(name="days_since_last_payment", dtype=Int64),
            Field(name="credit_limit", dtype=Float64, description="null for loans"),
            Field(
                name="balance_history",
                dtype=Array(Float64),
                description="balances of the last 6 statements, newest first",
            ),
            Field(
                name="days_past_due_history",
                dtype=Array(Int64),
                description="days past due on the last 6 statements, newest first",
            ),
            Field(
                name="payment_to_balance_ratio",
                dtype=Float64,
                description="last month's net payment / the balance before it",
            ),
        ],
        source=source(
            "account_payment_velocity", "Payment velocity and time-series features per account"
        ),
        online=True,
        tags={"team": "collections-risk", "grain": "account x month"},
    )


def _ratios(source: _Sources) -> FeatureView:
    # Debt against income across all of a customer's accounts.
    return FeatureView(
        name="customer_financial_ratios",
        entities=[customer],
        ttl=SNAPSHOT_TTL,
        schema=[
            Field(
                name="debt_to_income_ratio",
                dtype=Float64,
                description="total debt / monthly income, capped at 1000; null if income unknown",
            ),
            Field(
                name="payment_capacity_score",
                dtype=Float64,
                description="(income - minimum dues) / income in [0, 1]; null if unknown",
            ),
            Field(
                name="risk_concentration_index",
                dtype=Float64,
                description="Herfindahl index of debt across the customer's accounts",
            ),
        ],
        source=source("customer_financial_ratios", "Financial ratios per customer"),
        online=True,
        tags={"team": "collections-risk", "grain": "customer x month"},
    )


def _behaviour(source: _Sources) -> FeatureView:
    # How the debtor engages: answers, promises kept, how they pay.
    return FeatureView(
        name="account_contact_behavior",
        entities=[account],
        ttl=SNAPSHOT_TTL,
        schema=[
            Field(
                name="contact_responsiveness",
                dtype=Float64,
                description="smoothed share of 90-day contacts that reached and engaged",
            ),
            Field(
                name="promise_to_pay_reliability",
                dtype=Float64,
                description="smoothed share of judged promises that were kept",
            ),
            Field(
                name="payment_channel_preference",
                dtype=String,
                description="most used channel over 180 days, or 'none'",
            ),
            Field(name="contacts_90d", dtype=Int64),
            Field(name="broken_promises_90d", dtype=Int64),
        ],
        source=source("account_contact_behavior", "Contact and promise behaviour per account"),
        online=True,
        tags={"team": "collections-risk", "grain": "account x month"},
    )


def _profile(source: _Sources) -> FeatureView:
    # Resolves the customer of an account at scoring time; not a model input.
    return FeatureView(
        name="account_profile",
        entities=[account],
        ttl=SNAPSHOT_TTL,
        schema=[Field(name="customer_id", dtype=String)],
        source=source("account_profile", "Account to customer mapping"),
        online=True,
        tags={"team": "collections-risk", "purpose": "key lookup"},
    )


# Labels, offline only. Feast's LabelView targets mutable, pushed annotations; matured
# outcomes are time-indexed facts, so a plain batch view over the label table serves better.
def _labels(source: _Sources) -> FeatureView:
    # Read with filter_by_created_timestamp=True a label never appears before it matured.
    return FeatureView(
        name="account_default_labels",
        entities=[account],
        ttl=timedelta(days=0),
        schema=[
            Field(
                name="default_30d",
                dtype=Int64,
                description="1 when no qualifying payment in the 30 days after",
            )
        ],
        source=source("labels", "Matured default_30d labels per account snapshot"),
        online=False,
        tags={"team": "collections-risk", "kind": "label"},
    )
