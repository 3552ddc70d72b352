"""Synthetic collections data with a known truth.

The generator simulates delinquent accounts month by month and writes the raw tables of
the contract (ingestion.contract) plus an oracle: for every scored (account, snapshot) the
exact probability that the label ``default_30d`` will be 1, given the generator's state.
Models can then be judged against the best achievable score, not only against each other.

How it keeps the label rule exact: every payment the simulation makes for snapshot t lies
inside (t, t + 30 days] and inside no other snapshot's window, each payment is >= 1.0, and
reversals are recorded within 20 days of the payment (so inside the 21-day label grace).
An account therefore defaults at t exactly when it does not pay, or when every payment it
made in the window is reversed, which is what the oracle's formula says.

Everything is vectorised over the accounts of one chunk; the only Python loops run over
chunks and months. Each chunk has its own random stream, SeedSequence(seed, (0, chunk)),
and every month draws arrays of fixed shape whatever the state, so a scenario that changes
outcomes in the drift window cannot shift the random numbers of earlier months.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
from rich.progress import Progress

from ingestion import contract, rawio

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1.3.0"

Scenario = Literal["none", "income_shock", "channel_shift"]
SCENARIOS: tuple[Scenario, ...] = ("none", "income_shock", "channel_shift")
DEFAULT_START = datetime(2024, 11, 1, tzinfo=UTC)
DEFAULT_DRIFT_MONTHS = 3

FloatArr = npt.NDArray[np.float64]
IntArr = npt.NDArray[np.int64]
BoolArr = npt.NDArray[np.bool_]

US_PER_SEC = 1_000_000
US_PER_HOUR = 3_600 * US_PER_SEC
US_PER_DAY = 24 * US_PER_HOUR
LABEL_WINDOW_DAYS = 30
LABEL_GRACE_DAYS = 21
# History before `start`, so that the first snapshots already see months of behaviour.
BURN_IN_MONTHS = 6
HISTORY_MONTHS = 6
STATEMENT_DAY = 25
# Per account and simulated month at most: 2 payments + 2 reversals, 4 contacts, 4 promises.
EVENTS_PER_ACCOUNT_MONTH = 4
MAX_ID = 10**10
CALIBRATION_ACCOUNTS = 4_000
ORACLE_BINS = 2_000

# --- behaviour parameters (indices follow the contract's vocabularies) -------------------

# credit_card, personal_loan, auto_loan, overdraft, telecom
PRODUCT_MIX = np.array([0.35, 0.20, 0.10, 0.15, 0.20])
PRODUCT_MEDIAN_AMOUNT = np.array([3000.0, 8000.0, 15000.0, 1200.0, 350.0])
PRODUCT_AMOUNT_SIGMA = np.array([0.7, 0.6, 0.5, 0.6, 0.6])
PRODUCT_MONTHLY_RATE = np.array([0.02, 0.01, 0.008, 0.015, 0.0])
PRODUCT_MIN_SHARE = np.array([0.05, 0.04, 0.03, 0.08, 0.25])
PRODUCT_MIN_FLOOR = np.array([25.0, 50.0, 100.0, 20.0, 10.0])
PRODUCT_LATE_FEE = np.array([25.0, 15.0, 20.0, 10.0, 5.0])
PRODUCT_RISK = np.array([0.0, -0.1, -0.35, 0.15, 0.3])
PRODUCT_IS_LOAN = np.array([False, True, True, False, False])
# Payment channels: bank_transfer, card, direct_debit, cash, mobile_app; rows = products.
PAYMENT_CHANNEL_MIX = np.array(
    [
        [0.30, 0.25, 0.20, 0.05, 0.20],
        [0.30, 0.10, 0.40, 0.05, 0.15],
        [0.30, 0.05, 0.50, 0.05, 0.10],
        [0.40, 0.15, 0.15, 0.10, 0.20],
        [0.15, 0.30, 0.15, 0.15, 0.25],
    ]
)
DIRECT_DEBIT = contract.PAYMENT_CHANNELS.index("direct_debit")
MOBILE_APP = contract.PAYMENT_CHANNELS.index("mobile_app")
# Contacts: phone, sms, email, letter.
CONTACT_CHANNEL_MIX = np.array([0.55, 0.20, 0.10, 0.15])
CONTACT_CHANNEL_MIX_SHIFTED = np.array([0.25, 0.40, 0.30, 0.05])
PHONE = contract.CONTACT_CHANNELS.index("phone")
PROMISE_TO_PAY = contract.CONTACT_OUTCOMES.index("promise_to_pay")

REGION_VOCAB = (*contract.REGIONS, "unknown")
REGION_MIX = np.array([0.20, 0.22, 0.20, 0.18, 0.18, 0.02])
REGION_MEDIAN_INCOME = np.array([2600.0, 1900.0, 2200.0, 2800.0, 3100.0, 2300.0])
AGE_VOCAB = (*contract.AGE_BANDS, "unknown")
AGE_MIX = np.array([0.12, 0.24, 0.22, 0.18, 0.13, 0.08, 0.03])
AGE_INCOME = np.array([0.7, 0.95, 1.1, 1.15, 1.05, 0.8, 1.0])
# How strongly state and behaviour separate payers from defaulters. Next-month payment in
# collections is quite predictable; at 1.3 the oracle reaches an AUC near 0.89 and a best
# F1 near 0.73 on 20,000 accounts, and an untuned model on our features comes within 2%.
RISK_SCALE = 1.3

# Protected attributes only shift latent risk mildly, as in real portfolios.
AGE_RISK = np.array([0.2, 0.08, 0.0, -0.05, -0.1, -0.1, 0.0])
SEX_MIX = np.array([0.48, 0.49, 0.03])
SEX_RISK = np.array([0.0, 0.03, 0.0])
INCOME_SIGMA = 0.5
INCOME_MISSING_SHARE = 0.04
REFERENCE_INCOME = 2300.0

# Season of the payment window: year-end dip in December, spring bump in March / April.
SEASON_LOGIT = np.array([0.1, 0.0, -0.2, -0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.05, 0.35])

REVERSAL_RATE = 0.03
SPLIT_RATE = 0.3
SPLIT_RATE_DIRECT_DEBIT = 0.05
LATE_FILE_SHARE = 0.08
SHOCK_INCOME = 0.6
SHOCK_AMOUNT = 0.7
SHOCK_LOGIT = 0.4
SHIFT_TO_MOBILE = 0.6
ALIGN_LOGIT = -1.5


class SyntheticConfigError(ValueError):
    """A generation request that cannot be honoured; the message names the setting."""


def month_start(text: str) -> datetime:
    """A YYYY-MM-DD date that is the first day of a month, as 00:00 UTC (the `start`)."""
    try:
        parsed = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise SyntheticConfigError(f"start {text!r}: not a date (use YYYY-MM-DD)") from None
    if parsed.day != 1:
        raise SyntheticConfigError(f"start {text!r}: not the first day of a month")
    return parsed


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig:
    """What to generate. `start` must be a month start at 00:00 UTC."""

    accounts: int
    months: int = 24
    seed: int
    start: datetime = DEFAULT_START
    default_rate: float = 0.25
    scenario: Scenario = "none"
    drift_months: int = DEFAULT_DRIFT_MONTHS
    chunk_accounts: int = 50_000

    def __post_init__(self) -> None:
        if self.accounts < 1 or self.chunk_accounts < 1 or self.months < 1:
            raise SyntheticConfigError("accounts, chunk_accounts and months must be positive")
        if self.accounts >= 10**8:
            raise SyntheticConfigError("account ids have 8 digits: at most 99,999,999 accounts")
        if self.accounts * _id_stride(self.months) >= MAX_ID:
            raise SyntheticConfigError("too many accounts x months for 10-digit event ids")
        if not 0.0 < self.default_rate < 1.0:
            raise SyntheticConfigError("default_rate must lie in (0, 1)")
        if self.scenario not in SCENARIOS:
            raise SyntheticConfigError(f"scenario must be one of {SCENARIOS}")
        self._check_drift()
        start = self.start
        if start.tzinfo is None or start.utcoffset() != pd.Timedelta(0):
            raise SyntheticConfigError(f"start {start}: must be timezone-aware UTC")
        if start != start.replace(day=1, hour=0, minute=0, second=0, microsecond=0):
            raise SyntheticConfigError(
                f"start {start}: must be the first day of a month at 00:00 UTC"
            )

    def _check_drift(self) -> None:
        if self.drift_months < 0:
            raise SyntheticConfigError("drift_months must not be negative")
        # A longer window would start in the burn-in, before the first month written, so
        # the data would hold no undrifted months to compare with (and the manifest would
        # claim a drift that is not in the data).
        if self.drift_months > self.months:
            raise SyntheticConfigError(
                f"drift_months {self.drift_months} is longer than the run (months "
                f"{self.months}): the drift window must lie inside the generated months"
            )

    @property
    def as_of(self) -> datetime:
        return (pd.Timestamp(self.start) + pd.DateOffset(months=self.months)).to_pydatetime()


@dataclass(frozen=True)
class GenerationSummary:
    """What generate() wrote.

    Default share (realised labels), oracle mean and AUC cover the matured population
    snapshots (t + 51 days <= as_of), or all of them when the run is too short for any.
    """

    out_dir: Path
    as_of: datetime
    row_counts: dict[str, int]
    seconds: float
    accounts_per_second: float
    intercept: float
    labelled_snapshots: int
    default_share: float
    oracle_mean: float
    oracle_auc: float


def _id_stride(months: int) -> int:
    """Id numbers reserved per account, so that chunks never collide."""
    return EVENTS_PER_ACCOUNT_MONTH * (months + BURN_IN_MONTHS + 1)


# --- calendar ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Calendar:
    """Month boundaries in microseconds; month m starts `m` months after `start`."""

    first: int
    months: int
    # month_start[m - first + 1] for m in first - 1 .. months + 1.
    month_start: IntArr
    # calendar_month[m - first + 1] in 0 (January) .. 11.
    calendar_month: IntArr
    as_of: int
    drift_from: int

    @classmethod
    def build(cls, config: SyntheticConfig) -> _Calendar:
        first = -BURN_IN_MONTHS
        base = np.datetime64(pd.Timestamp(config.start).tz_localize(None), "M")
        months = base + np.arange(first - 1, config.months + 2)
        starts = months.astype("datetime64[us]").astype(np.int64)
        # Without drift the window is empty, also for the as_of month itself; the config
        # keeps the window inside the run (SyntheticConfig._check_drift).
        drift = min(config.drift_months, config.months - first)
        drift_from = config.months - drift if drift else config.months + 1
        return cls(
            first=first,
            months=config.months,
            month_start=starts,
            calendar_month=(months.astype(np.int64) % 12).astype(np.int64),
            as_of=int(starts[config.months - first + 1]),
            drift_from=drift_from,
        )

    def t(self, m: int) -> int:
        return int(self.month_start[m - self.first + 1])

    def statement(self, m: int) -> int:
        return self.t(m) + (STATEMENT_DAY - 1) * US_PER_DAY

    def statements(self, m: IntArr) -> IntArr:
        return self.month_start[m - self.first + 1] + (STATEMENT_DAY - 1) * US_PER_DAY

    def pay_window(self, m: int) -> tuple[int, int]:
        """The part of snapshot m's label window that no other snapshot's window overlaps.

        After a short February the previous window reaches into March, so March's payments
        start later; in 31-day months the last day belongs to no window.
        """
        window = LABEL_WINDOW_DAYS * US_PER_DAY
        lo = max(self.t(m), self.t(m - 1) + window)
        hi = min(self.t(m) + window, self.t(m + 1))
        return lo, hi

    def season(self, m: int) -> float:
        return float(SEASON_LOGIT[self.calendar_month[m - self.first + 1]])

    def matured(self, m: int) -> bool:
        return self.t(m) + (LABEL_WINDOW_DAYS + LABEL_GRACE_DAYS) * US_PER_DAY <= self.as_of

    def counted(self, m: int) -> bool:
        """Snapshots the calibration and the summary cover: matured ones, or all if none is."""
        return self.matured(m) or not self.matured(1)

    def month_of(self, us: IntArr) -> IntArr:
        idx = np.searchsorted(self.month_start, us, side="right") - 1
        return (idx + self.first - 1).astype(np.int64)

    def in_drift(self, m: int) -> bool:
        return m >= self.drift_from

    @property
    def drift_start(self) -> int:
        """First microsecond of the drift window (after as_of when there is none)."""
        return self.t(self.drift_from) if self.drift_from <= self.months else self.as_of + 1


# --- small helpers -------------------------------------------------------------------------


def _sigmoid(x: FloatArr) -> FloatArr:
    return 1.0 / (1.0 + np.exp(-x))


def _uniforms(
    rng: np.random.Generator, n: int, spec: dict[str, int], rows: IntArr | None = None
) -> dict[str, FloatArr]:
    """One block of uniforms, cut into named columns.

    The block always has n rows whatever the state, so the stream stays aligned; `rows`
    then keeps only the rows the caller needs.
    """
    block = rng.random((n, sum(spec.values())))
    if rows is not None:
        block = block[rows]
    out: dict[str, FloatArr] = {}
    col = 0
    for name, width in spec.items():
        out[name] = block[:, col] if width == 1 else block[:, col : col + width]
        col += width
    return out


def _pick(cdf: FloatArr, u: FloatArr) -> IntArr:
    """Inverse-CDF draw: cdf is (k,) or (n, k), u is (n,) or (n, w)."""
    if cdf.ndim == 1:
        return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1).astype(np.int64)
    if u.ndim == 1:
        return np.minimum((u[:, None] >= cdf).sum(axis=1), cdf.shape[1] - 1).astype(np.int64)
    return np.minimum((u[:, :, None] >= cdf[:, None, :]).sum(axis=2), cdf.shape[1] - 1).astype(
        np.int64
    )


def _whole_seconds(us: FloatArr) -> IntArr:
    return (np.floor(us / US_PER_SEC) * US_PER_SEC).astype(np.int64)


def _split_rate(pref_channel: IntArr, outstanding: FloatArr) -> FloatArr:
    """Chance that a paying account pays in two instalments (each must be >= 1.0)."""
    rate = np.where(pref_channel == DIRECT_DEBIT, SPLIT_RATE_DIRECT_DEBIT, SPLIT_RATE)
    return np.where(outstanding >= 2.0, rate, 0.0)


class _Sink:
    """Collects event columns month by month; a disabled sink (calibration) keeps nothing."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._parts: dict[str, list[dict[str, npt.NDArray[np.generic]]]] = {}

    def add(self, table: str, keep: BoolArr, **columns: npt.NDArray[np.generic]) -> None:
        if self.enabled:
            self._parts.setdefault(table, []).append({k: v[keep] for k, v in columns.items()})

    def columns(self, table: str, names: Sequence[str]) -> dict[str, npt.NDArray[np.generic]]:
        parts = self._parts.get(table, [])
        if not parts:
            return {name: np.zeros(0, np.int64) for name in names}
        return {name: np.concatenate([p[name] for p in parts]) for name in names}


