"""Raw-data validation: contracts hold, bad rows are quarantined with reasons, never lost."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandera.errors import SchemaErrors

from ingestion import rawio
from ingestion.contract import (
    ALL_TABLES,
    MAX_AMOUNT,
    MAX_MONTHLY_INCOME,
    REQUIRED_TABLES,
    TABLES_BY_NAME,
    TIMESTAMP,
)
from ingestion.schemas import table_schema
from ingestion.validate import ValidationFailed, ValidationSummary, validate_raw

pytestmark = pytest.mark.data

Frames = dict[str, pd.DataFrame]
# Tables written in two parts, so that global checks (duplicates) cross part boundaries.
TWO_PARTS = ("payments",)
LOOSE = 0.5  # max_bad_share for tests that corrupt a few rows of a handful


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def clean_frames(with_outcomes: bool = False) -> Frames:
    """A small, valid raw dataset: every rule of the contract holds."""
    frames: Frames = {
        "customers": pd.DataFrame(
            {
                "customer_id": ["c1", "c2", "c3", "c4"],
                "monthly_income": [2500.0, None, 4100.0, 1800.0],
                "region": ["north", "south", "unknown", "east"],
                "created_at": [
                    ts("2020-01-05"),
                    ts("2020-03-01"),
                    ts("2021-07-09"),
                    ts("2022-02-02"),
                ],
                "age_band": ["26-35", "46-55", "unknown", "18-25"],
                "sex": ["female", "male", "unknown", "female"],
            }
        ),
        "accounts": pd.DataFrame(
            {
                "account_id": ["a1", "a2", "a3", "a4", "a5"],
                "customer_id": ["c1", "c2", "c3", "c4", "c1"],
                "product": ["credit_card", "personal_loan", "auto_loan", "overdraft", "telecom"],
                "credit_limit": [5000.0, None, 20000.0, 1000.0, None],
                "original_amount": [1200.0, 8000.0, 15000.5, 300.0, 90.0],
                "opened_at": [ts("2021-01-01")] * 5,
                "delinquent_since": [ts("2023-06-01")] * 5,
                "placed_at": [ts("2023-09-01")] * 4 + [ts("2021-01-01")],
            }
        ),
        "statements": pd.DataFrame(
            {
                "account_id": ["a1", "a1", "a2", "a2", "a3", "a3", "a4", "a4"],
                "statement_date": [ts("2023-10-01"), ts("2023-11-01")] * 4,
                "balance": [1200.0, 1150.0, 8000.0, 7900.0, 15000.5, 14800.0, -20.0, 0.0],
                "minimum_due": [50.0, 50.0, 300.0, None, 600.0, 600.0, 0.0, 0.0],
                "days_past_due": [90, 120, 30, 60, 95, 125, 0, 0],
            }
        ),
        "payments": pd.DataFrame(
            {
                "payment_id": [f"p{i:02d}" for i in range(1, 11)],
                "account_id": ["a1", "a1", "a2", "a3", "a3", "a4", "a5", "a2", "a1", "a3"],
                "paid_at": [ts(f"2023-10-{d:02d} 12:00") for d in range(5, 15)],
                "amount": [50.0, 20.0, 300.0, 600.0, 600.0, 0.0, 15.25, 300.0, 50.0, 10.0],
                "channel": ["card", "cash", "bank_transfer", "direct_debit", "mobile_app"] * 2,
                "status": ["settled"] * 9 + ["reversed"],
                "recorded_at": [ts(f"2023-10-{d:02d} 18:00") for d in range(5, 15)],
            }
        ),
        "contacts": pd.DataFrame(
            {
                "contact_id": ["k1", "k2", "k3", "k4", "k5", "k6"],
                "account_id": ["a1", "a2", "a3", "a4", "a5", "a1"],
                "contacted_at": [ts(f"2023-10-{d:02d} 09:00") for d in range(2, 8)],
                "channel": ["phone", "sms", "email", "letter", "phone", "phone"],
                "outcome": [
                    "no_answer",
                    "right_party_contact",
                    "wrong_party",
                    "refused",
                    "promise_to_pay",
                    "promise_to_pay",
                ],
                "recorded_at": [ts(f"2023-10-{d:02d} 09:00") for d in range(2, 8)],
            }
        ),
        "promises": pd.DataFrame(
            {
                "promise_id": ["r1", "r2", "r3", "r4"],
                "account_id": ["a5", "a1", "a2", "a3"],
                "made_at": [ts("2023-10-06"), ts("2023-10-07"), ts("2023-10-08"), ts("2023-10-09")],
                "promised_amount": [15.25, 50.0, 300.0, 0.0],
                "due_date": [
                    ts("2023-10-20"),
                    ts("2023-10-21"),
                    ts("2023-10-08"),
                    ts("2023-10-30"),
                ],
                "recorded_at": [
                    ts("2023-10-06"),
                    ts("2023-10-07"),
                    ts("2023-10-09"),
                    ts("2023-10-09"),
                ],
            }
        ),
    }
    if with_outcomes:
        frames["outcomes"] = pd.DataFrame(
            {
                "account_id": ["a1", "a2", "a3", "a4", "a5", "a1"],
                "snapshot_at": [ts("2023-12-01")] * 5 + [ts("2024-01-01")],
                "default_30d": [1, 0, 1, 0, 0, 1],
                "recorded_at": [ts("2024-01-01")] * 5 + [ts("2024-01-31")],
            }
        )
    return frames


def split(df: pd.DataFrame, table: str) -> list[pd.DataFrame]:
    if table not in TWO_PARTS:
        return [df]
    half = (len(df) + 1) // 2
    return [df.iloc[:half], df.iloc[half:]]


def write_dataset(frames: Frames, raw_dir: Path, as_is: tuple[str, ...] = ()) -> None:
    """Write raw parts; tables in `as_is` keep their pandas types (for wrong-typed data)."""
    for name, df in frames.items():
        for part, chunk in enumerate(split(df, name)):
            if name in as_is:
                path = rawio.table_dir(raw_dir, name) / f"part-{part:05d}.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(pa.Table.from_pandas(chunk, preserve_index=False), path)
            else:
                rawio.write_part(chunk, raw_dir, name, part)


def contract_typed(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """A frame as it reads back from parquet after conforming to the contract."""
    df = df.copy()
    for col in TABLES_BY_NAME[table].columns:
        if col.dtype == TIMESTAMP:
            df[col.name] = pd.to_datetime(df[col.name], utc=True, format="ISO8601")
    conformed = rawio.conform(df, TABLES_BY_NAME[table])
    return pa.Table.from_pandas(conformed, preserve_index=False).to_pandas()


@dataclass
class Env:
    root: Path
    raw: Path = field(init=False)
    out: Path = field(init=False)
    quarantine: Path = field(init=False)
    report: Path = field(init=False)

    def __post_init__(self) -> None:
        self.raw, self.out = self.root / "raw", self.root / "validated"
        self.quarantine, self.report = self.root / "quarantine", self.root / "reports"

    def validate(self, max_bad_share: float = 0.05) -> ValidationSummary:
        return validate_raw(self.raw, self.out, self.quarantine, self.report, max_bad_share)

    def good(self, table: str) -> pd.DataFrame:
        return rawio.read_table(self.out, table)

    def quarantined(self, table: str) -> pd.DataFrame:
        return pd.read_parquet(self.quarantine / f"{table}.parquet")

    def quality(self) -> dict:
        return json.loads((self.report / "quality.json").read_text())


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def assert_counts_add_up(summary: ValidationSummary, env: Env, frames: Frames) -> None:
    for name, df in frames.items():
        counts = summary.tables[name]
        assert counts.raw == len(df)
        assert counts.raw == counts.good + counts.quarantined
        assert len(env.good(name)) == counts.good
        assert len(env.quarantined(name)) == counts.quarantined


# --- a clean dataset ---------------------------------------------------------------------------


@pytest.mark.parametrize("with_outcomes", [False, True])
def test_clean_dataset_passes_unchanged(env: Env, with_outcomes: bool) -> None:
    frames = clean_frames(with_outcomes)
    write_dataset(frames, env.raw)
    (env.raw / "_manifest.json").write_text('{"seed": 7}')

    summary = env.validate()

    assert summary.status == "passed"
    assert set(summary.tables) == set(frames)
    assert_counts_add_up(summary, env, frames)
    for name in frames:
        assert summary.tables[name].quarantined == 0
        pd.testing.assert_frame_equal(env.good(name), rawio.read_table(env.raw, name))
        pd.testing.assert_frame_equal(env.good(name), contract_typed(frames[name], name))
    assert json.loads((env.out / "_manifest.json").read_text()) == {"seed": 7}
    assert not rawio.has_table(env.out, "outcomes") or with_outcomes
    leftovers = [p.name for p in env.root.iterdir() if "-" in p.name]
    assert leftovers == []


# --- table-level failures --------------------------------------------------------------------


def test_missing_required_table_fails(env: Env) -> None:
    frames = clean_frames()
    del frames["contacts"]
    write_dataset(frames, env.raw)
    with pytest.raises(ValidationFailed, match="contacts"):
        env.validate()


def test_missing_column_fails_naming_it(env: Env) -> None:
    frames = clean_frames()
    frames["payments"] = frames["payments"].drop(columns="channel")
    write_dataset(frames, env.raw, as_is=("payments",))
    with pytest.raises(ValidationFailed, match=r"payments\.channel: column missing") as err:
        env.validate()
    assert (err.value.table, err.value.column) == ("payments", "channel")


@pytest.mark.parametrize(
    ("column", "values"),
    [
        # Text in most rows: the column, not the rows, is wrong.
        ("amount", ["abc", "12.5", "n/a", "x", "y", "z", "-", "?", "1", "ten"]),
        # Stored as numbers where times belong: cannot be read at all.
        ("paid_at", list(range(10))),
        ("status", [1.5] * 10),
    ],
)
def test_wrong_dtype_column_is_unusable(env: Env, column: str, values: list) -> None:
    frames = clean_frames()
    frames["payments"][column] = values
    write_dataset(frames, env.raw, as_is=("payments",))
    with pytest.raises(ValidationFailed, match=rf"payments\.{column}: ") as err:
        env.validate(max_bad_share=LOOSE)
    assert err.value.column == column
    assert not env.out.exists()


# --- row-level problems: quarantined with a reason, everything else kept ----------------------


@dataclass
class Case:
    table: str
    bad_rows: list[int]  # positions in the table's rows (across parts)
    reason: str  # every bad row's reason contains this
    as_is: tuple[str, ...] = ()
    # Other tables that lose rows as a consequence (e.g. children of a quarantined account).
    cascades: dict[str, list[int]] = field(default_factory=dict)


def _negative_amount(f: Frames) -> Case:
    f["payments"].loc[2, "amount"] = -5.0
    return Case("payments", [2], "amount: less than 0 (-5.0)")


def _duplicate_id(f: Frames) -> Case:
    # p02 again in the second part, p09 twice in the same part: the first occurrence stays.
    extra = f["payments"].iloc[[1, 8]].assign(amount=[1.0, 2.0])
    f["payments"] = pd.concat([f["payments"], extra], ignore_index=True)
    return Case("payments", [10, 11], "payment_id: duplicate")


def _unparseable_date(f: Frames) -> Case:
    paid = f["payments"]["paid_at"].map(lambda t: t.isoformat()).astype(object)
    paid[6] = "2023-10-32T12:00:00"
    f["payments"]["paid_at"] = paid
    return Case(
        "payments", [6], "paid_at: unparseable timestamp ('2023-10-32T12:00:00')", ("payments",)
    )


def _orphan_account(f: Frames) -> Case:
    f["payments"].loc[7, "account_id"] = "a99"
    return Case("payments", [7], "account_id: unknown account")


def _recorded_before_paid(f: Frames) -> Case:
    f["payments"].loc[4, "recorded_at"] = ts("2023-10-01")
    return Case("payments", [4], "recorded_at: before paid_at")


def _value_not_allowed(f: Frames) -> Case:
    f["contacts"].loc[3, "channel"] = "pigeon"
    return Case("contacts", [3], "channel: not allowed ('pigeon')")


def _null_not_nullable(f: Frames) -> Case:
    f["contacts"]["outcome"] = f["contacts"]["outcome"].astype(object)
    f["contacts"].loc[1, "outcome"] = None
    return Case("contacts", [1], "outcome: null")


def _several_reasons(f: Frames) -> Case:
    f["payments"].loc[0, ["amount", "channel"]] = [-1.0, "pigeon"]
    return Case("payments", [0], "amount: less than 0 (-1.0); channel: not allowed ('pigeon')")


def _due_before_made(f: Frames) -> Case:
    f["promises"].loc[0, "due_date"] = ts("2023-10-01")
    return Case("promises", [0], "due_date: before made_at")


def _placed_before_opened(f: Frames) -> Case:
    # a4's payments, contacts and statements become orphans once a4 is quarantined.
    f["accounts"].loc[3, "placed_at"] = ts("2020-12-31")
    cascades = {"payments": [5], "contacts": [3], "statements": [6, 7]}
    return Case("accounts", [3], "placed_at: before opened_at", cascades=cascades)


def _orphan_customer(f: Frames) -> Case:
    f["accounts"].loc[1, "customer_id"] = "c404"
    cascades = {"payments": [2, 7], "contacts": [1], "statements": [2, 3], "promises": [2]}
    return Case("accounts", [1], "customer_id: unknown customer", cascades=cascades)


def _blank_id(f: Frames) -> Case:
    f["customers"].loc[3, "customer_id"] = "  "
    # c4 owns a4, whose rows follow it into quarantine.
    cascades = {"accounts": [3], "payments": [5], "contacts": [3], "statements": [6, 7]}
    return Case("customers", [3], "customer_id: blank", cascades=cascades)


def _negative_days_past_due(f: Frames) -> Case:
    f["statements"].loc[5, "days_past_due"] = -3
    return Case("statements", [5], "days_past_due: less than 0 (-3)")


def _outcome_not_binary(f: Frames) -> Case:
    f["outcomes"] = clean_frames(with_outcomes=True)["outcomes"]
    f["outcomes"].loc[2, "default_30d"] = 2
    return Case("outcomes", [2], "default_30d: not allowed (2)")


def _outcome_duplicate_key(f: Frames) -> Case:
    outcomes = clean_frames(with_outcomes=True)["outcomes"]
    f["outcomes"] = pd.concat([outcomes, outcomes.iloc[[1]]], ignore_index=True)
    return Case("outcomes", [6], "account_id, snapshot_at: duplicate")


# Money that no real feed holds: infinities, NaN where a value is required, 1e300.
A4_CHILDREN = {"payments": [5], "contacts": [3], "statements": [6, 7]}


def _infinite_amount(f: Frames) -> Case:
    f["payments"].loc[1, "amount"] = float("inf")
    return Case("payments", [1], "amount: not finite (inf)")


def _absurd_amount(f: Frames) -> Case:
    f["payments"].loc[3, "amount"] = 1e300
    return Case("payments", [3], f"amount: greater than {MAX_AMOUNT:g} (1e+300)")


def _nan_amount(f: Frames) -> Case:
    f["payments"].loc[8, "amount"] = float("nan")
    return Case("payments", [8], "amount: null")


def _minus_infinite_balance(f: Frames) -> Case:
    f["statements"].loc[1, "balance"] = float("-inf")
    return Case("statements", [1], "balance: not finite (-inf)")


def _absurd_credit_balance(f: Frames) -> Case:
    f["statements"].loc[2, "balance"] = -1e300
    return Case("statements", [2], f"balance: less than {-MAX_AMOUNT:g} (-1e+300)")


def _infinite_minimum_due(f: Frames) -> Case:
    # A nullable column: null is allowed there, infinity is not.
    f["statements"].loc[4, "minimum_due"] = float("inf")
    return Case("statements", [4], "minimum_due: not finite (inf)")


def _absurd_credit_limit(f: Frames) -> Case:
    f["accounts"].loc[3, "credit_limit"] = 1e300
    reason = f"credit_limit: greater than {MAX_AMOUNT:g} (1e+300)"
    return Case("accounts", [3], reason, cascades=A4_CHILDREN)


def _nan_original_amount(f: Frames) -> Case:
    f["accounts"].loc[3, "original_amount"] = float("nan")
    return Case("accounts", [3], "original_amount: null", cascades=A4_CHILDREN)


def _infinite_promise(f: Frames) -> Case:
    f["promises"].loc[1, "promised_amount"] = float("inf")
    return Case("promises", [1], "promised_amount: not finite (inf)")


def _absurd_income(f: Frames) -> Case:
    f["customers"].loc[3, "monthly_income"] = 1e300
    reason = f"monthly_income: greater than {MAX_MONTHLY_INCOME:g} (1e+300)"
    return Case("customers", [3], reason, cascades={"accounts": [3], **A4_CHILDREN})


def _minus_infinite_income(f: Frames) -> Case:
    f["customers"].loc[3, "monthly_income"] = float("-inf")
    reason = "monthly_income: not finite (-inf)"
    return Case("customers", [3], reason, cascades={"accounts": [3], **A4_CHILDREN})


CASES: dict[str, Callable[[Frames], Case]] = {
    "negative amount": _negative_amount,
    "duplicate id": _duplicate_id,
    "unparseable date": _unparseable_date,
    "orphan account": _orphan_account,
    "recorded before paid": _recorded_before_paid,
    "value not allowed": _value_not_allowed,
    "null": _null_not_nullable,
    "several reasons": _several_reasons,
    "due before made": _due_before_made,
    "placed before opened": _placed_before_opened,
    "orphan customer": _orphan_customer,
    "blank id": _blank_id,
    "negative int": _negative_days_past_due,
    "outcome not binary": _outcome_not_binary,
    "outcome duplicate key": _outcome_duplicate_key,
    "infinite amount": _infinite_amount,
    "absurd amount": _absurd_amount,
    "nan amount": _nan_amount,
    "minus infinite balance": _minus_infinite_balance,
    "absurd credit balance": _absurd_credit_balance,
    "infinite minimum due": _infinite_minimum_due,
    "absurd credit limit": _absurd_credit_limit,
    "nan original amount": _nan_original_amount,
    "infinite promise": _infinite_promise,
    "absurd income": _absurd_income,
    "minus infinite income": _minus_infinite_income,
}


def raw_positions(quarantined: pd.DataFrame, df: pd.DataFrame, table: str) -> list[int]:
    """Where quarantined rows sat in the table's rows, from their source part and row."""
    offsets, start = {}, 0
    for part, chunk in enumerate(split(df, table)):
        offsets[f"part-{part:05d}.parquet"] = start
        start += len(chunk)
    pairs = zip(quarantined["source_part"], quarantined["source_row"], strict=True)
    return [offsets[part] + int(row) for part, row in pairs]


