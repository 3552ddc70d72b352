"""The one definition of every feature: SQL over the raw event tables.

Each statement reads the validated raw tables as relations named after them (customers,
accounts, statements, payments, contacts, promises, outcomes), the snapshot calendar
(``snapshot_calendar``, made by the runner from `snapshot_calendar()` below) and two
parameters written as ``$labels_as_of`` (when outcomes had been observed, normally the data
cutoff as_of) and ``$label_grace_days``.

One text, two engines: DuckDB runs it as written, Spark runs its sqlglot translation
(ingestion.feature_sql). So the SQL keeps to the subset both agree on, which
tests/unit/test_feature_portability.py enforces: ANSI window functions and CASE expressions
(no ASOF JOIN, QUALIFY, FILTER or table functions such as range()); intervals as
``n * INTERVAL '1' DAY``; day counts between DATEs (on timestamps DuckDB counts calendar days
and Spark whole 24-hour spans); no arithmetic typed DECIMAL (an integer plus ``1.0`` is a
DECIMAL in Spark, whose division then rounds differently): such operands are cast to DOUBLE.

Point-in-time rule: the row for snapshot t uses only events that happened AND were recorded
at or before t (statements are known on their statement_date). Late corrections therefore
show up in the next snapshot, never in an earlier one. created_timestamp is the newest
recording time among the inputs, so it never passes the snapshot time.

Conventions for values (documented in feature_repo/README.md):
- payment_history[i] is the net amount paid in the i-th calendar month before t
  (i = 0: the month just before t); net = settled minus reversed.
- balance_history[k] / days_past_due_history[k] come from the k-th newest statement in the
  six months before t (k = 0: the newest); 0 before the first statement.
- ratios are finite; scores lie in [0, 1]; null only where the concept has no value
  (e.g. income unknown, no credit limit on a loan, not overdue).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Final

# Snapshots are month starts; an account is scored at t when it was placed before t and has
# a statement in the 45 days before t (paid-off accounts stop getting statements).
ACTIVE_STATEMENT_DAYS: Final = 45
LABEL_WINDOW_DAYS: Final = 30
DEFAULT_LABEL_GRACE_DAYS: Final = 21
# A payment qualifies when it moves at least one currency unit, net of reversals.
MIN_QUALIFYING_PAYMENT: Final = 1.0
# trend_direction ignores slopes smaller than this many currency units per month.
TREND_TOLERANCE: Final = 0.5
RESPONSIVE_LOOKBACK_DAYS: Final = 90
CHANNEL_LOOKBACK_DAYS: Final = 180
PROMISE_GRACE_DAYS: Final = 3
PROMISE_KEPT_SHARE: Final = 0.9
DTI_CAP: Final = 1000.0

# A payment's contribution to what was paid: a reversal row cancels its amount.
_NET_AMOUNT: Final = "CASE WHEN e.status = 'settled' THEN e.amount ELSE -e.amount END"
# Sums of money are rounded to the cent: a float sum depends on the order of its terms, which
# no engine promises (DuckDB's changes once it spills, Spark's with its partitions), and a
# payment and its reversal netting to 1e-13 instead of 0 flipped "a month with a payment".
_NET_SUM: Final = f"round(sum({_NET_AMOUNT}), 2)"

# The snapshot calendar: every month start after the month of the first statement, up to
# the data cutoff. It is made in Python, once for every engine (DuckDB's range() over months
# has no Spark translation), from what FIRST_STATEMENT_SQL finds.
CALENDAR_TABLE: Final = "snapshot_calendar"
FIRST_STATEMENT_SQL: Final = (
    "SELECT CAST(min(statement_date) AS DATE) AS first_statement FROM statements"
)


def snapshot_calendar(first_statement: date | None, as_of: datetime) -> list[datetime]:
    """The snapshot times (UTC month starts) from the month after `first_statement` up to and
    including `as_of`; none without statements."""
    if first_statement is None:
        return []
    year, month = first_statement.year, first_statement.month
    calendar: list[datetime] = []
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        snapshot = datetime(year, month, 1, tzinfo=UTC)
        if snapshot > as_of:
            return calendar
        calendar.append(snapshot)


SNAPSHOTS_SQL: Final = f"""
CREATE OR REPLACE TEMP TABLE snapshots AS
SELECT CAST(snapshot_at AS TIMESTAMPTZ) AS snapshot_at FROM {CALENDAR_TABLE}
"""  # nosec B608  # only this module's constant table name is interpolated

# The latest statement as of each snapshot decides who is in the population; what is still
# outstanding is that statement's balance less the net payments known since.
POPULATION_SQL: Final = f"""
CREATE OR REPLACE TEMP TABLE population AS
WITH ranked AS (
    SELECT a.account_id, a.customer_id, a.credit_limit, a.placed_at, s.snapshot_at,
           st.statement_date, st.balance, st.minimum_due, st.days_past_due,
           row_number() OVER (PARTITION BY a.account_id, s.snapshot_at
                              ORDER BY st.statement_date DESC) AS rn
    FROM accounts a
    JOIN snapshots s ON a.placed_at < s.snapshot_at
    JOIN statements st ON st.account_id = a.account_id
         AND st.statement_date <= s.snapshot_at
         AND st.statement_date > s.snapshot_at - INTERVAL {ACTIVE_STATEMENT_DAYS} DAY
),
latest AS (SELECT * FROM ranked WHERE rn = 1),
paid_since AS (
    SELECT l.account_id, l.snapshot_at,
           {_NET_SUM} AS net_paid
    FROM latest l
    JOIN payments e ON e.account_id = l.account_id
         AND e.paid_at > l.statement_date
         AND e.paid_at < l.snapshot_at
         AND e.recorded_at <= l.snapshot_at
    GROUP BY l.account_id, l.snapshot_at
)
SELECT l.account_id, l.customer_id, l.credit_limit, l.placed_at, l.snapshot_at,
       l.statement_date, l.balance, l.minimum_due, l.days_past_due,
       l.balance - coalesce(ps.net_paid, 0) AS outstanding