@dataclass
class _Stats:
    """Oracle probabilities and realised labels of matured snapshots, binned for the AUC."""

    positives: IntArr = field(default_factory=lambda: np.zeros(ORACLE_BINS, np.int64))
    negatives: IntArr = field(default_factory=lambda: np.zeros(ORACLE_BINS, np.int64))
    p_sum: float = 0.0

    def add(self, p: FloatArr, label: BoolArr) -> None:
        bins = np.minimum((p * ORACLE_BINS).astype(np.int64), ORACLE_BINS - 1)
        self.positives += np.bincount(bins[label], minlength=ORACLE_BINS)
        self.negatives += np.bincount(bins[~label], minlength=ORACLE_BINS)
        self.p_sum += float(p.sum())

    def merge(self, other: _Stats) -> None:
        self.positives += other.positives
        self.negatives += other.negatives
        self.p_sum += other.p_sum

    @property
    def rows(self) -> int:
        return int(self.positives.sum() + self.negatives.sum())

    @property
    def default_share(self) -> float:
        return float(self.positives.sum()) / max(self.rows, 1)

    @property
    def mean_p(self) -> float:
        return self.p_sum / max(self.rows, 1)

    @property
    def auc(self) -> float:
        """Rank AUC with ties inside a bin counted as half."""
        pos, neg = self.positives.astype(float), self.negatives.astype(float)
        below = np.cumsum(neg) - neg
        pairs = pos.sum() * neg.sum()
        return float((pos * (below + 0.5 * neg)).sum() / pairs) if pairs else float("nan")