def expected_good(frames: Frames, name: str, bad_rows: list[int]) -> pd.DataFrame:
    kept = frames[name].drop(index=bad_rows).reset_index(drop=True)
    return contract_typed(kept, name)


@pytest.mark.parametrize("case_name", list(CASES))
def test_bad_rows_are_quarantined_with_reasons(env: Env, case_name: str) -> None:
    frames = clean_frames()
    case = CASES[case_name](frames)
    write_dataset(frames, env.raw, as_is=case.as_is)

    summary = env.validate(max_bad_share=LOOSE)

    assert summary.status == "passed"
    assert_counts_add_up(summary, env, frames)
    bad_by_table = {**case.cascades, case.table: case.bad_rows}
    for name in frames:
        bad = bad_by_table.get(name, [])
        pd.testing.assert_frame_equal(env.good(name), expected_good(frames, name, bad))
        table_schema(TABLES_BY_NAME[name]).validate(env.good(name), lazy=True)
        assert sorted(raw_positions(env.quarantined(name), frames[name], name)) == sorted(bad)
    reasons = env.quarantined(case.table)["reason"]
    assert all(case.reason in r for r in reasons), list(reasons)
    assert case.reason.split(" (")[0].split(";")[0] in summary.tables[case.table].reasons


def test_quarantine_keeps_original_values_as_text(env: Env) -> None:
    frames = clean_frames()
    _unparseable_date(frames)
    _negative_amount(frames)
    write_dataset(frames, env.raw, as_is=("payments",))
    env.validate(max_bad_share=LOOSE)

    quarantined = env.quarantined("payments")
    expected_columns = [*TABLES_BY_NAME["payments"].column_names, "reason", "source_part"]
    assert list(quarantined.columns[: len(expected_columns)]) == expected_columns
    row = quarantined.set_index("payment_id").loc["p07"]
    assert row["paid_at"] == "2023-10-32T12:00:00"
    assert row["source_part"] == "part-00001.parquet"
    assert quarantined.set_index("payment_id").loc["p03", "amount"] == "-5.0"


