"""A month's events: payments and reversals, contacts and promises, the statement.

How the label rule stays exact: every payment made for snapshot t lies inside (t, t + 30
days] and inside no other snapshot's window (Calendar.pay_window), each payment is >= 1.0,
and reversals are recorded within 20 days of the payment, so inside the 21-day label grace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from feature_repo.transformations import DEFAULT_LABEL_GRACE_DAYS
from ingestion.synthetic.draws import pick, sigmoid, uniforms, whole_seconds
from ingestion.synthetic.oracle import Snapshot
from ingestion.synthetic.population import Accounts
from ingestion.synthetic.state import Run
from ingestion.synthetic.timeline import Calendar
from ingestion.synthetic.world import (
    ALIGN_LOGIT,
    CONTACT_CHANNEL_MIX,
    CONTACT_CHANNEL_MIX_SHIFTED,
    DIRECT_DEBIT,
    LATE_FILE_SHARE,
    MOBILE_APP,
    PAYMENT_CHANNEL_MIX,
    PHONE,
    PRODUCT_LATE_FEE,
    PRODUCT_MIN_FLOOR,
    PRODUCT_MIN_SHARE,
    PRODUCT_MONTHLY_RATE,
    PROMISE_TO_PAY,
    REVERSAL_RATE,
    SHIFT_TO_MOBILE,
    SHOCK_AMOUNT,
    US_PER_DAY,
    US_PER_HOUR,
    US_PER_SEC,
    BoolArr,
    FloatArr,
    IntArr,
    split_rate,
)

# --- payments ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paid:
    pays: BoolArr
    label: BoolArr  # realised default_30d (meaningful where pop)
    net_before: FloatArr  # net paid before this month's statement
    net_after: FloatArr
    first_at: IntArr
    first_amount: FloatArr


def _payment_amounts(
    run: Run, u: dict[str, FloatArr], normal: FloatArr, shock: bool
) -> tuple[FloatArr, FloatArr, BoolArr]:
    """Two instalments (the second 0 unless split), each >= 1.0, together <= what is owed."""
    acc, st = run.acc, run.st
    owed = np.maximum(st.balance - st.carry, 1.0)
    direct_debit = acc.pref_channel == DIRECT_DEBIT
    # Direct debits pull exactly the minimum; other payers pay around it.
    usual = np.where(direct_debit, st.min_due, st.min_due * np.exp(0.1 + 0.4 * normal))
    usual = usual * (SHOCK_AMOUNT if shock else 1.0)
    in_full = u["full"] < np.clip(40.0 / owed, 0.01, 0.3)
    split = u["split"] < split_rate(acc.pref_channel, owed)
    total = np.where(in_full, owed, usual)
    total = np.round(np.clip(total, np.where(split, 2.0, 1.0), owed), 2)
    share = np.clip(total * (0.3 + 0.4 * u["share"]), 1.0, np.maximum(total - 1.0, 1.0))
    first = np.where(split, np.round(share, 2), total)
    second = np.where(split, np.round(total - first, 2), 0.0)
    return first, second, split


def _payment_channels(acc: Accounts, u: dict[str, FloatArr], shift: bool) -> IntArr:
    """Mostly the account's usual channel; the channel_shift scenario moves to the app."""
    cdf = np.cumsum(PAYMENT_CHANNEL_MIX, axis=1)[acc.product]
    other = pick(cdf, u["other"])
    channel = np.where(u["usual"] < 0.85, acc.pref_channel[:, None], other)
    if shift:
        channel = np.where(u["shift"] < SHIFT_TO_MOBILE, MOBILE_APP, channel)
    return channel.astype(np.int64)