# --- the population: customers and accounts of one chunk ---------------------------------


@dataclass(frozen=True)
class _Customers:
    income: FloatArr  # the truth; the oracle uses it even where the reported one is missing
    reported_income: FloatArr
    region: IntArr
    age: IntArr
    sex: IntArr
    created: IntArr
    risk: FloatArr


@dataclass(frozen=True)
class _Accounts:
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


def _draw_customers(rng: np.random.Generator, n: int) -> tuple[IntArr, _Customers]:
    """Enough customers for n accounts (1.25 each on average) and their attributes.

    Returns the customer of every account; `created` is filled in once placements exist.
    """
    u = _uniforms(rng, n, {"count": 1, "region": 1, "age": 1, "sex": 1, "missing": 1})
    normal = rng.standard_normal((n, 2))
    per_customer = _pick(np.cumsum([0.8, 0.15, 0.05]), u["count"]) + 1
    n_customers = int(np.searchsorted(np.cumsum(per_customer), n) + 1)
    owner = np.repeat(np.arange(n_customers), per_customer[:n_customers])[:n]
    region = _pick(np.cumsum(REGION_MIX), u["region"][:n_customers])
    age = _pick(np.cumsum(AGE_MIX), u["age"][:n_customers])
    sex = _pick(np.cumsum(SEX_MIX), u["sex"][:n_customers])
    income = np.round(
        REGION_MEDIAN_INCOME[region]
        * AGE_INCOME[age]
        * np.exp(INCOME_SIGMA * normal[:n_customers, 0]),
        -1,
    )
    reported = np.where(u["missing"][:n_customers] < INCOME_MISSING_SHARE, np.nan, income)
    risk = AGE_RISK[age] + SEX_RISK[sex] + normal[:n_customers, 1]
    empty = np.zeros(n_customers, np.int64)
    return owner, _Customers(income, reported, region, age, sex, empty, risk)


