"""The UCI adapter: the real shared file and small hand-made files in its format."""

from __future__ import annotations

import csv
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ingestion import rawio
from ingestion.contract import ALL_TABLES, MAX_AMOUNT, TABLES_BY_NAME
from ingestion.uci import (
    BILL_COLS,
    LABEL,
    MANIFEST_FILE,
    PAID_COLS,
    QUARANTINE_FILE,
    STATUS_COLS,
    UCI_COLUMNS,
    UciFormatError,
    UciSummary,
    ingest_uci,
)
from tests.rawdata import assert_meets_contract

pytestmark = pytest.mark.data

# sha256 published in the shared data README.
SHARED_SHA256 = "73bb5152bd49a70927c9a76d2c35ab9adf6a57f33b70d633fc9331e76044bfef"
UTC = "UTC"


def ts(value: str) -> pd.Timestamp:
    return pd.Timestamp(value, tz=UTC)


MONTH_ENDS = [
    ts(d)
    for d in ("2005-04-30", "2005-05-31", "2005-06-30", "2005-07-31", "2005-08-31", "2005-09-30")
]


@dataclass
class Run:
    summary: UciSummary
    out: Path
    quarantine: pd.DataFrame

    def table(self, name: str) -> pd.DataFrame:
        return rawio.read_table(self.out, name)


def run(csv_path: Path, root: Path) -> Run:
    summary = ingest_uci(csv_path, root / "raw_uci", root / "quarantine")
    quarantine = pd.read_parquet(root / "quarantine" / QUARANTINE_FILE)
    return Run(summary, root / "raw_uci", quarantine)


# ---------------------------------------------------------------------------- real file