FROM latest l
LEFT JOIN paid_since ps USING (account_id, snapshot_at)
"""  # nosec B608  # only this module's numeric constants and SQL fragments are interpolated

# The last six statements before each snapshot (k = 1 is the newest); slots before the first
# statement read 0.
STATEMENT_HISTORY_SQL: Final = """
CREATE OR REPLACE TEMP TABLE statement_history AS
WITH ranked AS (
    SELECT p.account_id, p.snapshot_at, st.statement_date, st.balance, st.days_past_due,
           row_number() OVER (PARTITION BY p.account_id, p.snapshot_at
                              ORDER BY st.statement_date DESC) AS k
    FROM population p
    JOIN statements st ON st.account_id = p.account_id
         AND st.statement_date <= p.snapshot_at
         AND st.statement_date > p.snapshot_at - INTERVAL 6 MONTH
)
SELECT account_id, snapshot_at,
       max(days_past_due) AS max_days_past_due_6m,
       sum(CASE WHEN days_past_due > 0 THEN 1 ELSE 0 END) AS months_past_due_6m,
       -- arg_min picks the oldest balance in the window: the start of the trend.
       arg_min(balance, statement_date) AS first_balance_6m,
       coalesce(max(CASE WHEN k = 1 THEN balance END), 0.0) AS b0,
       coalesce(max(CASE WHEN k = 2 THEN balance END), 0.0) AS b1,
       coalesce(max(CASE WHEN k = 3 THEN balance END), 0.0) AS b2,
       coalesce(max(CASE WHEN k = 4 THEN balance END), 0.0) AS b3,
       coalesce(max(CASE WHEN k = 5 THEN balance END), 0.0) AS b4,
       coalesce(max(CASE WHEN k = 6 THEN balance END), 0.0) AS b5,
       coalesce(max(CASE WHEN k = 1 THEN days_past_due END), 0) AS d0,
       coalesce(max(CASE WHEN k = 2 THEN days_past_due END), 0) AS d1,
       coalesce(max(CASE WHEN k = 3 THEN days_past_due END), 0) AS d2,
       coalesce(max(CASE WHEN k = 4 THEN days_past_due END), 0) AS d3,
       coalesce(max(CASE WHEN k = 5 THEN days_past_due END), 0) AS d4,
       coalesce(max(CASE WHEN k = 6 THEN days_past_due END), 0) AS d5
FROM ranked
GROUP BY account_id, snapshot_at
"""

# Net payments per calendar month before each snapshot, as known at the snapshot.
PAYMENT_MONTHS_SQL: Final = f"""
CREATE OR REPLACE TEMP TABLE payment_months AS
SELECT p.account_id, p.snapshot_at,
       (year(p.snapshot_at) - year(e.paid_at)) * 12
           + month(p.snapshot_at) - month(e.paid_at) - 1 AS month_index,
       {_NET_SUM} AS net_amount,
       max(e.recorded_at) AS max_recorded_at