def _draw_accounts(
    rng: np.random.Generator, owner: IntArr, cust: _Customers, cal: _Calendar
) -> _Accounts:
    n = len(owner)
    u = _uniforms(rng, n, {"product": 1, "channel": 1, "placed": 1, "late": 1, "age": 1, "paid": 1})
    normal = rng.standard_normal((n, 2))
    product = _pick(np.cumsum(PRODUCT_MIX), u["product"])
    pref = _pick(np.cumsum(PAYMENT_CHANNEL_MIX, axis=1)[product], u["channel"])
    lo, hi = cal.t(cal.first), cal.t(cal.months - 2)
    placed = _whole_seconds(lo + u["placed"] * (hi - lo))
    delinquent = _whole_seconds(placed - (30 + 150 * u["late"]) * US_PER_DAY)
    opened = _whole_seconds(delinquent - (90 + 3560 * u["age"]) * US_PER_DAY)
    month = cal.month_of(placed)
    first_statement = np.where(placed < cal.statements(month), month, month + 1)
    income = cust.income[owner]
    # Bigger earners carry bigger debts, so debt-to-income varies less than either.
    scale = PRODUCT_MEDIAN_AMOUNT[product] * (income / REFERENCE_INCOME) ** 0.4
    amount = np.round(scale * np.exp(PRODUCT_AMOUNT_SIGMA[product] * normal[:, 0]), 2)
    loan = PRODUCT_IS_LOAN[product]
    balance0 = np.where(loan, np.round(amount * (0.35 + 0.6 * u["paid"]), 2), amount)
    limit = np.where(loan, np.nan, np.round(amount * (0.9 + 0.5 * u["paid"]), -1) + 10.0)
    return _Accounts(
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


def _draw_population(
    rng: np.random.Generator, n: int, cal: _Calendar, scenario: Scenario
) -> tuple[_Customers, _Accounts]:
    owner, cust = _draw_customers(rng, n)
    acc = _draw_accounts(rng, owner, cust, cal)
    # The customer record is opened when the first of their accounts is placed.
    first_placed = np.full(len(cust.income), np.iinfo(np.int64).max)
    np.minimum.at(first_placed, owner, acc.placed)
    offset = rng.random(len(cust.income)) * 3 * US_PER_DAY
    created = _whole_seconds(first_placed - offset)
    income, reported = cust.income, cust.reported_income
    if scenario == "income_shock":
        shocked = created >= cal.drift_start
        income = np.where(shocked, np.round(income * SHOCK_INCOME, -1), income)
        reported = np.where(shocked, np.round(reported * SHOCK_INCOME, -1), reported)
        acc = replace(acc, income=income[owner])
    cust = _Customers(income, reported, cust.region, cust.age, cust.sex, created, cust.risk)
    return cust, acc


# --- the monthly simulation ----------------------------------------------------------------


@dataclass
class _State:
    """What the collector knows about each account after the last statement."""

    balance: FloatArr
    carry: FloatArr  # net paid since the last statement
    min_due: FloatArr
    dpd: IntArr
    closed: BoolArr
    stmt1: BoolArr  # had a statement last month
    stmt2: BoolArr  # had a statement the month before
    paid: BoolArr  # (n, 6) ring of months paid
    seen: BoolArr  # (n, 6) ring of months scored
    broken: FloatArr  # decayed count of broken promises

    @classmethod
    def empty(cls, n: int) -> _State:
        return cls(
            balance=np.zeros(n),
            carry=np.zeros(n),
            min_due=np.zeros(n),
            dpd=np.zeros(n, np.int64),
            closed=np.zeros(n, bool),
            stmt1=np.zeros(n, bool),
            stmt2=np.zeros(n, bool),
            paid=np.zeros((n, HISTORY_MONTHS), bool),
            seen=np.zeros((n, HISTORY_MONTHS), bool),
            broken=np.zeros(n),
        )


@dataclass(frozen=True)
class _Snapshot:
    pop: BoolArr  # scored at t: placed before t with a statement in the 45 days before
    open: BoolArr  # scored and still owing at least 1.0
    p_pay_not: FloatArr  # latent chance of not paying in the window
    p_label: FloatArr  # P(default_30d = 1), reversals included


@dataclass(frozen=True)
class _Paid:
    pays: BoolArr
    label: BoolArr  # realised default_30d (meaningful where pop)
    net_before: FloatArr  # net paid before this month's statement
    net_after: FloatArr
    first_at: IntArr
    first_amount: FloatArr


def _risk_logit(acc: _Accounts, st: _State) -> FloatArr:
    """Latent risk from observable state; each term has a feature that can see it."""
    months_paid = (st.paid & st.seen).sum(axis=1)
    paid_rate = (months_paid + 1.0) / (st.seen.sum(axis=1) + 2.0)
    debt_to_income = np.clip(np.log(np.maximum(st.balance, 1.0) / acc.income), -3.0, 3.0)
    return RISK_SCALE * (
        0.9 * acc.z
        + 0.3 * np.minimum(st.dpd, 360) / 90.0
        + 0.35 * debt_to_income
        - 2.0 * (paid_rate - 0.5)
        + 0.3 * np.minimum(st.broken, 3.0)
        + PRODUCT_RISK[acc.product]
        - 0.5 * (acc.pref_channel == DIRECT_DEBIT)
        - 0.2 * np.log(acc.income / REFERENCE_INCOME)
    )


@dataclass
class _Run:
    """One chunk's simulation: its accounts, their state and where the events go."""

    acc: _Accounts
    st: _State
    cal: _Calendar
    rng: np.random.Generator
    sink: _Sink
    alpha: float
    scenario: Scenario

    def drift(self, m: int) -> Scenario | None:
        """The scenario in force in month m (None outside the drift window)."""
        return self.scenario if self.scenario != "none" and self.cal.in_drift(m) else None


def _snapshot(run: _Run, m: int) -> _Snapshot:
    acc, st = run.acc, run.st
    pop = st.stmt1 | st.stmt2
    outstanding = st.balance - st.carry
    open_ = pop & ~st.closed & (outstanding >= 1.0)
    shock = SHOCK_LOGIT if run.drift(m) == "income_shock" else 0.0
    logit = run.alpha + _risk_logit(acc, st) + run.cal.season(m) + shock
    # A paid-off account still scored has nothing left to pay: it cannot avoid the label.
    p = np.where(open_, _sigmoid(logit), 1.0)
    split = _split_rate(acc.pref_channel, outstanding)
    all_reversed = REVERSAL_RATE * (1.0 - split) + REVERSAL_RATE**2 * split
    return _Snapshot(pop, open_, p, p + (1.0 - p) * all_reversed)


def _payment_amounts(
    run: _Run, u: dict[str, FloatArr], normal: FloatArr, shock: bool
) -> tuple[FloatArr, FloatArr, BoolArr]:
    """Two instalments (the second 0 unless split), each >= 1.0, together <= what is owed."""
    acc, st = run.acc, run.st
    owed = np.maximum(st.balance - st.carry, 1.0)
    direct_debit = acc.pref_channel == DIRECT_DEBIT
    # Direct debits pull exactly the minimum; other payers pay around it.
    usual = np.where(direct_debit, st.min_due, st.min_due * np.exp(0.1 + 0.4 * normal))
    usual = usual * (SHOCK_AMOUNT if shock else 1.0)
    in_full = u["full"] < np.clip(40.0 / owed, 0.01, 0.3)
    split = u["split"] < _split_rate(acc.pref_channel, owed)
    total = np.where(in_full, owed, usual)
    total = np.round(np.clip(total, np.where(split, 2.0, 1.0), owed), 2)
    share = np.clip(total * (0.3 + 0.4 * u["share"]), 1.0, np.maximum(total - 1.0, 1.0))
    first = np.where(split, np.round(share, 2), total)
    second = np.where(split, np.round(total - first, 2), 0.0)
    return first, second, split


def _payment_channels(acc: _Accounts, u: dict[str, FloatArr], shift: bool) -> IntArr:
    """Mostly the account's usual channel; the channel_shift scenario moves to the app."""
    cdf = np.cumsum(PAYMENT_CHANNEL_MIX, axis=1)[acc.product]
    other = _pick(cdf, u["other"])
    channel = np.where(u["usual"] < 0.85, acc.pref_channel[:, None], other)
    if shift:
        channel = np.where(u["shift"] < SHIFT_TO_MOBILE, MOBILE_APP, channel)
    return channel.astype(np.int64)


def _payment_times(cal: _Calendar, m: int, u: dict[str, FloatArr]) -> tuple[IntArr, IntArr, IntArr]:
    """Paid, recorded and reversal-recorded times, each (n, 2)."""
    lo, hi = cal.pay_window(m)
    span_days = (hi - lo) // US_PER_DAY
    # Whole days 1 .. span-1 plus a time of day keeps every payment strictly inside (lo, hi).
    days = 1 + np.floor(u["day"] * (span_days - 1))
    paid = _whole_seconds(lo + days * US_PER_DAY + u["time"] * US_PER_DAY)
    late_file = u["late"] < LATE_FILE_SHARE
    lag_days = np.where(late_file, 3.0 + 15.0 * u["lag"], 3.0 * u["lag"])
    recorded = paid + _whole_seconds(lag_days * US_PER_DAY)
    # The bank reports a reversal after the payment and within 20 days of it.
    reversal = np.minimum(
        recorded + _whole_seconds((1.0 + 9.0 * u["rev_lag"]) * US_PER_DAY),
        paid + 20 * US_PER_DAY,
    )
    return paid, recorded, reversal


PAYMENT_DRAWS = {
    "pay": 1,
    "full": 1,
    "split": 1,
    "share": 1,
    "day": 2,
    "time": 2,
    "late": 2,
    "lag": 2,
    "reverse": 2,
    "rev_lag": 2,
    "usual": 2,
    "other": 2,
    "shift": 2,
}


def _payments(run: _Run, m: int, snap: _Snapshot) -> _Paid:
    acc, cal = run.acc, run.cal
    u = _uniforms(run.rng, acc.n, PAYMENT_DRAWS)
    normal = run.rng.standard_normal(acc.n)
    pays = snap.open & (u["pay"] >= snap.p_pay_not)
    first, second, split = _payment_amounts(run, u, normal, run.drift(m) == "income_shock")
    paid, recorded, reversal = _payment_times(cal, m, u)
    channel = _payment_channels(acc, u, run.drift(m) == "channel_shift")
    made = np.stack([pays, pays & split], axis=1)
    reversed_ = made & (u["reverse"] < REVERSAL_RATE)
    amount = np.stack([first, second], axis=1)
    account = np.broadcast_to(np.arange(acc.n)[:, None], made.shape)
    for status, keep, at in ((0, made, recorded), (1, reversed_, reversal)):
        run.sink.add(
            "payments",
            keep & (at <= cal.as_of),
            account=account,
            paid_at=paid,
            amount=amount,
            channel=channel,
            status=np.full(made.shape, status),
            recorded_at=at,
        )
    net = np.where(made & ~reversed_, amount, 0.0)
    before = paid < cal.statement(m)
    return _Paid(
        pays=pays,
        label=np.asarray(~(made & ~reversed_).any(axis=1)),
        net_before=np.where(before, net, 0.0).sum(axis=1),
        net_after=np.where(before, 0.0, net).sum(axis=1),
        first_at=paid[:, 0],
        first_amount=first,
    )


# --- contacts and promises -----------------------------------------------------------------

CONTACT_DRAWS = {
    "count": 3,
    "time": 4,
    "channel": 4,
    "outcome": 4,
    "lag": 4,
    "late": 4,
    "align": 1,
    "back": 1,
    "due": 4,
    "promised": 4,
}


def _outcome_cdfs(z: FloatArr, pays: BoolArr) -> tuple[FloatArr, FloatArr]:
    """Outcome CDFs by phone and by other channels: riskier debtors answer less, refuse more."""
    paying = pays.astype(float)
    logits = np.stack(
        [
            0.5 + 0.5 * z,  # no_answer
            0.4 - 0.3 * z + 0.3 * paying,  # right_party_contact
            np.full_like(z, -1.8),  # wrong_party
            -1.0 + 0.6 * z - 0.4 * paying,  # refused
            # Those who will not pay promise more often: promises they then break.
            0.0 + 0.2 * z - 1.0 * paying,  # promise_to_pay
        ],
        axis=1,
    )
    # Letters, texts and e-mails mostly go unanswered and are rarely refused outright.
    remote = logits + np.array([1.5, 0.0, 0.0, -0.5, 0.0])
    cdfs = []
    for lg in (logits, remote):
        w = np.exp(lg - lg.max(axis=1, keepdims=True))
        cdfs.append(np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1))
    return cdfs[0], cdfs[1]


