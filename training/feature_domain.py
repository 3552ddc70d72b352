"""Values no account can have: the domain of the model's inputs, checked where raw matrices
enter a model from outside the platform (the pyfunc model that `mlflow models serve` and
MLflow batch jobs call, training.scoring_model.ScoringPyfunc).

Features read from the store were built by the platform's own pipeline from validated raw
data, and online requests only add fields the request schema bounds (serving.schemas); a
matrix handed in by hand has no such guarantee. A negative day count or an infinite ratio
would still get a score (trees extrapolate silently), so it is refused, naming the column.

Only what the feature definitions make impossible is refused (feature_repo/views.py): counts
and days are never negative, shares are in [0, 1], the trend is a sign. Missing values are
allowed (the boosters route them) except where the pipeline always fills them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from collectwise.errors import InvalidInputError


class ImpossibleValuesError(InvalidInputError, ValueError):
    """Model inputs outside what the feature definitions allow (HTTP 422 / exit code 2)."""


_NON_NEGATIVE = (
    "request_time_features__days_overdue_at_request",
    "account_payment_velocity__days_overdue",
    "account_payment_velocity__max_days_past_due_6m",
    "account_payment_velocity__months_past_due_6m",
    "account_payment_velocity__days_since_last_payment",
    "account_contact_behavior__contacts_90d",
    "account_contact_behavior__broken_promises_90d",
    *(f"account_payment_velocity__days_past_due_history_{i}" for i in range(6)),
)
# Column -> (lowest, highest) allowed; NaN passes unless the column is in NOT_MISSING.
RANGES: Mapping[str, tuple[float, float]] = {
    **{c: (0.0, np.inf) for c in _NON_NEGATIVE},
    "account_payment_velocity__months_past_due_6m": (0.0, 6.0),
    "account_contact_behavior__contact_responsiveness": (0.0, 1.0),
    "account_contact_behavior__promise_to_pay_reliability": (0.0, 1.0),
    "account_payment_velocity__trend_direction": (-1.0, 1.0),
}
# The request-time transformation fills these for every row (feature_repo.request_features).
NOT_MISSING = frozenset({"request_time_features__days_overdue_at_request"})


def impossible_values(x: pd.DataFrame) -> dict[str, str]:
    """Column -> what is wrong with it, for every column of `x` holding an impossible value."""
    problems: dict[str, str] = {}
    values = x.to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.isinf(values).sum(axis=0)
    for position, column in enumerate(x.columns):
        name = str(column)
        column_values = values[:, position]
        problem = _column_problem(name, column_values, int(infinite[position]))
        if problem:
            problems[name] = problem
    return problems


def _column_problem(name: str, values: np.ndarray, infinite: int) -> str | None:
    if infinite:
        return f"{infinite} infinite value(s)"
    missing = int(np.isnan(values).sum())
    if missing and name in NOT_MISSING:
        return f"{missing} missing value(s); the pipeline always fills it"
    if name not in RANGES:
        return None
    low, high = RANGES[name]
    finite = values[~np.isnan(values)]
    outside = int(((finite < low) | (finite > high)).sum())
    if outside:
        return f"{outside} value(s) outside [{low:g}, {high:g}]"
    return None


def check_domain(x: pd.DataFrame) -> None:
    """Raise ImpossibleValuesError naming each column that holds an impossible value."""
    problems = impossible_values(x)
    if problems:
        listed = "; ".join(f"{column}: {problem}" for column, problem in problems.items())
        raise ImpossibleValuesError(f"impossible model inputs: {listed}")