@pytest.fixture(scope="module")
def real(uci_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run(uci_csv, tmp_path_factory.mktemp("uci_real"))


@pytest.fixture(scope="module")
def source(uci_csv: Path) -> pd.DataFrame:
    return pd.read_csv(uci_csv).set_index("ID")


def test_real_file_every_row_is_a_client(real: Run, source: pd.DataFrame) -> None:
    s = real.summary
    assert s.rows_read == len(source) == s.clients_written
    assert s.rows_rejected == 0 and s.reasons == {}
    assert real.quarantine.empty
    assert real.table("accounts")["account_id"].tolist() == [
        f"UCI-{i}" for i in sorted(source.index)
    ]


def test_real_file_six_statements_per_client(real: Run) -> None:
    st = real.table("statements")
    per_account = st.groupby("account_id")["statement_date"].agg(["size", "nunique"])
    assert (per_account["size"] == 6).all() and (per_account["nunique"] == 6).all()
    assert sorted(st["statement_date"].unique()) == MONTH_ENDS
    assert st["minimum_due"].isna().all()


def test_real_file_label_share(real: Run, source: pd.DataFrame) -> None:
    assert 0.21 < real.summary.label_share < 0.23
    assert real.summary.label_share == pytest.approx(source[LABEL].mean())


@pytest.mark.parametrize(
    ("client", "days_past_due", "delinquent_since"),
    [
        # PAY_0=-1, PAY_2=2, PAY_3..PAY_5=0, PAY_6=2 (listed April..September below).
        (2, [60, 0, 0, 0, 60, 0], "2005-04-01"),
        # PAY_0=1, PAY_2=2, PAY_3=2, PAY_4=0, PAY_5=0, PAY_6=2.
        (14, [60, 0, 0, 60, 60, 30], "2005-04-01"),
        # Only PAY_3 (July) = 2.
        (9, [0, 0, 0, 60, 0, 0], "2005-07-01"),
        # Never late (-2, -1 only): delinquent since the snapshot.
        (10, [0, 0, 0, 0, 0, 0], "2005-10-01"),
    ],
)
def test_real_file_days_past_due_hand_picked(
    real: Run, client: int, days_past_due: list[int], delinquent_since: str
) -> None:
    st = real.table("statements").set_index("account_id").loc[f"UCI-{client}"]
    assert st["statement_date"].tolist() == MONTH_ENDS
    assert st["days_past_due"].tolist() == days_past_due
    accounts = real.table("accounts").set_index("account_id")
    assert accounts.loc[f"UCI-{client}", "delinquent_since"] == ts(delinquent_since)


def test_real_file_statements_follow_status_and_bill_columns(
    real: Run, source: pd.DataFrame
) -> None:
    st = real.table("statements")
    ids = st["account_id"].str.removeprefix("UCI-").astype(int).to_numpy().reshape(-1, 6)[:, 0]
    chronological = source.loc[ids]
    status = chronological[list(reversed(STATUS_COLS))].to_numpy()
    bills = chronological[list(reversed(BILL_COLS))].to_numpy()
    assert np.array_equal(st["days_past_due"].to_numpy(), 30 * np.clip(status, 0, None).ravel())
    assert np.array_equal(st["balance"].to_numpy(), bills.ravel().astype(float))


def test_real_file_payments_for_a_hand_picked_client(real: Run) -> None:
    # Client 2 paid PAY_AMT1..6 = 0, 1000, 1000, 1000, 0, 2000 (September..April).
    pay = real.table("payments").set_index("payment_id")
    mine = pay[pay["account_id"] == "UCI-2"]
    assert mine["amount"].to_dict() == {
        "UCIP-2-200504": 2000.0,
        "UCIP-2-200506": 1000.0,
        "UCIP-2-200507": 1000.0,
        "UCIP-2-200508": 1000.0,
    }
    assert mine.loc["UCIP-2-200504", "paid_at"] == ts("2005-04-15 12:00")
    assert (mine["recorded_at"] == mine["paid_at"]).all()
    assert set(mine["status"]) == {"settled"} and set(mine["channel"]) == {"bank_transfer"}


def test_real_file_payments_equal_pay_amt(real: Run, source: pd.DataFrame) -> None:
    pay = real.table("payments")
    paid = source[list(PAID_COLS)]
    assert len(pay) == int((paid > 0).to_numpy().sum())
    totals = pay.groupby("account_id")["amount"].sum()
    expected = paid.sum(axis=1)
    expected = expected[expected > 0]
    expected.index = "UCI-" + expected.index.astype(str)
    pd.testing.assert_series_equal(
        totals.sort_index(),
        expected.astype(float).sort_index(),
        check_names=False,
        check_index_type=False,
    )


def test_real_file_outcomes_match_label(real: Run, source: pd.DataFrame) -> None:
    out = real.table("outcomes").set_index("account_id")
    labels = pd.Series(source[LABEL].to_numpy(), index="UCI-" + source.index.astype(str))
    joined = out.join(labels.rename("label"), how="outer")
    assert len(joined) == len(source) and (joined["default_30d"] == joined["label"]).all()
    assert set(out["snapshot_at"]) == {ts("2005-10-01")}
    assert set(out["recorded_at"]) == {ts("2005-11-01")}


def test_real_file_customers_and_accounts(real: Run, source: pd.DataFrame) -> None:
    customers = real.table("customers").set_index("customer_id")
    assert customers["monthly_income"].isna().all()
    assert set(customers["region"]) == {"unknown"}
    client = customers.loc["UCIC-2"]
    assert (client["sex"], client["age_band"]) == ("female", "26-35")
    assert (customers["sex"] == "male").sum() == (source["SEX"] == 1).sum()
    assert "EDUCATION" not in customers.columns and "MARRIAGE" not in customers.columns
    accounts = real.table("accounts").set_index("account_id")
    # Client 2: LIMIT_BAL 120000, largest bill 3455.
    account = accounts.loc["UCI-2"]
    assert (account["credit_limit"], account["original_amount"]) == (120000.0, 3455.0)
    assert (accounts["customer_id"] == accounts.index.str.replace("UCI-", "UCIC-")).all()


def test_real_file_meets_contract(real: Run) -> None:
    for table in ALL_TABLES:
        assert_meets_contract(real.table(table.name), table)
    assert real.table("contacts").empty and real.table("promises").empty


def test_real_file_manifest(real: Run, uci_csv: Path, source: pd.DataFrame) -> None:
    manifest = json.loads((real.out / MANIFEST_FILE).read_text())
    assert manifest["source"] == "uci"
    assert manifest["as_of"] == "2005-10-01T00:00:00+00:00"
    assert manifest["labels_as_of"] == "2005-11-01T00:00:00+00:00"
    assert manifest["csv"] == str(uci_csv)
    assert manifest["sha256"] == SHARED_SHA256
    assert manifest["rows"] == manifest["clients"] == len(source)
    assert manifest["row_counts"] == real.summary.row_counts
    assert manifest["row_counts"]["statements"] == 6 * len(source)
    assert "10.24432/C55S3H" in manifest["citation"]


# ---------------------------------------------------------------------------- hand-made files


def fake_client(rng: random.Random, client_id: int) -> dict[str, str]:
    """A made-up client with the value ranges of the real file."""
    limit = rng.choice([10000, 20000, 50000, 80000, 120000, 200000, 360000])
    row = {
        "ID": client_id,
        "LIMIT_BAL": limit,
        "SEX": rng.choice([1, 2]),
        "EDUCATION": rng.choice([1, 2, 3]),
        "MARRIAGE": rng.choice([1, 2]),
        "AGE": rng.randint(21, 70),
        LABEL: rng.choice([0, 0, 0, 1]),
    }
    for col in STATUS_COLS:
        row[col] = rng.choice([-2, -1, 0, 0, 0, 1, 2])
    for col in BILL_COLS:
        row[col] = rng.randint(-500, limit)
    for col in PAID_COLS:
        row[col] = rng.choice([0, rng.randint(100, 20000)])
    return {k: str(v) for k, v in row.items()}


def fake_rows(n: int, first_id: int = 50001, seed: int = 7) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [fake_client(rng, first_id + i) for i in range(n)]


def write_csv(
    path: Path,
    rows: list[dict[str, str]],
    header: list[str] | None = None,
    preamble: list[str] | None = None,
) -> Path:
    header = header or list(UCI_COLUMNS)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        if preamble:
            writer.writerow(preamble)
        writer.writerow(header)
        writer.writerows([[row.get(c, "") for c in header] for row in rows])
    return path


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_other_clients_in_shuffled_order(tmp_path: Path) -> None:
    rows = fake_rows(30, first_id=90001)
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    a = run(write_csv(tmp_path / "sorted.csv", rows), tmp_path / "a")
    b = run(write_csv(tmp_path / "shuffled.csv", shuffled), tmp_path / "b")
    assert b.summary.clients_written == 30 and b.summary.rows_rejected == 0
    assert set(b.table("accounts")["account_id"]) == {f"UCI-{90001 + i}" for i in range(30)}
    for table in ALL_TABLES:
        pd.testing.assert_frame_equal(a.table(table.name), b.table(table.name))
        assert_meets_contract(b.table(table.name), table)


def test_two_line_xls_export_header(tmp_path: Path) -> None:
    rows = fake_rows(5)
    preamble = ["", *[f"X{i}" for i in range(1, 24)], "Y"]
    plain = run(write_csv(tmp_path / "plain.csv", rows), tmp_path / "a")
    xls = run(write_csv(tmp_path / "xls.csv", rows, preamble=preamble), tmp_path / "b")
    assert xls.summary.rows_read == 5 == xls.summary.clients_written
    pd.testing.assert_frame_equal(plain.table("statements"), xls.table("statements"))


def test_missing_columns_are_named(tmp_path: Path) -> None:
    header = [c for c in UCI_COLUMNS if c not in ("BILL_AMT3", LABEL)]
    path = write_csv(tmp_path / "short.csv", fake_rows(5), header=header)
    with pytest.raises(UciFormatError, match=r"BILL_AMT3.*default payment next month"):
        ingest_uci(path, tmp_path / "raw_uci", tmp_path / "quarantine")
    assert not (tmp_path / "raw_uci").exists()


def test_bad_rows_are_quarantined_and_good_rows_mapped(tmp_path: Path) -> None:
    rows = fake_rows(100)
    rows[10]["BILL_AMT2"] = "abc"
    rows[20]["PAY_AMT4"] = "-500"
    rows[31]["ID"] = rows[30]["ID"]
    bad_ids = {rows[i]["ID"] for i in (10, 20, 30)}
    result = run(write_csv(tmp_path / "bad.csv", rows), tmp_path)
    s = result.summary
    assert (s.rows_read, s.clients_written, s.rows_rejected) == (100, 96, 4)
    assert s.reasons == {"BILL_AMT2: not numeric": 1, "PAY_AMT4: negative": 1, "ID: duplicate": 2}
    q = result.quarantine.set_index("row_number")
    assert q["reason"].to_dict() == {
        11: "BILL_AMT2: not numeric",
        21: "PAY_AMT4: negative",
        31: "ID: duplicate",
        32: "ID: duplicate",
    }
    assert q.loc[11, "BILL_AMT2"] == "abc" and q.loc[21, "PAY_AMT4"] == "-500"
    assert list(q.columns[: len(UCI_COLUMNS)]) == list(UCI_COLUMNS)
    assert all(str(q[c].dtype) == "string" for c in UCI_COLUMNS)
    accounts = set(result.table("accounts")["account_id"])
    assert len(accounts) == 96 and not accounts & {f"UCI-{i}" for i in bad_ids}
    assert len(result.table("statements")) == 6 * 96


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("SEX", "3", "SEX: not 1 or 2"),
        (LABEL, "2", f"{LABEL}: not 0 or 1"),
        ("PAY_0", "10", "PAY_0: not a status code -2..9"),
        ("PAY_2", "1.5", "PAY_2: not a status code -2..9"),
        ("LIMIT_BAL", "-1", "LIMIT_BAL: negative"),
        ("AGE", "", "AGE: missing"),
        ("ID", "", "ID: missing"),
        ("ID", "7.5", "ID: not a non-negative integer"),
        ("BILL_AMT6", "inf", "BILL_AMT6: not numeric"),
        # Implausible values: quarantined, never mapped onto the raw tables.
        ("AGE", "-5", "AGE: not a whole number of years 18..120"),
        ("AGE", "17", "AGE: not a whole number of years 18..120"),
        ("AGE", "121", "AGE: not a whole number of years 18..120"),
        ("AGE", "30.5", "AGE: not a whole number of years 18..120"),
        ("EDUCATION", "7", "EDUCATION: not a code 0..6"),
        ("EDUCATION", "-1", "EDUCATION: not a code 0..6"),
        ("MARRIAGE", "4", "MARRIAGE: not a code 0..3"),
        ("MARRIAGE", "1.5", "MARRIAGE: not a code 0..3"),
        ("SEX", "-1", "SEX: not 1 or 2"),
        ("PAY_4", "-3", "PAY_4: not a status code -2..9"),
        ("LIMIT_BAL", "1e300", f"LIMIT_BAL: above {MAX_AMOUNT:g}"),
        ("BILL_AMT1", "-1e300", f"BILL_AMT1: outside {-MAX_AMOUNT:g}..{MAX_AMOUNT:g}"),
        ("BILL_AMT4", "2e10", f"BILL_AMT4: outside {-MAX_AMOUNT:g}..{MAX_AMOUNT:g}"),
        ("PAY_AMT2", "1e300", f"PAY_AMT2: above {MAX_AMOUNT:g}"),
        ("ID", "1e300", "ID: not a non-negative integer"),
    ],
)
def test_each_row_problem_is_named(tmp_path: Path, column: str, value: str, reason: str) -> None:
    rows = fake_rows(40)
    rows[5][column] = value
    result = run(write_csv(tmp_path / "one_bad.csv", rows), tmp_path)
    assert result.summary.rows_rejected == 1 and result.summary.clients_written == 39
    assert result.quarantine["reason"].tolist() == [reason]


