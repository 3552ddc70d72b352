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
from dataclasses import dataclass, field
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

GENERATOR_VERSION = "1.0.0"

Scenario = Literal["none", "income_shock", "channel_shift"]
SCENARIOS: tuple[Scenario, ...] = ("none", "income_shock", "channel_shift")
DEFAULT_START = datetime(2024, 11, 1, tzinfo=UTC)

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


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig:
    """What to generate. `start` must be a month start at 00:00 UTC."""

    accounts: int
    months: int = 24
    seed: int
    start: datetime = DEFAULT_START
    default_rate: float = 0.25
    scenario: Scenario = "none"
    drift_months: int = 3
    chunk_accounts: int = 50_000

    def __post_init__(self) -> None:
        if self.accounts < 1 or self.chunk_accounts < 1 or self.months < 1:
            raise ValueError("accounts, chunk_accounts and months must be positive")
        if self.accounts >= 10**8:
            raise ValueError("account ids have 8 digits: at most 99,999,999 accounts")
        if self.accounts * _id_stride(self.months) >= MAX_ID:
            raise ValueError("too many accounts x months for 10-digit event ids")
        if not 0.0 < self.default_rate < 1.0:
            raise ValueError("default_rate must lie in (0, 1)")
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {SCENARIOS}")
        if not 0 <= self.drift_months <= self.months:
            raise ValueError("drift_months must lie in [0, months]")
        start = self.start
        if start.tzinfo is None or start.utcoffset() != pd.Timedelta(0):
            raise ValueError("start must be timezone-aware UTC")
        if (start.day, start.hour, start.minute, start.second, start.microsecond) != (1, 0, 0, 0, 0):
            raise ValueError("start must be the first day of a month at 00:00 UTC")

    @property
    def as_of(self) -> datetime:
        return (pd.Timestamp(self.start) + pd.DateOffset(months=self.months)).to_pydatetime()


@dataclass(frozen=True)
class GenerationSummary:
    """What generate() wrote. Shares, mean and AUC cover matured population snapshots."""

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
    # Indexed by m - first + 1 for m in first - 1 .. months + 1.
    month_start: IntArr
    as_of: int
    drift_from: int

    @classmethod
    def build(cls, config: SyntheticConfig) -> _Calendar:
        first = -BURN_IN_MONTHS
        base = np.datetime64(pd.Timestamp(config.start).tz_localize(None), "M")
        months = base + np.arange(first - 1, config.months + 2)
        starts = months.astype("datetime64[us]").astype(np.int64)
        return cls(
            first=first,
            months=config.months,
            month_start=starts,
            as_of=int(starts[config.months - first + 1]),
            drift_from=config.months - config.drift_months,
        )

    def t(self, m: int) -> int:
        return int(self.month_start[m - self.first + 1])

    def statement(self, m: int) -> int:
        return self.t(m) + (STATEMENT_DAY - 1) * US_PER_DAY

    def pay_window(self, m: int) -> tuple[int, int]:
        """The part of month m's label window that no other snapshot's window overlaps."""
        window = LABEL_WINDOW_DAYS * US_PER_DAY
        lo = max(self.t(m), self.t(m - 1) + window)
        hi = min(self.t(m) + window, self.t(m + 1))
        return lo, hi

    def calendar_month(self, m: int) -> int:
        return int(self.month_start[m - self.first + 1].astype("datetime64[us]").astype("datetime64[M]").astype(int) % 12)

    def matured(self, m: int) -> bool:
        return self.t(m) + (LABEL_WINDOW_DAYS + LABEL_GRACE_DAYS) * US_PER_DAY <= self.as_of

    def month_of(self, us: IntArr) -> IntArr:
        idx = np.searchsorted(self.month_start, us, side="right") - 1
        return (idx + self.first - 1).astype(np.int64)
