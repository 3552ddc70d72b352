"""The feature SQL on tiny hand-made datasets, with every expected value worked out by hand."""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestion.features import build_features
from tests.rawdata import one_account, ts, write_raw

pytestmark = pytest.mark.unit


def build(
    root: Path, tables: dict[str, list[dict[str, object]]], as_of: str
) -> dict[str, pd.DataFrame]:
    write_raw(root / "raw", tables, as_of)
    build_features(root / "raw", root / "features")
    names = (
        "account_payment_velocity",
        "customer_financial_ratios",
        "account_contact_behavior",
        "account_profile",
        "labels",
    )
    return {n: pd.read_parquet(root / "features" / f"{n}.parquet") for n in names}


def at(frame: pd.DataFrame, when: str) -> pd.Series:
    rows = frame[frame["event_timestamp"] == ts(when)]
    assert len(rows) == 1, f"expected one row at {when}, got {len(rows)}"
    return rows.iloc[0]


def payment(
    pid: str,
    paid: str,
    amount: float,
    recorded: str | None = None,
    status: str = "settled",
    channel: str = "card",
    account: str = "A1",
) -> dict[str, object]:
    return {
        "payment_id": pid,
        "account_id": account,
        "paid_at": ts(paid),
        "amount": amount,
        "channel": channel,
        "status": status,
        "recorded_at": ts(recorded or paid),
    }


REVERSAL_AND_LATE = [
    payment("P1", "2024-03-10", 100.0),
    payment("P2", "2024-04-10", 150.0, "2024-04-11"),
    # the bank reverses P2 on 3 May: snapshot 1 May cannot know it yet
    payment("P3", "2024-04-10", 150.0, "2024-05-03", status="reversed"),
    # paid 20 May but only recorded 5 June (a late bank file)
    payment("P4", "2024-05-20", 200.0, "2024-06-05", channel="bank_transfer"),
]


def test_payment_history_sees_only_what_was_recorded(tmp_path: Path) -> None:
    out = build(tmp_path, one_account(payments=REVERSAL_AND_LATE), as_of="2024-07-01")
    v = out["account_payment_velocity"]
    assert list(at(v, "2024-05-01")["payment_history"]) == [150.0, 100.0, 0, 0, 0, 0]
    # the reversal is known by 1 June: April nets to zero; P4 is not recorded yet
    assert list(at(v, "2024-06-01")["payment_history"]) == [0, 0, 100.0, 0, 0, 0]
    assert list(at(v, "2024-07-01")["payment_history"]) == [0, 200.0, 0, 100.0, 0, 0]
    may = at(v, "2024-05-01")
    assert may["payment_velocity"] == pytest.approx((150 + 100) / 3 / 2700)
    # two paid months, mean 125, std 25: 2/6 * (1 - 0.2)
    assert may["payment_consistency_score"] == pytest.approx(2 / 6 * 0.8)
    assert may["days_since_last_payment"] == 21
    # created_timestamp: the newest input recorded by the snapshot, never after it
    assert (v["created_timestamp"] <= v["event_timestamp"]).all()
    assert at(v, "2024-05-01")["created_timestamp"] == ts("2024-04-25")


def test_statement_history_and_payment_ratio(tmp_path: Path) -> None:
    out = build(tmp_path, one_account(payments=REVERSAL_AND_LATE), as_of="2024-07-01")
    may = at(out["account_payment_velocity"], "2024-05-01")
    # statements of 25 April, March, February, January (newest first), then none yet
    assert list(may["balance_history"]) == [2700.0, 2800.0, 2900.0, 3000.0, 0.0, 0.0]
    assert list(may["days_past_due_history"]) == [0, 30, 30, 30, 0, 0]
    assert may["credit_limit"] == 5000.0
    # April's 150 against the balance of the statement before the newest (March: 2,800)
    assert may["payment_to_balance_ratio"] == pytest.approx(150 / 2800)


def test_days_overdue_and_overdue_since(tmp_path: Path) -> None:
    v = build(tmp_path, one_account(), as_of="2024-07-01")["account_payment_velocity"]
    feb = at(v, "2024-02-01")
    # statement of 25 Jan says 30 days past due; 7 more days to 1 Feb
    assert feb["days_overdue"] == 37
    assert feb["overdue_since"] == ts("2023-12-26")
    # April statement is current: not overdue, and overdue_since is null
    may = at(v, "2024-05-01")
    assert may["days_overdue"] == 0 and pd.isna(may["overdue_since"])
    assert may["max_days_past_due_6m"] == 30 and may["months_past_due_6m"] == 3