def test_plausible_edge_values_are_kept(tmp_path: Path) -> None:
    rows = fake_rows(8)
    edges = [
        {"AGE": "18", "EDUCATION": "0", "MARRIAGE": "0"},
        {"AGE": "120", "EDUCATION": "6", "MARRIAGE": "3"},
        {"LIMIT_BAL": "0", "BILL_AMT1": str(-MAX_AMOUNT), "PAY_AMT1": str(MAX_AMOUNT)},
        {"LIMIT_BAL": str(MAX_AMOUNT), "BILL_AMT6": str(MAX_AMOUNT), "PAY_0": "-2"},
    ]
    for row, edge in zip(rows, edges, strict=False):
        row.update(edge)
    result = run(write_csv(tmp_path / "edges.csv", rows), tmp_path)
    assert result.summary.rows_rejected == 0 and result.summary.clients_written == 8
    for table in ALL_TABLES:
        assert_meets_contract(result.table(table.name), table)


def test_scoring_input_needs_no_label(tmp_path: Path) -> None:
    header = [c for c in UCI_COLUMNS if c != LABEL]
    path = write_csv(tmp_path / "unlabelled.csv", fake_rows(12), header=header)
    summary = ingest_uci(path, tmp_path / "raw_uci", tmp_path / "quarantine", with_label=False)
    assert (summary.rows_read, summary.clients_written, summary.rows_rejected) == (12, 12, 0)
    assert np.isnan(summary.label_share)
    out = tmp_path / "raw_uci"
    assert not rawio.has_table(out, "outcomes")
    assert "outcomes" not in summary.row_counts
    assert len(rawio.read_table(out, "accounts")) == 12
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["as_of"] == "2005-10-01T00:00:00+00:00" and "labels_as_of" not in manifest