FROM population p
JOIN payments e ON e.account_id = p.account_id
     AND e.paid_at < p.snapshot_at
     AND e.paid_at >= p.snapshot_at - INTERVAL 12 MONTH
     AND e.recorded_at <= p.snapshot_at
GROUP BY 1, 2, 3
"""  # nosec B608  # only this module's numeric constants and SQL fragments are interpolated

_MONTH_COLUMNS: Final = ",\n       ".join(
    f"sum(CASE WHEN month_index = {i} THEN net_amount ELSE 0 END) AS m{i}" for i in range(12)
)

PAYMENT_WIDE_SQL: Final = f"""
CREATE OR REPLACE TEMP TABLE payment_wide AS
SELECT account_id, snapshot_at,
       {_MONTH_COLUMNS},
       sum(CASE WHEN month_index < 6 AND net_amount > 0 THEN 1 ELSE 0 END) AS months_paid_6m,
       avg(CASE WHEN month_index < 6 AND net_amount > 0 THEN net_amount END) AS paid_mean_6m,
       stddev_pop(CASE WHEN month_index < 6 AND net_amount > 0 THEN net_amount END)
           AS paid_std_6m,
       max(max_recorded_at) AS max_recorded_at
FROM payment_months
GROUP BY account_id, snapshot_at
"""  # nosec B608  # only this module's numeric constants and SQL fragments are interpolated

LAST_PAYMENT_SQL: Final = """
CREATE OR REPLACE TEMP TABLE last_payment AS
SELECT p.account_id, p.snapshot_at, max(e.paid_at) AS last_paid_at
FROM population p
JOIN payments e ON e.account_id = p.account_id
     AND e.status = 'settled' AND e.paid_at < p.snapshot_at AND e.recorded_at <= p.snapshot_at
GROUP BY p.account_id, p.snapshot_at
"""

# Least-squares slope of the last six monthly amounts against time (x = 5 - month_index,
# mean 2.5, sum of squared deviations 17.5), written out so no array function is needed.
_SLOPE: Final = "(" + " + ".join(f"({5 - i} - 2.5) * m{i}" for i in range(6)) + ") / 17.5"

VELOCITY_SQL: Final = f"""
CREATE OR REPLACE TEMP TABLE account_payment_velocity AS
WITH base AS (
    SELECT p.*, h.max_days_past_due_6m, h.months_past_due_6m, h.first_balance_6m,
           h.b0, h.b1, h.b2, h.b3, h.b4, h.b5, h.d0, h.d1, h.d2, h.d3, h.d4, h.d5,
           coalesce(w.m0, 0) AS m0, coalesce(w.m1, 0) AS m1, coalesce(w.m2, 0) AS m2,
           coalesce(w.m3, 0) AS m3, coalesce(w.m4, 0) AS m4, coalesce(w.m5, 0) AS m5,
           coalesce(w.m6, 0) AS m6, coalesce(w.m7, 0) AS m7, coalesce(w.m8, 0) AS m8,
           coalesce(w.m9, 0) AS m9, coalesce(w.m10, 0) AS m10, coalesce(w.m11, 0) AS m11,
           coalesce(w.months_paid_6m, 0) AS months_paid_6m, w.paid_mean_6m, w.paid_std_6m,
           w.max_recorded_at, l.last_paid_at
    FROM population p
    JOIN statement_history h USING (account_id, snapshot_at)
    LEFT JOIN payment_wide w USING (account_id, snapshot_at)
    LEFT JOIN last_payment l USING (account_id, snapshot_at)
)
SELECT
    account_id,
    snapshot_at AS event_timestamp,
    CASE WHEN max_recorded_at > statement_date THEN max_recorded_at ELSE statement_date END
        AS created_timestamp,
    CAST(outstanding AS DOUBLE) AS debt_amount,
    CAST(CASE WHEN days_past_due > 0
              THEN days_past_due
                   + date_diff('day', CAST(statement_date AS DATE), CAST(snapshot_at AS DATE))
              ELSE 0 END AS BIGINT) AS days_overdue,
    CASE WHEN days_past_due > 0
         THEN statement_date - CAST(days_past_due AS INTEGER) * INTERVAL '1' DAY
    END AS overdue_since,
    [m0, m1, m2, m3, m4, m5] AS payment_history,
    greatest(least((m0 + m1 + m2) / 3.0 / greatest(outstanding, 1.0), 1.0), 0.0)
        AS payment_velocity,
    CAST(months_paid_6m AS DOUBLE) / 6.0
        * (1.0 - least(coalesce(paid_std_6m / paid_mean_6m, 0.0), 1.0))
        AS payment_consistency_score,
    CASE WHEN placed_at > snapshot_at - INTERVAL 12 MONTH
              OR (m0 + m1 + m2 + m3 + m4 + m5 + m6 + m7 + m8 + m9 + m10 + m11) <= 0
         THEN 1.0
         ELSE least(greatest(m11 / ((m0 + m1 + m2 + m3 + m4 + m5 + m6 + m7 + m8 + m9 + m10
                                     + m11) / 12.0), 0.0), 12.0)
    END AS seasonal_payment_pattern,
    CAST(CASE WHEN {_SLOPE} > {TREND_TOLERANCE} THEN 1
              WHEN {_SLOPE} < -{TREND_TOLERANCE} THEN -1
              ELSE 0 END AS BIGINT) AS trend_direction,
    CASE WHEN credit_limit > 0 THEN balance / credit_limit END AS credit_utilisation,
    CAST(max_days_past_due_6m AS BIGINT) AS max_days_past_due_6m,
    CAST(months_past_due_6m AS BIGINT) AS months_past_due_6m,
    (balance - first_balance_6m) / greatest(abs(first_balance_6m), 1.0) AS balance_change_6m,
    CAST(date_diff('day', CAST(coalesce(last_paid_at, placed_at) AS DATE),
                   CAST(snapshot_at AS DATE)) AS BIGINT) AS days_since_last_payment,
    credit_limit,
    [b0, b1, b2, b3, b4, b5] AS balance_history,
    [d0, d1, d2, d3, d4, d5] AS days_past_due_history,
    -- last month's payment against the balance it was paying down
    m0 / greatest(b1, 1.0) AS payment_to_balance_ratio