def test_no_payments_and_first_month(tmp_path: Path) -> None:
    out = build(tmp_path, one_account(), as_of="2024-03-01")
    v = out["account_payment_velocity"]
    # placed 10 Jan with a first statement on 25 Jan: the first snapshot is 1 Feb
    assert list(v["event_timestamp"]) == [ts("2024-02-01"), ts("2024-03-01")]
    feb = at(v, "2024-02-01")
    assert list(feb["payment_history"]) == [0.0] * 6
    assert feb["payment_velocity"] == 0.0
    assert feb["payment_consistency_score"] == 0.0
    assert feb["trend_direction"] == 0
    assert feb["seasonal_payment_pattern"] == 1.0
    assert feb["days_since_last_payment"] == 22  # since placement on 10 Jan
    assert feb["balance_change_6m"] == 0.0
    b = at(out["account_contact_behavior"], "2024-02-01")
    assert b["payment_channel_preference"] == "none"
    assert b["contact_responsiveness"] == 0.5 and b["promise_to_pay_reliability"] == 0.5


def test_trend_direction_falling_payments(tmp_path: Path) -> None:
    pays = [payment(f"P{m}", f"2024-{m:02d}-12", 300.0 - 50 * m) for m in range(1, 6)]
    v = build(tmp_path, one_account(payments=pays), as_of="2024-06-01")["account_payment_velocity"]
    jun = at(v, "2024-06-01")
    assert list(jun["payment_history"]) == [50.0, 100.0, 150.0, 200.0, 250.0, 0.0]
    # slope over chronological months [0, 250, 200, 150, 100, 50] is negative
    assert jun["trend_direction"] == -1


def test_seasonal_pattern_needs_a_year(tmp_path: Path) -> None:
    tables = one_account(
        payments=[
            payment("P1", "2023-06-15", 600.0),
            *[payment(f"Q{m}", f"2023-{m:02d}-10", 100.0) for m in range(7, 13)],
            *[payment(f"R{m}", f"2024-{m:02d}-10", 100.0) for m in range(1, 6)],
        ]
    )
    tables["accounts"][0]["placed_at"] = ts("2023-05-10")
    tables["accounts"][0]["delinquent_since"] = ts("2023-05-01")
    tables["statements"] = [
        {
            "account_id": "A1",
            "statement_date": ts(f"{y}-{m:02d}-25"),
            "balance": 3000.0,
            "minimum_due": 100.0,
            "days_past_due": 30,
        }
        for y, m in [(2023, mm) for mm in range(5, 13)] + [(2024, mm) for mm in range(1, 6)]
    ]
    v = build(tmp_path, tables, as_of="2024-06-01")["account_payment_velocity"]
    jun = at(v, "2024-06-01")
    # June last year: 600; mean over the 12 months before: (600 + 11 * 100) / 12
    assert jun["seasonal_payment_pattern"] == pytest.approx(600 / ((600 + 1100) / 12))
    # a year of history is not there yet in January
    assert at(v, "2024-01-01")["seasonal_payment_pattern"] == 1.0


def two_accounts(income: float | None) -> dict[str, list[dict[str, object]]]:
    tables = one_account()
    tables["customers"][0]["monthly_income"] = income
    second = dict(
        tables["accounts"][0], account_id="A2", product="personal_loan", credit_limit=None
    )
    tables["accounts"].append(second)
    tables["statements"] += [
        {
            "account_id": "A2",
            "statement_date": ts("2024-01-25"),
            "balance": 1000.0,
            "minimum_due": 50.0,
            "days_past_due": 60,
        },
    ]
    return tables


def test_financial_ratios_across_accounts(tmp_path: Path) -> None:
    r = build(tmp_path, two_accounts(2000.0), as_of="2024-02-01")["customer_financial_ratios"]
    feb = at(r, "2024-02-01")
    assert feb["debt_to_income_ratio"] == pytest.approx(4000 / 2000)
    assert feb["payment_capacity_score"] == pytest.approx((2000 - 150) / 2000)
    assert feb["risk_concentration_index"] == pytest.approx((3000**2 + 1000**2) / 4000**2)


def test_zero_and_unknown_income(tmp_path: Path) -> None:
    zero = build(tmp_path / "z", two_accounts(0.0), as_of="2024-02-01")["customer_financial_ratios"]
    assert at(zero, "2024-02-01")["debt_to_income_ratio"] == 1000.0  # capped, finite
    assert at(zero, "2024-02-01")["payment_capacity_score"] == 0.0
    unknown = build(tmp_path / "u", two_accounts(None), as_of="2024-02-01")[
        "customer_financial_ratios"
    ]
    assert pd.isna(at(unknown, "2024-02-01")["debt_to_income_ratio"])
    assert pd.isna(at(unknown, "2024-02-01")["payment_capacity_score"])