# --- too many bad rows ------------------------------------------------------------------------


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def test_too_many_bad_rows_fails_and_keeps_previous_output(env: Env) -> None:
    write_dataset(clean_frames(), env.raw)
    env.validate()
    before_out, before_quarantine = snapshot(env.out), snapshot(env.quarantine)

    frames = clean_frames()
    frames["payments"].loc[[0, 3], "amount"] = -1.0  # 2 of 10 rows: 20% > 5%
    for table in REQUIRED_TABLES:
        rawio.clear_table(env.raw, table.name)
    write_dataset(frames, env.raw)

    with pytest.raises(ValidationFailed, match=r"payments: .*amount: less than 0") as err:
        env.validate(max_bad_share=0.05)

    assert err.value.table == "payments"
    assert snapshot(env.out) == before_out
    assert snapshot(env.quarantine) == before_quarantine
    assert sorted(p.name for p in env.root.iterdir()) == [
        "quarantine",
        "raw",
        "reports",
        "validated",
    ]
    report = env.quality()
    assert report["status"] == "failed"
    assert "payments" in report["error"]
    assert report["tables"]["customers"]["status"] == "passed"
    assert report["tables"]["payments"]["status"] == "failed"


# --- the quality report -----------------------------------------------------------------------


def test_quality_report_counts_and_profiles(env: Env) -> None:
    frames = clean_frames()
    _negative_amount(frames)
    _orphan_account(frames)
    write_dataset(frames, env.raw)
    env.validate(max_bad_share=LOOSE)

    report = env.quality()
    assert report["status"] == "passed"
    payments = report["tables"]["payments"]
    assert payments["counts"] == {"raw": 10, "good": 8, "quarantined": 2, "quarantined_share": 0.2}
    assert {r["reason"]: r["rows"] for r in payments["quarantine_reasons"]} == {
        "amount: less than 0": 1,
        "account_id: unknown account": 1,
    }
    assert report["totals"]["raw"] == sum(len(df) for df in frames.values())
    profile = payments["profile"]
    assert profile["rows"] == 8
    assert profile["missing"]["amount"]["count"] == 0
    amounts = frames["payments"]["amount"].drop(index=[2, 7])
    assert profile["numeric"]["amount"]["min"] == amounts.min()
    assert profile["numeric"]["amount"]["max"] == amounts.max()
    assert profile["numeric"]["amount"]["median"] == pytest.approx(amounts.median())
    assert profile["timestamps"]["paid_at"]["min"].startswith("2023-10-05T12:00:00")
    channels = {v["value"]: v["rows"] for v in profile["categorical"]["channel"]}
    assert sum(channels.values()) == 8
    customers = report["tables"]["customers"]["profile"]
    assert customers["missing"]["monthly_income"] == {"count": 1, "share": 0.25}
    markdown = (env.report / "quality.md").read_text()
    assert "| payments | passed | 10 | 8 | 2 |" in markdown
    assert "amount: less than 0" in markdown