FROM base
"""  # nosec B608  # only this module's numeric constants and SQL fragments are interpolated

FINANCIAL_RATIOS_SQL: Final = f"""
CREATE OR REPLACE TEMP TABLE customer_financial_ratios AS
WITH debts AS (
    SELECT p.customer_id, p.snapshot_at,
           greatest(p.outstanding, 0.0) AS debt,
           p.minimum_due,
           p.statement_date
    FROM population p
),
per_customer AS (
    SELECT customer_id, snapshot_at,
           sum(debt) AS total_debt,
           sum(debt * debt) AS sum_sq_debt,
           -- one unknown minimum due makes the total unknown, not smaller
           CASE WHEN count(minimum_due) = count(*) THEN sum(minimum_due) END AS total_min_due,
           max(statement_date) AS max_statement_date
    FROM debts
    GROUP BY customer_id, snapshot_at
)
SELECT
    pc.customer_id,
    pc.snapshot_at AS event_timestamp,
    CASE WHEN c.created_at > pc.max_statement_date THEN c.created_at
         ELSE pc.max_statement_date END AS created_timestamp,
    CASE WHEN c.monthly_income IS NULL THEN NULL
         ELSE least(pc.total_debt / greatest(c.monthly_income, 1.0), {DTI_CAP}) END
        AS debt_to_income_ratio,
    CASE WHEN c.monthly_income IS NULL OR pc.total_min_due IS NULL THEN NULL
         WHEN c.monthly_income <= 0 THEN 0.0
         ELSE greatest(least((c.monthly_income - pc.total_min_due) / c.monthly_income, 1.0),
                       0.0) END AS payment_capacity_score,
    CASE WHEN pc.total_debt <= 0 THEN 0.0
         ELSE pc.sum_sq_debt / (pc.total_debt * pc.total_debt) END AS risk_concentration_index
FROM per_customer pc
JOIN customers c ON c.customer_id = pc.customer_id AND c.created_at <= pc.snapshot_at
"""  # nosec B608  # only this module's numeric constants and SQL fragments are interpolated

CONTACT_STATS_SQL: Final = f"""
CREATE OR REPLACE TEMP TABLE contact_stats AS
SELECT p.account_id, p.snapshot_at,
       count(*) AS contacts_90d,
       sum(CASE WHEN c.outcome IN ('right_party_contact', 'promise_to_pay') THEN 1 ELSE 0 END)
           AS responsive_90d,
       max(c.recorded_at) AS max_recorded_at