def test_loan_without_limit_has_no_utilisation(tmp_path: Path) -> None:
    v = build(tmp_path, two_accounts(2000.0), as_of="2024-02-01")["account_payment_velocity"]
    loan = v[v["account_id"] == "A2"].iloc[0]
    assert pd.isna(loan["credit_utilisation"])
    assert at(v[v["account_id"] == "A1"], "2024-02-01")["credit_utilisation"] == pytest.approx(0.6)


def contact(cid: str, when: str, outcome: str, recorded: str | None = None) -> dict[str, object]:
    return {
        "contact_id": cid,
        "account_id": "A1",
        "contacted_at": ts(when),
        "channel": "phone",
        "outcome": outcome,
        "recorded_at": ts(recorded or when),
    }


def test_contacts_and_promises(tmp_path: Path) -> None:
    contacts = [
        contact("K1", "2024-03-05", "no_answer"),
        contact("K2", "2024-03-12", "promise_to_pay"),
        contact("K3", "2024-03-20", "right_party_contact"),
        contact("K4", "2024-03-28", "refused", recorded="2024-04-03"),  # recorded late
    ]
    promises = [
        # kept: 95 of 100 paid by the due date
        {
            "promise_id": "R1",
            "account_id": "A1",
            "made_at": ts("2024-03-12"),
            "promised_amount": 100.0,
            "due_date": ts("2024-03-20"),
            "recorded_at": ts("2024-03-12"),
        },
        # broken: nothing paid
        {
            "promise_id": "R2",
            "account_id": "A1",
            "made_at": ts("2024-04-05"),
            "promised_amount": 80.0,
            "due_date": ts("2024-04-15"),
            "recorded_at": ts("2024-04-05"),
        },
        # not yet due on 1 May (due 30 April + 3 days grace): not judged then
        {
            "promise_id": "R3",
            "account_id": "A1",
            "made_at": ts("2024-04-25"),
            "promised_amount": 50.0,
            "due_date": ts("2024-04-30"),
            "recorded_at": ts("2024-04-25"),
        },
    ]
    pays = [payment("P1", "2024-03-18", 95.0)]
    b = build(
        tmp_path,
        one_account(contacts=contacts, promises=promises, payments=pays),
        as_of="2024-06-01",
    )["account_contact_behavior"]
    apr = at(b, "2024-04-01")
    # K4 was recorded after 1 April: 3 contacts, 2 responsive -> (2 + 1) / (3 + 2)
    assert apr["contacts_90d"] == 3
    assert apr["contact_responsiveness"] == pytest.approx(3 / 5)
    assert apr["promise_to_pay_reliability"] == pytest.approx((1 + 1) / (1 + 2))
    may = at(b, "2024-05-01")
    assert may["promise_to_pay_reliability"] == pytest.approx((1 + 1) / (2 + 2))
    assert may["broken_promises_90d"] == 1
    assert at(b, "2024-06-01")["broken_promises_90d"] == 2  # R3 judged and broken by June


def test_labels_mature_and_respect_reversals(tmp_path: Path) -> None:
    labels = build(tmp_path, one_account(payments=REVERSAL_AND_LATE), as_of="2024-07-01")["labels"]
    got = {
        t.strftime("%Y-%m-%d"): int(d)
        for t, d in zip(labels["event_timestamp"], labels["default_30d"], strict=True)
    }
    # Feb: nothing paid in (1 Feb, 2 Mar]; Mar: P1; Apr: P2 reversed -> default; May: P4
    assert got == {"2024-02-01": 1, "2024-03-01": 0, "2024-04-01": 1, "2024-05-01": 0}
    # June's label matures on 22 July, after as_of: not written
    assert (labels["created_timestamp"] <= ts("2024-07-01")).all()
    assert (labels["created_timestamp"] == labels["event_timestamp"] + pd.Timedelta(days=51)).all()


def test_debt_is_what_is_outstanding_at_the_snapshot(tmp_path: Path) -> None:
    # 500 paid after the 25 Jan statement; 2,500 more after the 25 Feb one (recorded on time)
    pays = [payment("P1", "2024-01-28", 500.0), payment("P2", "2024-02-27", 2900.0)]
    out = build(tmp_path, one_account(payments=pays), as_of="2024-07-01")
    v = out["account_payment_velocity"]
    assert at(v, "2024-02-01")["debt_amount"] == 3000.0 - 500.0
    assert at(v, "2024-03-01")["debt_amount"] == 0.0  # paid off: 2,900 - 2,900
    # nothing outstanding, nothing to collect: no label for March
    labels = out["labels"]
    assert ts("2024-03-01") not in set(labels["event_timestamp"])
    assert ts("2024-02-01") in set(labels["event_timestamp"])


