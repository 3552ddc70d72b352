"""The oracle: the exact P(default_30d = 1) of each scored snapshot, and how it scores.

An account defaults at t exactly when it does not pay in the window, or when every payment
it made there is reversed (ingestion.synthetic.events keeps the payments and reversals
inside the label window and its grace), so the probability follows from the latent chance
of not paying and the reversal rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ingestion.synthetic.draws import sigmoid
from ingestion.synthetic.population import Accounts
from ingestion.synthetic.state import Run, State
from ingestion.synthetic.world import (
    DIRECT_DEBIT,
    ORACLE_BINS,
    PRODUCT_RISK,
    REFERENCE_INCOME,
    REVERSAL_RATE,
    RISK_SCALE,
    SHOCK_LOGIT,
    BoolArr,
    FloatArr,
    IntArr,
    split_rate,
)


@dataclass(frozen=True)
class Snapshot:
    pop: BoolArr  # scored at t: placed before t with a statement in the 45 days before
    open: BoolArr  # scored and still owing at least 1.0
    p_pay_not: FloatArr  # latent chance of not paying in the window
    p_label: FloatArr  # P(default_30d = 1), reversals included


def risk_logit(acc: Accounts, st: State) -> FloatArr:
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


def take_snapshot(run: Run, m: int) -> Snapshot:
    """Who is scored at month m's start, and the oracle's probabilities for them."""
    acc, st = run.acc, run.st
    pop = st.stmt1 | st.stmt2
    outstanding = st.balance - st.carry
    open_ = pop & ~st.closed & (outstanding >= 1.0)
    shock = SHOCK_LOGIT if run.drift(m) == "income_shock" else 0.0
    logit = run.alpha + risk_logit(acc, st) + run.cal.season(m) + shock
    # A paid-off account still scored has nothing left to pay: it cannot avoid the label.
    p = np.where(open_, sigmoid(logit), 1.0)
    split = split_rate(acc.pref_channel, outstanding)
    all_reversed = REVERSAL_RATE * (1.0 - split) + REVERSAL_RATE**2 * split
    return Snapshot(pop, open_, p, p + (1.0 - p) * all_reversed)


@dataclass
class Stats:
    """Oracle probabilities and realised labels of matured snapshots, binned for the AUC."""

    positives: IntArr = field(default_factory=lambda: np.zeros(ORACLE_BINS, np.int64))
    negatives: IntArr = field(default_factory=lambda: np.zeros(ORACLE_BINS, np.int64))
    p_sum: float = 0.0

    def add(self, p: FloatArr, label: BoolArr) -> None:
        bins = np.minimum((p * ORACLE_BINS).astype(np.int64), ORACLE_BINS - 1)
        self.positives += np.bincount(bins[label], minlength=ORACLE_BINS)
        self.negatives += np.bincount(bins[~label], minlength=ORACLE_BINS)
        self.p_sum += float(p.sum())

    def merge(self, other: Stats) -> None:
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