def test_scoring_input_ignores_a_label_that_is_there(tmp_path: Path) -> None:
    rows = fake_rows(12)
    rows[3][LABEL] = "7"  # would quarantine the row for training
    path = write_csv(tmp_path / "labelled.csv", rows)
    summary = ingest_uci(path, tmp_path / "raw_uci", tmp_path / "quarantine", with_label=False)
    assert (summary.clients_written, summary.rows_rejected) == (12, 0)
    assert not rawio.has_table(tmp_path / "raw_uci", "outcomes")


def test_training_input_still_needs_the_label(tmp_path: Path) -> None:
    header = [c for c in UCI_COLUMNS if c != LABEL]
    path = write_csv(tmp_path / "unlabelled.csv", fake_rows(12), header=header)
    with pytest.raises(UciFormatError, match=rf"unlabelled\.csv: .*lacks column\(s\): {LABEL}"):
        ingest_uci(path, tmp_path / "raw_uci", tmp_path / "quarantine")
    assert not (tmp_path / "raw_uci").exists()


def test_ragged_row_is_quarantined(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "ragged.csv", fake_rows(40))
    with path.open("a") as fh:
        fh.write("99999,20000,1,2\n")
    result = run(path, tmp_path)
    assert (result.summary.rows_read, result.summary.clients_written) == (41, 40)
    assert result.quarantine["reason"].tolist() == ["row: wrong number of fields"]
    assert result.quarantine.loc[0, "ID"] == "99999"


