"""The population of one chunk: its customers and their delinquent accounts."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ingestion.synthetic.draws import pick, uniforms, whole_seconds
from ingestion.synthetic.timeline import Calendar
from ingestion.synthetic.world import (
    AGE_INCOME,
    AGE_MIX,
    AGE_RISK,
    INCOME_MISSING_SHARE,
    INCOME_SIGMA,
    PAYMENT_CHANNEL_MIX,
    PRODUCT_AMOUNT_SIGMA,
    PRODUCT_IS_LOAN,
    PRODUCT_MEDIAN_AMOUNT,
    PRODUCT_MIX,
    REFERENCE_INCOME,
    REGION_MEDIAN_INCOME,
    REGION_MIX,
    SEX_MIX,
    SEX_RISK,
    SHOCK_INCOME,
    US_PER_DAY,
    FloatArr,
    IntArr,
    Scenario,
)


@dataclass(frozen=True)
class Customers:
    income: FloatArr  # the truth; the oracle uses it even where the reported one is missing
    reported_income: FloatArr
    region: IntArr
    age: IntArr
    sex: IntArr
    created: IntArr
    risk: FloatArr


@dataclass(frozen=True)
class Accounts:
    customer: IntArr
    z: FloatArr
    income: FloatArr
    product: IntArr
    pref_channel: IntArr
    placed: IntArr
    delinquent: IntArr
    opened: IntArr
    first_statement: IntArr
    original: FloatArr
    credit_limit: FloatArr
    balance0: FloatArr

    @property
    def n(self) -> int:
        return len(self.z)


def _draw_customers(rng: np.random.Generator, n: int) -> tuple[IntArr, Customers]:
    """Enough customers for n accounts (1.25 each on average) and their attributes.

    Returns the customer of every account; `created` is filled in once placements exist.
    """
    u = uniforms(rng, n, {"count": 1, "region": 1, "age": 1, "sex": 1, "missing": 1})
    normal = rng.standard_normal((n, 2))
    per_customer = pick(np.cumsum([0.8, 0.15, 0.05]), u["count"]) + 1
    n_customers = int(np.searchsorted(np.cumsum(per_customer), n) + 1)
    owner = np.repeat(np.arange(n_customers), per_customer[:n_customers])[:n]
    region = pick(np.cumsum(REGION_MIX), u["region"][:n_customers])
    age = pick(np.cumsum(AGE_MIX), u["age"][:n_customers])
    sex = pick(np.cumsum(SEX_MIX), u["sex"][:n_customers])
    income = np.round(
        REGION_MEDIAN_INCOME[region]
        * AGE_INCOME[age]
        * np.exp(INCOME_SIGMA * normal[:n_customers, 0]),
        -1,
    )
    reported = np.where(u["missing"][:n_customers] < INCOME_MISSING_SHARE, np.nan, income)
    risk = AGE_RISK[age] + SEX_RISK[sex] + normal[:n_customers, 1]
    empty = np.zeros(n_customers, np.int64)
    return owner, Customers(income, reported, region, age, sex, empty, risk)


def _draw_accounts(
    rng: np.random.Generator, owner: IntArr, cust: Customers, cal: Calendar
) -> Accounts:
    n = len(owner)
    u = uniforms(rng, n, {"product": 1, "channel": 1, "placed": 1, "late": 1, "age": 1, "paid": 1})
    normal = rng.standard_normal((n, 2))
    product = pick(np.cumsum(PRODUCT_MIX), u["product"])
    pref = pick(np.cumsum(PAYMENT_CHANNEL_MIX, axis=1)[product], u["channel"])
    lo, hi = cal.t(cal.first), cal.t(cal.months - 2)
    placed = whole_seconds(lo + u["placed"] * (hi - lo))
    delinquent = whole_seconds(placed - (30 + 150 * u["late"]) * US_PER_DAY)
    opened = whole_seconds(delinquent - (90 + 3560 * u["age"]) * US_PER_DAY)
    month = cal.month_of(placed)
    first_statement = np.where(placed < cal.statements(month), month, month + 1)
    income = cust.income[owner]
    # Bigger earners carry bigger debts, so debt-to-income varies less than either.
    scale = PRODUCT_MEDIAN_AMOUNT[product] * (income / REFERENCE_INCOME) ** 0.4
    amount = np.round(scale * np.exp(PRODUCT_AMOUNT_SIGMA[product] * normal[:, 0]), 2)
    loan = PRODUCT_IS_LOAN[product]
    balance0 = np.where(loan, np.round(amount * (0.35 + 0.6 * u["paid"]), 2), amount)
    limit = np.where(loan, np.nan, np.round(amount * (0.9 + 0.5 * u["paid"]), -1) + 10.0)
    return Accounts(
        customer=owner,
        z=0.7 * cust.risk[owner] + 0.71 * normal[:, 1],
        income=income,
        product=product,
        pref_channel=pref,
        placed=placed,
        delinquent=delinquent,
        opened=opened,
        first_statement=first_statement,
        original=amount,
        credit_limit=limit,
        balance0=np.maximum(balance0, 5.0),
    )


def draw_population(
    rng: np.random.Generator, n: int, cal: Calendar, scenario: Scenario
) -> tuple[Customers, Accounts]:
    owner, cust = _draw_customers(rng, n)
    acc = _draw_accounts(rng, owner, cust, cal)
    # The customer record is opened when the first of their accounts is placed.
    first_placed = np.full(len(cust.income), np.iinfo(np.int64).max)
    np.minimum.at(first_placed, owner, acc.placed)
    offset = rng.random(len(cust.income)) * 3 * US_PER_DAY
    created = whole_seconds(first_placed - offset)
    income, reported = cust.income, cust.reported_income
    if scenario == "income_shock":
        shocked = created >= cal.drift_start
        income = np.where(shocked, np.round(income * SHOCK_INCOME, -1), income)
        reported = np.where(shocked, np.round(reported * SHOCK_INCOME, -1), reported)
        acc = replace(acc, income=income[owner])
    cust = Customers(income, reported, cust.region, cust.age, cust.sex, created, cust.risk)
    return cust, acc