FROM population p
JOIN contacts c ON c.account_id = p.account_id
     AND c.contacted_at <= p.snapshot_at
     AND c.contacted_at > p.snapshot_at - INTERVAL {RESPONSIVE_LOOKBACK_DAYS} DAY
     AND c.recorded_at <= p.snapshot_at
GROUP BY p.account_id, p.snapshot_at
"""  # nosec B608  # only this module's numeric constants and SQL fragments are interpolated

# A promise is judged once its due date (plus grace) has passed by the snapshot; it was kept
# when payments known at the snapshot covered most of the promised amount in time.
PROMISE_STATS_SQL: Final = f"""
CREATE OR REPLACE TEMP TABLE promise_stats AS
WITH judged AS (
    SELECT p.account_id, p.snapshot_at, pr.promise_id, pr.promised_amount, pr.due_date,
           pr.recorded_at,
           coalesce({_NET_SUM}, 0) AS paid
    FROM population p
    JOIN promises pr ON pr.account_id = p.account_id
         AND pr.recorded_at <= p.snapshot_at
         AND pr.due_date + INTERVAL {PROMISE_GRACE_DAYS} DAY <= p.snapshot_at
    LEFT JOIN payments e ON e.account_id = pr.account_id
         AND e.paid_at >= pr.made_at
         AND e.paid_at <= pr.due_date + INTERVAL {PROMISE_GRACE_DAYS} DAY
         AND e.recorded_at <= p.snapshot_at
    GROUP BY p.account_id, p.snapshot_at, pr.promise_id, pr.promised_amount, pr.due_date,
             pr.recorded_at
)
SELECT account_id, snapshot_at,
       count(*) AS promises_judged,
       sum(CASE WHEN paid >= {PROMISE_KEPT_SHARE} * promised_amount THEN 1 ELSE 0 END)
           AS promises_kept,
       sum(CASE WHEN paid < {PROMISE_KEPT_SHARE} * promised_amount
                 AND due_date > snapshot_at - INTERVAL 90 DAY THEN 1 ELSE 0 END)
           AS broken_promises_90d,
       max(recorded_at) AS max_recorded_at
FROM judged
GROUP BY account_id, snapshot_at
"""  # nosec B608  # only this module's numeric constants and SQL fragments are interpolated

CHANNEL_PREFERENCE_SQL: Final = f"""
CREATE OR REPLACE TEMP TABLE channel_preference AS
WITH counts AS (
    SELECT p.account_id, p.snapshot_at, e.channel, count(*) AS n,
           max(e.recorded_at) AS max_recorded_at
    FROM population p
    JOIN payments e ON e.account_id = p.account_id
         AND e.status = 'settled'
         AND e.paid_at < p.snapshot_at
         AND e.paid_at >= p.snapshot_at - INTERVAL {CHANNEL_LOOKBACK_DAYS} DAY
         AND e.recorded_at <= p.snapshot_at
    GROUP BY p.account_id, p.snapshot_at, e.channel
),
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY account_id, snapshot_at
                                 ORDER BY n DESC, channel ASC) AS rn
    FROM counts
)
SELECT account_id, snapshot_at, channel, max_recorded_at FROM ranked WHERE rn = 1
"""  # nosec B608  # only this module's numeric constants and SQL fragments are interpolated

# Laplace smoothing ((k + 1) / (n + 2)) keeps both rates defined, and neutral (0.5), for
# accounts with no contacts or no judged promises yet.
BEHAVIOUR_SQL: Final = """
CREATE OR REPLACE TEMP TABLE account_contact_behavior AS
SELECT
    p.account_id,
    p.snapshot_at AS event_timestamp,
    greatest(p.statement_date,
             coalesce(cs.max_recorded_at, p.statement_date),
             coalesce(ps.max_recorded_at, p.statement_date),
             coalesce(ch.max_recorded_at, p.statement_date)) AS created_timestamp,
    (CAST(coalesce(cs.responsive_90d, 0) AS DOUBLE) + 1.0)
        / (CAST(coalesce(cs.contacts_90d, 0) AS DOUBLE) + 2.0) AS contact_responsiveness,
    (CAST(coalesce(ps.promises_kept, 0) AS DOUBLE) + 1.0)
        / (CAST(coalesce(ps.promises_judged, 0) AS DOUBLE) + 2.0) AS promise_to_pay_reliability,
    coalesce(ch.channel, 'none') AS payment_channel_preference,
    CAST(coalesce(cs.contacts_90d, 0) AS BIGINT) AS contacts_90d,
    CAST(coalesce(ps.broken_promises_90d, 0) AS BIGINT) AS broken_promises_90d