# --- a property: whatever rows are corrupted, nothing is lost ---------------------------------

CORRUPTIONS: dict[str, tuple[str, object]] = {
    "amount": ("amount", -9.0),
    "channel": ("channel", "pigeon"),
    "status": ("status", "lost"),
    "recorded": ("recorded_at", ts("2020-01-01")),
    "orphan": ("account_id", "a404"),
}


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.integers(min_value=0, max_value=9), st.sampled_from(sorted(CORRUPTIONS)), max_size=10
    )
)
def test_counts_always_add_up(corrupted: dict[int, str]) -> None:
    frames = clean_frames()
    for row, kind in corrupted.items():
        column, value = CORRUPTIONS[kind]
        frames["payments"].loc[row, column] = value
    with tempfile.TemporaryDirectory() as tmp:
        env = Env(Path(tmp))
        write_dataset(frames, env.raw)
        summary = env.validate(max_bad_share=1.0)
        assert_counts_add_up(summary, env, frames)
        assert set(env.quarantined("payments")["payment_id"]) == {
            f"p{row + 1:02d}" for row in corrupted
        }
        assert set(env.good("payments")["payment_id"]).isdisjoint(
            env.quarantined("payments")["payment_id"]
        )


def test_full_schema_rejects_what_validation_quarantines() -> None:
    good = contract_typed(clean_frames()["payments"], "payments")
    table_schema(TABLES_BY_NAME["payments"]).validate(good)
    bad = pd.concat([good, good.iloc[[0]]], ignore_index=True)
    bad.loc[1, "amount"] = -1.0
    bad.loc[2, "recorded_at"] = ts("2000-01-01")
    with pytest.raises(SchemaErrors) as err:
        table_schema(TABLES_BY_NAME["payments"]).validate(bad, lazy=True)
    failed = err.value.failure_cases.dropna(subset=["index"])
    assert set(failed["index"].astype(int)) == {1, 2, 10}