@dataclass(frozen=True)
class _Contacts:
    """Contacts of the open accounts `rows`; slot arrays are (len(rows), 4)."""

    rows: IntArr
    valid: BoolArr
    at: IntArr
    recorded: IntArr
    channel: IntArr
    outcome: IntArr
    aligned: BoolArr  # slot 0 is the promise the first payment keeps


def _contact_outcomes(z: FloatArr, pays: BoolArr, phone: BoolArr, u: FloatArr) -> IntArr:
    phone_cdf, remote_cdf = _outcome_cdfs(z, pays)
    cdf = np.where(phone[:, :, None], phone_cdf[:, None, :], remote_cdf[:, None, :])
    return np.minimum((u[:, :, None] >= cdf).sum(axis=2), cdf.shape[2] - 1).astype(np.int64)


def _draw_contacts(
    run: _Run, m: int, snap: _Snapshot, paid: _Paid, u: dict[str, FloatArr]
) -> _Contacts:
    """Contacts of the open accounts; `u` holds their draws only."""
    rows = np.flatnonzero(snap.open)
    z, pays, first_at = run.acc.z[rows], paid.pays[rows], paid.first_at[rows]
    intensity = _sigmoid(-0.6 + 0.4 * z + 0.25 * np.minimum(run.st.dpd[rows], 360) / 90.0)
    count = 1 + (u["count"] < intensity[:, None]).sum(axis=1)
    valid = np.arange(4)[None, :] < count[:, None]
    start, length = run.cal.t(m), run.cal.t(m + 1) - run.cal.t(m)
    at = _whole_seconds(start + u["time"] * length)
    shift = run.drift(m) == "channel_shift"
    channel = _pick(
        np.cumsum(CONTACT_CHANNEL_MIX_SHIFTED if shift else CONTACT_CHANNEL_MIX), u["channel"]
    )
    outcome = _contact_outcomes(z, pays, channel == PHONE, u["outcome"])
    # Reliable debtors often pay right after promising by phone: that promise is kept.
    aligned = pays & (u["align"] < _sigmoid(ALIGN_LOGIT - 1.2 * z))
    back = u["back"] * np.minimum(6 * US_PER_DAY, first_at - start - US_PER_SEC)
    at[:, 0] = np.where(aligned, first_at - _whole_seconds(back), at[:, 0])
    channel[:, 0] = np.where(aligned, PHONE, channel[:, 0])
    outcome[:, 0] = np.where(aligned, PROMISE_TO_PAY, outcome[:, 0])
    lag_hours = np.where(u["late"] < 0.15, 4.0 + 44.0 * u["lag"], 4.0 * u["lag"])
    recorded = at + _whole_seconds(lag_hours * US_PER_HOUR)
    return _Contacts(rows, valid, at, recorded, channel, outcome, aligned)


