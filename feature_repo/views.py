"""Feature views: the catalogue of DESIGN.md, defined once for training, serving and drift.

Built by a factory over a features directory so tests can point the same definitions at a
temporary directory; feature_repo/repo.py builds the instances `feast apply` registers.

Sources are the parquet tables written by `collectwise build-features`: event_timestamp is
the snapshot (as-of) time, created_timestamp when the newest input was recorded. Training
reads them with filter_by_created_timestamp=True, so a value recorded after a snapshot can
never reach that snapshot's training row.

TTL is 45 days because snapshots are monthly: a value older than one missed snapshot plus
slack is stale, and get_historical_features returns null rather than a stale value.
"""

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from feast import FeatureView, Field, FileSource
from feast.data_format import ParquetFormat
from feast.types import Array, Float64, Int64, String, UnixTimestamp

from feature_repo.entities import account, customer

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


def _source(features_dir: Path, name: str, description: str) -> FileSource:
    return FileSource(
        name=f"{name}_source",
        path=str(Path(features_dir) / f"{name}.parquet"),
        file_format=ParquetFormat(),
        timestamp_field=EVENT_TS,
        created_timestamp_column=CREATED_TS,
        description=description,
    )


def make_views(features_dir: Path) -> Views:
    return Views(
        account_payment_velocity=_velocity(features_dir),
        customer_financial_ratios=_ratios(features_dir),
        account_contact_behavior=_behaviour(features_dir),
        account_profile=_profile(features_dir),
        account_default_labels=_labels(features_dir),
    )


def _velocity(features_dir: Path) -> FeatureView:
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
        source=_source(
            features_dir,
            "account_payment_velocity",
            "Payment velocity and time-series features per account",
        ),
        online=True,
        tags={"team": "collections-risk", "grain": "account x month"},
    )


def _ratios(features_dir: Path) -> FeatureView:
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
        source=_source(features_dir, "customer_financial_ratios", "Financial ratios per customer"),
        online=True,
        tags={"team": "collections-risk", "grain": "customer x month"},
    )


def _behaviour(features_dir: Path) -> FeatureView:
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
        source=_source(
            features_dir, "account_contact_behavior", "Contact and promise behaviour per account"
        ),
        online=True,
        tags={"team": "collections-risk", "grain": "account x month"},
    )


def _profile(features_dir: Path) -> FeatureView:
    # Resolves the customer of an account at scoring time; not a model input.
    return FeatureView(
        name="account_profile",
        entities=[account],
        ttl=SNAPSHOT_TTL,
        schema=[Field(name="customer_id", dtype=String)],
        source=_source(features_dir, "account_profile", "Account to customer mapping"),
        online=True,
        tags={"team": "collections-risk", "purpose": "key lookup"},
    )


# Labels, offline only. Feast's LabelView targets mutable, pushed annotations; matured
# outcomes are time-indexed facts, so a plain batch view over the label table serves better.
def _labels(features_dir: Path) -> FeatureView:
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
        source=_source(features_dir, "labels", "Matured default_30d labels per account snapshot"),
        online=False,
        tags={"team": "collections-risk", "kind": "label"},
    )