def test_payment_recorded_after_grace_does_not_count(tmp_path: Path) -> None:
    pays = [payment("P1", "2024-03-10", 100.0, recorded="2024-05-01")]  # 51+ days late
    labels = build(tmp_path, one_account(payments=pays), as_of="2024-07-01")["labels"]
    assert at(labels, "2024-03-01")["default_30d"] == 1


def test_observed_outcomes_replace_derived_labels(tmp_path: Path) -> None:
    tables = one_account(
        outcomes=[
            {
                "account_id": "A1",
                "snapshot_at": ts("2024-03-01"),
                "default_30d": 0,
                "recorded_at": ts("2024-04-01"),
            },
            {
                "account_id": "A1",
                "snapshot_at": ts("2024-06-01"),
                "default_30d": 1,
                "recorded_at": ts("2024-07-15"),
            },  # not recorded by as_of
        ]
    )
    labels = build(tmp_path, tables, as_of="2024-07-01")["labels"]
    assert list(labels["event_timestamp"]) == [ts("2024-03-01")]
    assert list(labels["default_30d"]) == [0]
    assert list(labels["customer_id"]) == ["C1"]


# --- properties -------------------------------------------------------------------------

payments_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=170),  # day offset from 10 Jan
        st.floats(min_value=0.0, max_value=5000.0, allow_nan=False),
        st.integers(min_value=0, max_value=40),  # recording lag in days
        st.sampled_from(["settled", "settled", "reversed"]),
    ),
    max_size=12,
)


def _payments(spec: list[tuple[int, float, int, str]]) -> list[dict[str, object]]:
    base = ts("2024-01-10")
    return [
        {
            "payment_id": f"P{i}",
            "account_id": "A1",
            "paid_at": base + pd.Timedelta(days=d),
            "amount": a,
            "channel": "card",
            "status": s,
            "recorded_at": base + pd.Timedelta(days=d + lag),
        }
        for i, (d, a, lag, s) in enumerate(spec)
    ]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=payments_strategy, income=st.one_of(st.just(0.0), st.floats(0.0, 1e6)))
def test_ratios_finite_and_scores_bounded(
    spec: list[tuple[int, float, int, str]], income: float
) -> None:
    root = Path(tempfile.mkdtemp())
    try:
        tables = one_account(payments=_payments(spec))
        tables["customers"][0]["monthly_income"] = income
        out = build(root, tables, as_of="2024-07-01")
    finally:
        shutil.rmtree(root)
    v, r = out["account_payment_velocity"], out["customer_financial_ratios"]
    for col in ("payment_velocity", "payment_consistency_score"):
        assert v[col].between(0.0, 1.0).all(), col
    for col in ("payment_capacity_score", "risk_concentration_index"):
        assert r[col].between(0.0, 1.0).all(), col
    for col in ("debt_to_income_ratio", "balance_change_6m", "seasonal_payment_pattern"):
        values = pd.concat([v.get(col, pd.Series(dtype=float)), r.get(col, pd.Series(dtype=float))])
        assert all(math.isfinite(x) for x in values.dropna()), col
    assert set(v["trend_direction"]) <= {-1, 0, 1}


@settings(max_examples=20, deadline=None)
@given(spec=payments_strategy, late_day=st.integers(0, 170), late_amount=st.floats(1.0, 900.0))
def test_a_payment_recorded_after_a_snapshot_never_changes_it(
    spec: list[tuple[int, float, int, str]], late_day: int, late_amount: float
) -> None:
    root = Path(tempfile.mkdtemp())
    try:
        before = build(root / "a", one_account(payments=_payments(spec)), as_of="2024-07-01")
        extra = _payments([*spec, (late_day, late_amount, 0, "settled")])
        recorded = extra[-1]["recorded_at"]
        after = build(root / "b", one_account(payments=extra), as_of="2024-07-01")
    finally:
        shutil.rmtree(root)
    for view in (
        "account_payment_velocity",
        "customer_financial_ratios",
        "account_contact_behavior",
    ):
        old, new = before[view], after[view]
        unaffected = old["event_timestamp"] < recorded  # type: ignore[operator]
        pd.testing.assert_frame_equal(
            old[unaffected].reset_index(drop=True),
            new[new["event_timestamp"] < recorded].reset_index(drop=True),  # type: ignore[operator]
        )