def _promised_amounts(run: _Run, c: _Contacts, paid: _Paid, u: FloatArr) -> FloatArr:
    # Ordinary promises are for more than the usual payment, so luck rarely keeps them.
    usual = np.maximum(run.st.min_due[c.rows, None] * (1.2 + 1.0 * u), 1.0)
    # 0.92..1.1 keeps the kept promise's payment above 90 % of the promised amount.
    kept = paid.first_amount[c.rows, None] * (0.92 + 0.18 * u)
    kept_slot = c.aligned[:, None] & (np.arange(4)[None, :] == 0)
    return np.where(kept_slot, kept, usual).round(2)


def _contacts(run: _Run, m: int, snap: _Snapshot, paid: _Paid) -> FloatArr:
    """Contacts and the promises made on them; returns promises broken per account."""
    # Only open accounts are contacted.
    u = _uniforms(run.rng, run.acc.n, CONTACT_DRAWS, rows=np.flatnonzero(snap.open))
    c = _draw_contacts(run, m, snap, paid, u)
    account = np.broadcast_to(c.rows[:, None], c.valid.shape)
    written = c.valid & (c.recorded <= run.cal.as_of)
    run.sink.add(
        "contacts",
        written,
        account=account,
        contacted_at=c.at,
        channel=c.channel,
        outcome=c.outcome,
        recorded_at=c.recorded,
    )
    promise = c.valid & (c.outcome == PROMISE_TO_PAY)
    due = c.at + (7 + np.floor(u["due"] * 8)).astype(np.int64) * US_PER_DAY
    run.sink.add(
        "promises",
        promise & written,
        account=account,
        made_at=c.at,
        promised_amount=_promised_amounts(run, c, paid, u["promised"]),
        due_date=due,
        recorded_at=c.recorded,
    )
    broken = np.zeros(run.acc.n)
    broken[c.rows] = (promise & ~paid.pays[c.rows, None]).sum(axis=1)
    return broken


# --- statements and memory -----------------------------------------------------------------


def _statements(run: _Run, m: int, paid: _Paid) -> None:
    """Month m's statement on the 25th: interest, late fee, days past due, pay-off."""
    acc, st, cal = run.acc, run.st, run.cal
    date = cal.statement(m)
    new = acc.first_statement == m
    old = (acc.first_statement < m) & ~st.closed
    paid_between = st.carry + paid.net_before
    covered = paid_between >= st.min_due - 0.005
    remaining = st.balance - paid_between
    closes = old & (remaining < 1.0)
    kept_on = old & ~closes
    grown = np.maximum(remaining, 0.0) * (1.0 + PRODUCT_MONTHLY_RATE[acc.product])
    grown = np.round(grown + np.where(covered, 0.0, PRODUCT_LATE_FEE[acc.product]), 2)
    gap_days = (date - cal.statement(m - 1)) // US_PER_DAY
    first_dpd = (date - acc.delinquent) // US_PER_DAY
    st.balance = np.where(new, acc.balance0, np.where(kept_on, grown, st.balance))
    dpd = np.where(kept_on, np.where(covered, 0, st.dpd + gap_days), st.dpd)
    st.dpd = np.where(new, first_dpd, dpd)
    st.closed = st.closed | closes
    issued = new | kept_on
    st.carry = np.where(issued, paid.net_after, 0.0)
    share = PRODUCT_MIN_SHARE[acc.product] * st.balance
    minimum = np.minimum(st.balance, np.maximum(PRODUCT_MIN_FLOOR[acc.product], share))
    st.min_due = np.where(issued, np.round(minimum, 2), st.min_due)
    st.stmt2, st.stmt1 = st.stmt1, issued
    if date <= cal.as_of:
        run.sink.add(
            "statements",
            issued,
            account=np.arange(acc.n),
            statement_date=np.full(acc.n, date),
            balance=st.balance,
            minimum_due=st.min_due,
            days_past_due=st.dpd,
        )


def _remember(run: _Run, m: int, snap: _Snapshot, paid: _Paid, broken: FloatArr) -> None:
    st = run.st
    slot = m % HISTORY_MONTHS
    st.paid[:, slot] = snap.open & ~paid.label
    st.seen[:, slot] = snap.open
    # Old broken promises weigh less: halve every month.
    st.broken = 0.5 * st.broken + broken


def _simulate(run: _Run, stats: _Stats) -> None:
    n, cal = run.acc.n, run.cal
    for m in range(cal.first, cal.months + 1):
        snap = _snapshot(run, m)
        paid = _payments(run, m, snap)
        broken = _contacts(run, m, snap, paid)
        _statements(run, m, paid)
        _remember(run, m, snap, paid, broken)
        if m < 1:
            continue
        t = np.full(n, cal.t(m))
        run.sink.add("_oracle", snap.pop, account=np.arange(n), snapshot_at=t, p=snap.p_label)
        if cal.counted(m):
            # Only open snapshots get labels: with nothing owed there is nothing to collect.
            stats.add(snap.p_label[snap.open], paid.label[snap.open])