FROM population p
LEFT JOIN contact_stats cs USING (account_id, snapshot_at)
LEFT JOIN promise_stats ps USING (account_id, snapshot_at)
LEFT JOIN channel_preference ch USING (account_id, snapshot_at)
"""

# Which customer holds each account, as of each snapshot: lets a scorer that only knows the
# account id find the customer-level features.
ACCOUNT_PROFILE_SQL: Final = """
CREATE OR REPLACE TEMP TABLE account_profile AS
SELECT account_id, snapshot_at AS event_timestamp, statement_date AS created_timestamp,
       customer_id
FROM population
"""

# Labels: default_30d = 1 when the net qualifying payment in (t, t + 30 days] is under the
# minimum. Only payments recorded by the time the label matures count, and a label is only
# written once it has matured (t + 30 days + grace <= as_of). A snapshot with nothing
# outstanding has nothing left to collect, so "will not pay" means nothing there: no label.
DERIVED_LABELS_SQL: Final = f"""
CREATE OR REPLACE TEMP TABLE labels AS
WITH matured AS (
    SELECT account_id, customer_id, snapshot_at,
           snapshot_at + INTERVAL {LABEL_WINDOW_DAYS} DAY
               + CAST($label_grace_days AS INTEGER) * INTERVAL '1' DAY AS matured_at
    FROM population
    WHERE outstanding >= {MIN_QUALIFYING_PAYMENT}
),
paid AS (
    SELECT m.account_id, m.snapshot_at,
           {_NET_SUM} AS net_paid
    FROM matured m
    JOIN payments e ON e.account_id = m.account_id
         AND e.paid_at > m.snapshot_at
         AND e.paid_at <= m.snapshot_at + INTERVAL {LABEL_WINDOW_DAYS} DAY
         AND e.recorded_at <= m.matured_at
    GROUP BY m.account_id, m.snapshot_at
)
SELECT m.account_id, m.customer_id, m.snapshot_at AS event_timestamp,
       m.matured_at AS created_timestamp,
       CAST(CASE WHEN coalesce(p.net_paid, 0) >= {MIN_QUALIFYING_PAYMENT} THEN 0 ELSE 1 END
            AS BIGINT) AS default_30d
FROM matured m
LEFT JOIN paid p USING (account_id, snapshot_at)
WHERE m.matured_at <= CAST($labels_as_of AS TIMESTAMPTZ)
"""  # nosec B608  # only this module's numeric constants and SQL fragments are interpolated

# When a source system reports outcomes directly (the UCI file), they are the labels.
OBSERVED_LABELS_SQL: Final = """
CREATE OR REPLACE TEMP TABLE labels AS
SELECT o.account_id, p.customer_id, o.snapshot_at AS event_timestamp,
       o.recorded_at AS created_timestamp, CAST(o.default_30d AS BIGINT) AS default_30d
FROM outcomes o
JOIN population p ON p.account_id = o.account_id AND p.snapshot_at = o.snapshot_at
WHERE o.recorded_at <= CAST($labels_as_of AS TIMESTAMPTZ)
"""

# Order matters: later statements read the temp tables of earlier ones.
FEATURE_STATEMENTS: Final = (
    SNAPSHOTS_SQL,
    POPULATION_SQL,
    STATEMENT_HISTORY_SQL,
    PAYMENT_MONTHS_SQL,
    PAYMENT_WIDE_SQL,
    LAST_PAYMENT_SQL,
    VELOCITY_SQL,
    FINANCIAL_RATIOS_SQL,
    CONTACT_STATS_SQL,
    PROMISE_STATS_SQL,
    CHANNEL_PREFERENCE_SQL,
    BEHAVIOUR_SQL,
    ACCOUNT_PROFILE_SQL,
)

# The tables the builder writes out, one parquet file each, named after the feature view.
FEATURE_TABLES: Final = (
    "account_payment_velocity",
    "customer_financial_ratios",
    "account_contact_behavior",
    "account_profile",
)
LABEL_TABLE: Final = "labels"