def test_non_finite_and_absurd_amounts_are_quarantined_the_rest_passes(env: Env) -> None:
    frames = clean_frames()
    inf, nan = float("inf"), float("nan")
    frames["payments"]["amount"] = [50.0, inf, 300.0, 1e300, 600.0, 0.0, -inf, 300.0, nan, 10.0]
    write_dataset(frames, env.raw)

    summary = env.validate(max_bad_share=LOOSE)

    reasons = env.quarantined("payments").set_index("payment_id")["reason"].to_dict()
    assert reasons == {
        "p02": "amount: not finite (inf)",
        "p04": f"amount: greater than {MAX_AMOUNT:g} (1e+300)",
        "p07": "amount: not finite (-inf)",
        "p09": "amount: null",
    }
    assert summary.status == "passed"
    assert (summary.tables["payments"].good, summary.tables["payments"].quarantined) == (6, 4)
    assert summary.tables["payments"].reasons == {
        "amount: not finite": 2,
        "amount: greater than 1e+10": 1,
        "amount: null": 1,
    }
    good = env.good("payments")
    table_schema(TABLES_BY_NAME["payments"]).validate(good, lazy=True)
    assert good["amount"].between(0, MAX_AMOUNT).all()
    for name in ("customers", "accounts", "statements", "contacts", "promises"):
        assert summary.tables[name].quarantined == 0


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), 1e300, -1e300])
def test_full_schema_rejects_non_finite_and_absurd_money(value: float) -> None:
    good = contract_typed(clean_frames()["statements"], "statements")
    good.loc[3, "balance"] = value
    good.loc[5, "minimum_due"] = abs(value)
    with pytest.raises(SchemaErrors) as err:
        table_schema(TABLES_BY_NAME["statements"]).validate(good, lazy=True)
    failed = err.value.failure_cases.dropna(subset=["index"])
    assert set(failed["index"].astype(int)) == {3, 5}


def test_output_may_not_replace_the_raw_data(env: Env) -> None:
    write_dataset(clean_frames(), env.raw)
    with pytest.raises(ValueError, match="raw data"):
        validate_raw(env.raw, env.raw, env.quarantine, env.report)
    assert rawio.has_table(env.raw, "payments")


def test_every_contract_table_is_covered() -> None:
    assert {t.name for t in ALL_TABLES} == set(clean_frames(with_outcomes=True))
