"""Request-time features: what depends on the moment of scoring, not on the snapshot.

In training the scoring time is the snapshot time and no income is reported, so these
features equal their snapshot counterparts there; online they age the overdue count to the
request and use an income the caller has just verified.
"""

import types
from collections.abc import Callable
from typing import Any

import pandas as pd
from feast import Field, RequestSource
from feast.on_demand_feature_view import OnDemandFeatureView, on_demand_feature_view
from feast.types import Float64, UnixTimestamp

from feature_repo.views import Views

# Supplied with every scoring request (and by training as the snapshot time).
scoring_request = RequestSource(
    name="scoring_request",
    schema=[
        Field(name="scoring_time", dtype=UnixTimestamp),
        Field(
            name="reported_monthly_income",
            dtype=Float64,
            description="income verified at request time; 0 or less means not supplied",
        ),
    ],
)


def request_time_features(inputs: pd.DataFrame) -> pd.DataFrame:
    # The import lives inside: Feast serialises this function and runs it elsewhere.
    import pandas as pd  # noqa: PLC0415

    out = pd.DataFrame(index=inputs.index)
    since = pd.to_datetime(inputs["overdue_since"], utc=True)
    now = pd.to_datetime(inputs["scoring_time"], utc=True)
    days = (now - since).dt.total_seconds() / 86400.0
    out["days_overdue_at_request"] = (days.clip(lower=0) // 1.0).fillna(0.0).astype("float64")
    income = pd.to_numeric(inputs["reported_monthly_income"], errors="coerce").fillna(0.0)
    debt = pd.to_numeric(inputs["debt_amount"], errors="coerce").clip(lower=0)
    reported = (debt / income.clip(lower=1.0)).clip(upper=1000.0)
    fallback = pd.to_numeric(inputs["debt_to_income_ratio"], errors="coerce")
    out["debt_to_reported_income"] = reported.where(income > 0, fallback).astype("float64")
    return out


def make_request_time_view(views: Views) -> OnDemandFeatureView:
    """The on-demand view over the snapshot views and the scoring request."""
    decorate = on_demand_feature_view(
        sources=[views.account_payment_velocity, views.customer_financial_ratios, scoring_request],
        schema=[
            Field(name="days_overdue_at_request", dtype=Float64),
            Field(name="debt_to_reported_income", dtype=Float64),
        ],
        mode="pandas",
        description="Overdue days aged to the request; debt over an income reported with it",
    )
    view: OnDemandFeatureView = decorate(_fresh_copy(request_time_features))
    return view


def _fresh_copy(fn: Callable[..., Any]) -> Callable[..., Any]:
    # Feast's decorator rewrites the function's __module__ to "__main__" (for dill), after
    # which its source cannot be found again; each view gets its own copy to rewrite.
    copy = types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
    )
    copy.__annotations__ = dict(fn.__annotations__)
    copy.__doc__ = fn.__doc__
    return copy