# --- calibration ---------------------------------------------------------------------------


def _calibration_share(config: SyntheticConfig, cal: _Calendar, alpha: float) -> float:
    """Mean oracle probability of a fixed calibration sample under scenario 'none'."""
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(1,)))
    _, acc = _draw_population(rng, CALIBRATION_ACCOUNTS, cal, "none")
    stats = _Stats()
    run = _Run(acc, _State.empty(acc.n), cal, rng, _Sink(enabled=False), alpha, "none")
    _simulate(run, stats)
    return stats.mean_p


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1.0 - 1e-9)
    return float(np.log(p / (1.0 - p)))


def _solve_intercept(share: Callable[[float], float], target: float) -> float:
    """Secant steps on the logit of the share, which is nearly linear in the intercept."""
    goal = _logit(target)
    a0, a1 = -2.0, 0.0
    g0, g1 = _logit(share(a0)) - goal, _logit(share(a1)) - goal
    for _ in range(30):
        if abs(g1) < 1e-3 or g1 == g0:
            break
        a0, a1 = a1, float(np.clip(a1 - g1 * (a1 - a0) / (g1 - g0), -15.0, 15.0))
        g0, g1 = g1, _logit(share(a1)) - goal
    if abs(g1) > 0.05:
        # Extreme targets can lie outside what the behaviour model can produce.
        log.warning("default share %.3f is out of reach; got %.3f", target, _logit_inv(g1 + goal))
    return a1


def _logit_inv(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def calibrate_intercept(config: SyntheticConfig) -> float:
    """The intercept that makes the matured default share equal config.default_rate."""
    cal = _Calendar.build(config)
    return _solve_intercept(lambda a: _calibration_share(config, cal, a), config.default_rate)


# --- writing -------------------------------------------------------------------------------

ORACLE_DIR = "_oracle"
TABLE_NAMES = tuple(t.name for t in contract.REQUIRED_TABLES)


def _ids(prefix: str, numbers: IntArr, width: int) -> pd.arrays.ArrowStringArray:
    """Zero-padded ids built as bytes: formatting millions of strings in Python is slow."""
    digits = np.empty((len(numbers), width + 1), np.uint8)
    digits[:, 0] = ord(prefix)
    rest = numbers.astype(np.int64)
    for col in range(width, 0, -1):
        digits[:, col] = rest % 10 + ord("0")
        rest = rest // 10
    offsets = np.arange(len(numbers) + 1, dtype=np.int64) * (width + 1)
    array = pa.LargeStringArray.from_buffers(
        len(numbers), pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(digits))
    )
    return pd.arrays.ArrowStringArray(array)


def _labels(vocab: Sequence[str], codes: npt.NDArray[np.generic]) -> pd.arrays.ArrowStringArray:
    return pd.arrays.ArrowStringArray(pa.array(vocab, pa.large_string()).take(pa.array(codes)))


def _times(us: npt.NDArray[np.generic]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.asarray(us, np.int64).view("datetime64[us]")).tz_localize("UTC")


@dataclass(frozen=True)
class _ChunkWriter:
    """Writes one chunk's part of every table; ids are numbered from the chunk's first account."""

    out_dir: Path
    part: int
    base: int
    stride: int

    def account_ids(self, local: npt.NDArray[np.generic]) -> pd.arrays.ArrowStringArray:
        return _ids("A", self.base + np.asarray(local, np.int64) + 1, 8)

    def event_ids(self, prefix: str, n: int) -> pd.arrays.ArrowStringArray:
        return _ids(prefix, self.base * self.stride + np.arange(n) + 1, 10)

    def write(self, table: str, frame: dict[str, object]) -> int:
        df = pd.DataFrame(frame)
        # Keep strings in Arrow end to end; the default Python storage would box every value.
        with pd.option_context("mode.string_storage", "pyarrow"):
            if table == ORACLE_DIR:
                path = self.out_dir / ORACLE_DIR / f"part-{self.part:05d}.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                df.to_parquet(path, index=False)
            else:
                rawio.write_part(df, self.out_dir, table, self.part)
        return len(df)


def _write_reference(w: _ChunkWriter, cust: _Customers, acc: _Accounts) -> dict[str, int]:
    customers = {
        "customer_id": _ids("C", w.base + np.arange(len(cust.income)) + 1, 8),
        "monthly_income": cust.reported_income,
        "region": _labels(REGION_VOCAB, cust.region),
        "created_at": _times(cust.created),
        "age_band": _labels(AGE_VOCAB, cust.age),
        "sex": _labels(contract.SEXES, cust.sex),
    }
    accounts = {
        "account_id": w.account_ids(np.arange(acc.n)),
        "customer_id": _ids("C", w.base + acc.customer + 1, 8),
        "product": _labels(contract.PRODUCTS, acc.product),
        "credit_limit": acc.credit_limit,
        "original_amount": acc.original,
        "opened_at": _times(acc.opened),
        "delinquent_since": _times(acc.delinquent),
        "placed_at": _times(acc.placed),
    }
    return {"customers": w.write("customers", customers), "accounts": w.write("accounts", accounts)}


def _write_statements(w: _ChunkWriter, sink: _Sink) -> int:
    s = sink.columns(
        "statements", ("account", "statement_date", "balance", "minimum_due", "days_past_due")
    )
    return w.write(
        "statements",
        {
            "account_id": w.account_ids(s["account"]),
            "statement_date": _times(s["statement_date"]),
            "balance": s["balance"],
            "minimum_due": s["minimum_due"],
            "days_past_due": s["days_past_due"],
        },
    )


def _write_payments(w: _ChunkWriter, sink: _Sink) -> int:
    p = sink.columns(
        "payments", ("account", "paid_at", "amount", "channel", "status", "recorded_at")
    )
    return w.write(
        "payments",
        {
            "payment_id": w.event_ids("P", len(p["account"])),
            "account_id": w.account_ids(p["account"]),
            "paid_at": _times(p["paid_at"]),
            "amount": p["amount"],
            "channel": _labels(contract.PAYMENT_CHANNELS, p["channel"]),
            "status": _labels(contract.PAYMENT_STATUSES, p["status"]),
            "recorded_at": _times(p["recorded_at"]),
        },
    )


