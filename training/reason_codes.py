"""The reason-code table: one stable code and one customer-facing sentence per model feature.

Every model version, whatever its estimator or training data (synthetic or the UCI adapter,
which maps onto the same raw contract and so the same features), explains itself through
this one table: a reason given to a customer is a code from here, its feature and its
sentence, never a raw column name. Codes are stable identifiers: a code keeps its meaning
for ever, a retired feature keeps its row, and a new feature gets the next free code.

A reason is only ever given for a feature that RAISED the risk (a positive contribution), so
each sentence says how the feature can push the risk up. Sentences use plain language and
name no protected attribute (age, sex): those are never model inputs (training.fairness).

A model whose features are not all in the table is refused at registration
(training.registry.register) and by the scorer when it loads a version (serving.model_set):
a reason without a code would be a reason nobody can look up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache

from collectwise.errors import InvalidInputError
from training.model_matrix import column_sources


class UncoveredFeaturesError(InvalidInputError, ValueError):
    """A model uses features that have no row in the reason-code table."""


@dataclass(frozen=True)
class ReasonCodeEntry:
    code: str
    feature: str
    sentence: str


# Ordered by code. Append only: never renumber, reuse or delete a code (old audit records
# and letters to customers refer to them).
_ROWS: tuple[tuple[str, str, str], ...] = (
    ("R01", "account_payment_velocity__debt_amount", "The amount owed on the account is high."),
    (
        "R02",
        "account_payment_velocity__days_overdue",
        "The account has been overdue for a long time.",
    ),
    (
        "R03",
        "request_time_features__days_overdue_at_request",
        "The account has been overdue for a long time.",
    ),
    (
        "R04",
        "account_payment_velocity__payment_history",
        "Amounts paid in the last six months were low.",
    ),
    (
        "R05",
        "account_payment_velocity__payment_velocity",
        "Payments over the last three months were low relative to the balance.",
    ),
    (
        "R06",
        "account_payment_velocity__payment_consistency_score",
        "Payments in recent months were irregular or missed.",
    ),
    (
        "R07",
        "account_payment_velocity__seasonal_payment_pattern",
        "Payments at this time of year differed from the usual pattern.",
    ),
    (
        "R08",
        "account_payment_velocity__trend_direction",
        "The trend of payments over the last six months.",
    ),
    (
        "R09",
        "account_payment_velocity__credit_utilisation",
        "The balance is high relative to the credit limit.",
    ),
    (
        "R10",
        "account_payment_velocity__max_days_past_due_6m",
        "The account fell far behind in the last six months.",
    ),
    (
        "R11",
        "account_payment_velocity__months_past_due_6m",
        "The account was behind in several of the last six months.",
    ),
    (
        "R12",
        "account_payment_velocity__balance_change_6m",
        "The change in the balance over the last six months.",
    ),
    (
        "R13",
        "account_payment_velocity__days_since_last_payment",
        "A long time has passed since the last payment.",
    ),
    ("R14", "account_payment_velocity__credit_limit", "The credit limit of the account."),
    (
        "R15",
        "account_payment_velocity__balance_history",
        "The balances on the last six statements.",
    ),
    (
        "R16",
        "account_payment_velocity__days_past_due_history",
        "The account was behind on recent statements.",
    ),
    (
        "R17",
        "account_payment_velocity__payment_to_balance_ratio",
        "Last month's payment was small compared with the balance.",
    ),
    (
        "R18",
        "customer_financial_ratios__debt_to_income_ratio",
        "Total debt is high relative to income.",
    ),
    (
        "R19",
        "customer_financial_ratios__payment_capacity_score",
        "Little income is left once the minimum payments due are met.",
    ),
    (
        "R20",
        "customer_financial_ratios__risk_concentration_index",
        "How the debt is spread across the customer's accounts.",
    ),
    (
        "R21",
        "account_contact_behavior__contact_responsiveness",
        "Recent attempts to get in touch were seldom answered.",
    ),
    (
        "R22",
        "account_contact_behavior__promise_to_pay_reliability",
        "Earlier promises to pay were not kept.",
    ),
    (
        "R23",
        "account_contact_behavior__payment_channel_preference",
        "The way payments were usually made in the last six months, or no payments at all.",
    ),
    (
        "R24",
        "account_contact_behavior__contacts_90d",
        "The number of contacts about the debt in the last 90 days.",
    ),
    (
        "R25",
        "account_contact_behavior__broken_promises_90d",
        "Promises to pay were broken in the last 90 days.",
    ),
    (
        "R26",
        "request_time_features__debt_to_reported_income",
        "The amount owed is high relative to the income reported.",
    ),
)


@cache
def reason_table() -> Mapping[str, ReasonCodeEntry]:
    """Feature (full name, view__feature) -> its entry; checked once for duplicates."""
    entries = [ReasonCodeEntry(*row) for row in _ROWS]
    codes = [e.code for e in entries]
    features = [e.feature for e in entries]
    if len(set(codes)) != len(codes) or len(set(features)) != len(features):
        raise ValueError("the reason-code table repeats a code or a feature")
    return {e.feature: e for e in entries}


def reason_for(feature: str) -> ReasonCodeEntry:
    """The table's entry for a feature; UncoveredFeaturesError when it has none."""
    entry = reason_table().get(feature)
    if entry is None:
        raise UncoveredFeaturesError(f"feature {feature!r} has no row in the reason-code table")
    return entry


def uncovered(features: Iterable[str]) -> list[str]:
    """The features (in the given order, once each) that have no row in the table."""
    table = reason_table()
    return [f for f in dict.fromkeys(features) if f not in table]


def model_features(feature_columns: Iterable[str], feature_service: str) -> list[str]:
    """The features a model's columns encode (payment_history_3 -> payment_history)."""
    sources = column_sources(feature_service)
    return list(dict.fromkeys(sources.get(c, c) for c in feature_columns))


def check_covered(feature_columns: Iterable[str], feature_service: str) -> None:
    """Refuse a model with a feature the table lacks, naming every such feature."""
    missing = uncovered(model_features(feature_columns, feature_service))
    if missing:
        raise UncoveredFeaturesError(
            f"{len(missing)} model feature(s) have no row in the reason-code table "
            f"(training/reason_codes.py): {', '.join(missing)}; add a code and a sentence "
            "for each before registering or serving this model"
        )