def test_status_nine_means_270_days(tmp_path: Path) -> None:
    rows = fake_rows(3)
    rows[0]["PAY_0"] = "9"
    result = run(write_csv(tmp_path / "nine.csv", rows), tmp_path)
    st = result.table("statements").set_index("account_id").loc[f"UCI-{rows[0]['ID']}"]
    assert st["days_past_due"].iloc[-1] == 270


def test_too_damaged_file_is_refused_and_previous_output_kept(tmp_path: Path) -> None:
    out, quarantine = tmp_path / "raw_uci", tmp_path / "quarantine"
    ingest_uci(write_csv(tmp_path / "good.csv", fake_rows(20)), out, quarantine)
    before = tree_digest(out)
    rows = fake_rows(100, seed=11)
    for row in rows[:6]:
        row["PAY_AMT1"] = "-1"
    with pytest.raises(UciFormatError, match="6 of 100"):
        ingest_uci(write_csv(tmp_path / "damaged.csv", rows), out, quarantine)
    assert tree_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["quarantine", "raw_uci"]
    # The quarantine still shows why the file was refused.
    assert len(pd.read_parquet(quarantine / QUARANTINE_FILE)) == 6


def test_five_percent_bad_is_still_accepted(tmp_path: Path) -> None:
    rows = fake_rows(100)
    for row in rows[:5]:
        row["SEX"] = "0"
    result = run(write_csv(tmp_path / "edge.csv", rows), tmp_path)
    assert (result.summary.clients_written, result.summary.rows_rejected) == (95, 5)


def test_rerun_replaces_previous_output(tmp_path: Path) -> None:
    run(write_csv(tmp_path / "first.csv", fake_rows(10, first_id=1)), tmp_path)
    second = run(write_csv(tmp_path / "second.csv", fake_rows(4, first_id=500)), tmp_path)
    assert second.table("accounts")["account_id"].tolist() == [f"UCI-{i}" for i in range(500, 504)]
    assert all(len(rawio.part_paths(second.out, t)) == 1 for t in TABLES_BY_NAME)