def _write_contacts(w: _ChunkWriter, sink: _Sink) -> int:
    c = sink.columns("contacts", ("account", "contacted_at", "channel", "outcome", "recorded_at"))
    return w.write(
        "contacts",
        {
            "contact_id": w.event_ids("K", len(c["account"])),
            "account_id": w.account_ids(c["account"]),
            "contacted_at": _times(c["contacted_at"]),
            "channel": _labels(contract.CONTACT_CHANNELS, c["channel"]),
            "outcome": _labels(contract.CONTACT_OUTCOMES, c["outcome"]),
            "recorded_at": _times(c["recorded_at"]),
        },
    )


def _write_promises(w: _ChunkWriter, sink: _Sink) -> int:
    p = sink.columns(
        "promises", ("account", "made_at", "promised_amount", "due_date", "recorded_at")
    )
    return w.write(
        "promises",
        {
            "promise_id": w.event_ids("R", len(p["account"])),
            "account_id": w.account_ids(p["account"]),
            "made_at": _times(p["made_at"]),
            "promised_amount": p["promised_amount"],
            "due_date": _times(p["due_date"]),
            "recorded_at": _times(p["recorded_at"]),
        },
    )


def _write_oracle(w: _ChunkWriter, sink: _Sink) -> int:
    o = sink.columns(ORACLE_DIR, ("account", "snapshot_at", "p"))
    frame = {
        "account_id": w.account_ids(o["account"]),
        "snapshot_at": _times(o["snapshot_at"]),
        "p_default": np.asarray(o["p"], np.float64),
    }
    return w.write(ORACLE_DIR, frame)


def _write_chunk(w: _ChunkWriter, cust: _Customers, acc: _Accounts, sink: _Sink) -> dict[str, int]:
    counts = _write_reference(w, cust, acc)
    counts["statements"] = _write_statements(w, sink)
    counts["payments"] = _write_payments(w, sink)
    counts["contacts"] = _write_contacts(w, sink)
    counts["promises"] = _write_promises(w, sink)
    counts[ORACLE_DIR] = _write_oracle(w, sink)
    return counts


def _clear(out_dir: Path) -> None:
    """Drop old parts, also of the optional outcomes table, which would override labels."""
    for table in contract.ALL_TABLES:
        rawio.clear_table(out_dir, table.name)
    for path in (out_dir / ORACLE_DIR).glob("*.parquet"):
        path.unlink()


def _write_manifest(
    config: SyntheticConfig, out_dir: Path, counts: dict[str, int], alpha: float
) -> None:
    manifest = {
        "source": "synthetic",
        "as_of": config.as_of.isoformat(),
        "start": config.start.isoformat(),
        "months": config.months,
        "accounts": config.accounts,
        "seed": config.seed,
        "scenario": config.scenario,
        "drift_months": config.drift_months,
        "default_rate_target": config.default_rate,
        "chunk_accounts": config.chunk_accounts,
        "intercept": alpha,
        "row_counts": counts,
        "generator_version": GENERATOR_VERSION,
    }
    (out_dir / "_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


# --- entry point ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _SimulatedChunk:
    writer: _ChunkWriter
    cust: _Customers
    acc: _Accounts
    sink: _Sink
    stats: _Stats

    def write(self) -> dict[str, int]:
        return _write_chunk(self.writer, self.cust, self.acc, self.sink)


def _simulate_chunk(
    config: SyntheticConfig, cal: _Calendar, alpha: float, chunk: int, out_dir: Path
) -> _SimulatedChunk:
    base = chunk * config.chunk_accounts
    n = min(config.chunk_accounts, config.accounts - base)
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(0, chunk)))
    cust, acc = _draw_population(rng, n, cal, config.scenario)
    run = _Run(acc, _State.empty(n), cal, rng, _Sink(), alpha, config.scenario)
    stats = _Stats()
    _simulate(run, stats)
    writer = _ChunkWriter(out_dir, chunk, base, _id_stride(config.months))
    return _SimulatedChunk(writer, cust, acc, run.sink, stats)


def _generate_chunks(
    config: SyntheticConfig, cal: _Calendar, alpha: float, out_dir: Path, progress: bool
) -> tuple[dict[str, int], _Stats]:
    """Simulate chunk c + 1 while a worker thread writes chunk c.

    Parquet encoding releases the GIL, so the write uses the second core; at most one
    chunk waits to be written, which keeps memory at about two chunks.
    """
    counts = dict.fromkeys((*TABLE_NAMES, ORACLE_DIR), 0)
    stats = _Stats()
    with Progress(disable=not progress) as bar, ThreadPoolExecutor(max_workers=1) as pool:
        task = bar.add_task("generating accounts", total=config.accounts)

        def collect(pending: Future[dict[str, int]], accounts: int) -> None:
            for table, rows in pending.result().items():
                counts[table] += rows
            bar.advance(task, accounts)

        pending: tuple[Future[dict[str, int]], int] | None = None
        for chunk in range(-(-config.accounts // config.chunk_accounts)):
            simulated = _simulate_chunk(config, cal, alpha, chunk, out_dir)
            stats.merge(simulated.stats)
            if pending is not None:
                collect(*pending)
            pending = (pool.submit(simulated.write), simulated.acc.n)
            del simulated
        if pending is not None:
            collect(*pending)
    return counts, stats


def generate(config: SyntheticConfig, out_dir: Path, *, progress: bool = True) -> GenerationSummary:
    """Write every raw table, the oracle and a manifest under out_dir; see the module doc."""
    began = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear(out_dir)
    cal = _Calendar.build(config)
    alpha = calibrate_intercept(config)
    log.info("calibrated intercept %.4f for a default share of %.3f", alpha, config.default_rate)
    counts, stats = _generate_chunks(config, cal, alpha, out_dir, progress)
    _write_manifest(config, out_dir, counts, alpha)
    seconds = time.perf_counter() - began
    summary = GenerationSummary(
        out_dir=out_dir,
        as_of=config.as_of,
        row_counts=counts,
        seconds=seconds,
        accounts_per_second=config.accounts / seconds,
        intercept=alpha,
        labelled_snapshots=stats.rows,
        default_share=stats.default_share,
        oracle_mean=stats.mean_p,
        oracle_auc=stats.auc,
    )
    _log_summary(summary)
    return summary


def _log_summary(s: GenerationSummary) -> None:
    rows = ", ".join(f"{table} {n:,}" for table, n in s.row_counts.items())
    log.info("wrote %s to %s", rows, s.out_dir)
    log.info(
        "%.1f s, %.0f accounts/s; %s labelled snapshots: default share %.3f, oracle mean %.3f,"
        " oracle AUC %.3f",
        s.seconds,
        s.accounts_per_second,
        f"{s.labelled_snapshots:,}",
        s.default_share,
        s.oracle_mean,
        s.oracle_auc,
    )