def _payment_times(cal: Calendar, m: int, u: dict[str, FloatArr]) -> tuple[IntArr, IntArr, IntArr]:
    """Paid, recorded and reversal-recorded times, each (n, 2)."""
    lo, hi = cal.pay_window(m)
    span_days = (hi - lo) // US_PER_DAY
    # Whole days 1 .. span-1 plus a time of day keeps every payment strictly inside (lo, hi).
    days = 1 + np.floor(u["day"] * (span_days - 1))
    paid = whole_seconds(lo + days * US_PER_DAY + u["time"] * US_PER_DAY)
    late_file = u["late"] < LATE_FILE_SHARE
    lag_days = np.where(late_file, 3.0 + 15.0 * u["lag"], 3.0 * u["lag"])
    recorded = paid + whole_seconds(lag_days * US_PER_DAY)
    # The bank reports a reversal after the payment and within 20 days of it: a day inside
    # the label grace, so the label at t already sees every reversal of its window.
    reversal = np.minimum(
        recorded + whole_seconds((1.0 + 9.0 * u["rev_lag"]) * US_PER_DAY),
        paid + (DEFAULT_LABEL_GRACE_DAYS - 1) * US_PER_DAY,
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


def make_payments(run: Run, m: int, snap: Snapshot) -> Paid:
    """Snapshot m's payments and reversals, written to the sink; what they settled."""
    acc, cal = run.acc, run.cal
    u = uniforms(run.rng, acc.n, PAYMENT_DRAWS)
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
    return Paid(
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
    run: Run, m: int, snap: Snapshot, paid: Paid, u: dict[str, FloatArr]
) -> _Contacts:
    """Contacts of the open accounts; `u` holds their draws only."""
    rows = np.flatnonzero(snap.open)
    z, pays, first_at = run.acc.z[rows], paid.pays[rows], paid.first_at[rows]
    intensity = sigmoid(-0.6 + 0.4 * z + 0.25 * np.minimum(run.st.dpd[rows], 360) / 90.0)
    count = 1 + (u["count"] < intensity[:, None]).sum(axis=1)
    valid = np.arange(4)[None, :] < count[:, None]
    start, length = run.cal.t(m), run.cal.t(m + 1) - run.cal.t(m)
    at = whole_seconds(start + u["time"] * length)
    shift = run.drift(m) == "channel_shift"
    channel = pick(
        np.cumsum(CONTACT_CHANNEL_MIX_SHIFTED if shift else CONTACT_CHANNEL_MIX), u["channel"]
    )
    outcome = _contact_outcomes(z, pays, channel == PHONE, u["outcome"])
    # Reliable debtors often pay right after promising by phone: that promise is kept.
    aligned = pays & (u["align"] < sigmoid(ALIGN_LOGIT - 1.2 * z))
    back = u["back"] * np.minimum(6 * US_PER_DAY, first_at - start - US_PER_SEC)
    at[:, 0] = np.where(aligned, first_at - whole_seconds(back), at[:, 0])
    channel[:, 0] = np.where(aligned, PHONE, channel[:, 0])
    outcome[:, 0] = np.where(aligned, PROMISE_TO_PAY, outcome[:, 0])
    lag_hours = np.where(u["late"] < 0.15, 4.0 + 44.0 * u["lag"], 4.0 * u["lag"])
    recorded = at + whole_seconds(lag_hours * US_PER_HOUR)
    return _Contacts(rows, valid, at, recorded, channel, outcome, aligned)


def _promised_amounts(run: Run, c: _Contacts, paid: Paid, u: FloatArr) -> FloatArr:
    # Ordinary promises are for more than the usual payment, so luck rarely keeps them.
    usual = np.maximum(run.st.min_due[c.rows, None] * (1.2 + 1.0 * u), 1.0)
    # 0.92..1.1 keeps the kept promise's payment above 90 % of the promised amount.
    kept = paid.first_amount[c.rows, None] * (0.92 + 0.18 * u)
    kept_slot = c.aligned[:, None] & (np.arange(4)[None, :] == 0)
    return np.where(kept_slot, kept, usual).round(2)


def make_contacts(run: Run, m: int, snap: Snapshot, paid: Paid) -> FloatArr:
    """Contacts and the promises made on them; returns promises broken per account."""
    # Only open accounts are contacted.
    u = uniforms(run.rng, run.acc.n, CONTACT_DRAWS, rows=np.flatnonzero(snap.open))
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


# --- statements ----------------------------------------------------------------------------


def issue_statements(run: Run, m: int, paid: Paid) -> None:
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
