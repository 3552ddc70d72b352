"""The raw data contract: every raw table, its columns, their types and allowed values.

This module is the single written-down form of DESIGN.md's "Domain and data contract".
The pandera schemas (ingestion.schemas), the synthetic generator, the real-data adapters
and the feature SQL all read their column names and vocabularies from here.

Storage layout: each table is a directory ``<raw_dir>/<table>/`` of parquet parts
(``part-00000.parquet``, ...) so that large datasets can be written in chunks with
bounded memory. Directories starting with ``_`` (e.g. ``_oracle``) are not raw tables.
Timestamps are timezone-aware UTC; amounts are finite float64 in the account's currency,
bounded by MAX_AMOUNT (MAX_MONTHLY_INCOME for income).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

TIMESTAMP: Final = "datetime64[us, UTC]"
STRING: Final = "string"
FLOAT: Final = "float64"
INT: Final = "int64"

PRODUCTS: Final = ("credit_card", "personal_loan", "auto_loan", "overdraft", "telecom")
REGIONS: Final = ("north", "south", "east", "west", "central")
AGE_BANDS: Final = ("18-25", "26-35", "36-45", "46-55", "56-65", "66+")
SEXES: Final = ("female", "male", "unknown")
PAYMENT_CHANNELS: Final = ("bank_transfer", "card", "direct_debit", "cash", "mobile_app")
PAYMENT_STATUSES: Final = ("settled", "reversed")
CONTACT_CHANNELS: Final = ("phone", "sms", "email", "letter")
CONTACT_OUTCOMES: Final = (
    "no_answer",
    "right_party_contact",
    "wrong_party",
    "refused",
    "promise_to_pay",
)
# Outcomes that show the debtor engaged with the collector.
RESPONSIVE_OUTCOMES: Final = ("right_party_contact", "promise_to_pay")

# Bounds on money, in the account's currency. That may be one with small units (IDR, VND,
# KRW), so 10 billion units is above any consumer debt, limit, statement or payment, yet far
# below where float64 stops holding cents (about 9e13) or sums over a portfolio overflow.
# Anything larger (1e300, inf) is a broken feed, not a debtor; so is any non-finite amount.
MAX_AMOUNT: Final = 1e10
# A person's monthly income: the same currency argument, one order of magnitude lower.
MAX_MONTHLY_INCOME: Final = 1e9


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str
    nullable: bool = False
    unique: bool = False
    # Allowed values for categorical columns; empty means any value.
    allowed: tuple[str, ...] = ()
    # Bounds for numeric columns (inclusive); None means unbounded. Float columns never
    # hold infinities, bounded or not.
    min_value: float | None = None
    max_value: float | None = None
    description: str = ""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    # Column holding the time the event happened (None for reference tables).
    event_time: str | None = None
    # Column holding the time the row was recorded in the source system.
    recorded_time: str | None = None
    foreign_keys: dict[str, str] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def key(self) -> str:
        return self.columns[0].name


CUSTOMERS = Table(
    name="customers",
    columns=(
        Column("customer_id", STRING, unique=True, description="the person"),
        # Unknown income is a fact of collections data (and of the UCI file): keep it null.
        Column(
            "monthly_income",
            FLOAT,
            nullable=True,
            min_value=0.0,
            max_value=MAX_MONTHLY_INCOME,
        ),
        Column("region", STRING, allowed=(*REGIONS, "unknown")),
        Column("created_at", TIMESTAMP),
        # Protected attributes: fairness reports only, never model features.
        Column("age_band", STRING, allowed=(*AGE_BANDS, "unknown")),
        Column("sex", STRING, allowed=SEXES),
    ),
    event_time="created_at",
)

ACCOUNTS = Table(
    name="accounts",
    columns=(
        Column("account_id", STRING, unique=True, description="the debt being collected"),
        Column("customer_id", STRING),
        Column("product", STRING, allowed=PRODUCTS),
        Column("credit_limit", FLOAT, nullable=True, min_value=0.0, max_value=MAX_AMOUNT),
        Column("original_amount", FLOAT, min_value=0.0, max_value=MAX_AMOUNT),
        Column("opened_at", TIMESTAMP),
        Column("delinquent_since", TIMESTAMP),
        Column("placed_at", TIMESTAMP, description="placed with collections"),
    ),
    event_time="placed_at",
    foreign_keys={"customer_id": "customers"},
)

STATEMENTS = Table(
    name="statements",
    columns=(
        Column("account_id", STRING),
        # A statement is known on its date, so it has no separate recording time.
        Column("statement_date", TIMESTAMP),
        Column(
            "balance",
            FLOAT,
            min_value=-MAX_AMOUNT,
            max_value=MAX_AMOUNT,
            description="negative for a credit balance",
        ),
        # Null when the source does not report it (the UCI file has no minimum due).
        Column("minimum_due", FLOAT, nullable=True, min_value=0.0, max_value=MAX_AMOUNT),
        Column("days_past_due", INT, min_value=0),
    ),
    event_time="statement_date",
    foreign_keys={"account_id": "accounts"},
)

PAYMENTS = Table(
    name="payments",
    columns=(
        Column("payment_id", STRING, unique=True),
        Column("account_id", STRING),
        Column("paid_at", TIMESTAMP),
        # Always positive. A reversal is its own row (status 'reversed') that cancels
        # `amount` of money paid at `paid_at`; it is recorded when the bank reports it.
        Column("amount", FLOAT, min_value=0.0, max_value=MAX_AMOUNT),
        Column("channel", STRING, allowed=PAYMENT_CHANNELS),
        Column("status", STRING, allowed=PAYMENT_STATUSES),
        Column("recorded_at", TIMESTAMP),
    ),
    event_time="paid_at",
    recorded_time="recorded_at",
    foreign_keys={"account_id": "accounts"},
)

CONTACTS = Table(
    name="contacts",
    columns=(
        Column("contact_id", STRING, unique=True),
        Column("account_id", STRING),
        Column("contacted_at", TIMESTAMP),
        Column("channel", STRING, allowed=CONTACT_CHANNELS),
        Column("outcome", STRING, allowed=CONTACT_OUTCOMES),
        Column("recorded_at", TIMESTAMP),
    ),
    event_time="contacted_at",
    recorded_time="recorded_at",
    foreign_keys={"account_id": "accounts"},
)

PROMISES = Table(
    name="promises",
    columns=(
        Column("promise_id", STRING, unique=True),
        Column("account_id", STRING),
        Column("made_at", TIMESTAMP),
        Column("promised_amount", FLOAT, min_value=0.0, max_value=MAX_AMOUNT),
        Column("due_date", TIMESTAMP),
        Column("recorded_at", TIMESTAMP),
    ),
    event_time="made_at",
    recorded_time="recorded_at",
    foreign_keys={"account_id": "accounts"},
)

# Optional: outcomes observed directly by a source system (the UCI file says "defaulted
# next month" but has no payments after the snapshot). When present, labels come from here
# instead of being derived from payments.
OUTCOMES = Table(
    name="outcomes",
    columns=(
        # (account_id, snapshot_at) is the key; checked by the schema.
        Column("account_id", STRING),
        Column("snapshot_at", TIMESTAMP),
        Column("default_30d", INT, min_value=0),
        Column("recorded_at", TIMESTAMP),
    ),
    event_time="snapshot_at",
    recorded_time="recorded_at",
    foreign_keys={"account_id": "accounts"},
)

REQUIRED_TABLES: Final = (CUSTOMERS, ACCOUNTS, STATEMENTS, PAYMENTS, CONTACTS, PROMISES)
OPTIONAL_TABLES: Final = (OUTCOMES,)
ALL_TABLES: Final = REQUIRED_TABLES + OPTIONAL_TABLES
TABLES_BY_NAME: Final = {t.name: t for t in ALL_TABLES}
