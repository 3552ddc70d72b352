"""UCI "default of credit card clients" adapter: the UCI CSV mapped onto the raw contract.

Source: Yeh & Lien (2009); UCI ML Repository, DOI 10.24432/C55S3H; CC BY 4.0. One row per
client of a Taiwanese bank, April to September 2005, with the observed label "default
payment next month" (October 2005). The adapter writes the same raw tables as the synthetic
generator (``ingestion.contract``), so the feature SQL, Feast repo, training and scoring run
on this data unchanged.

Mapping (a contract: downstream code and reports rely on it)
------------------------------------------------------------
Column k of a month-indexed group is a month: BILL_AMT1 / PAY_0 / PAY_AMT1 are September
2005, BILL_AMT2 / PAY_2 / PAY_AMT2 August, ... BILL_AMT6 / PAY_6 / PAY_AMT6 April (the file
has no PAY_1). Snapshot t = 2005-10-01 00:00 UTC; the label is known at 2005-11-01 00:00 UTC.

customers (one per row): customer_id "UCIC-<ID>"; monthly_income null (the file has no
  income and none is invented); region "unknown"; created_at 2005-04-01 UTC; sex from SEX
  (1 male, 2 female, anything else "unknown", although such rows are quarantined); age_band
  from AGE (whole years) with contract.AGE_BANDS, "unknown" outside them. EDUCATION and
  MARRIAGE are not part of the contract and are dropped.
accounts (one per row): account_id "UCI-<ID>", customer_id "UCIC-<ID>", product
  "credit_card", credit_limit LIMIT_BAL, original_amount max(0, max(BILL_AMT1..6)),
  opened_at = placed_at = 2005-04-01 UTC (unknown in the source: the start of the window),
  delinquent_since = the first day of the first month whose repayment status is >= 1, else
  the snapshot 2005-10-01 UTC.
statements (six per account, April..September): statement_date the last day of the month
  00:00 UTC; balance BILL_AMT (negative = credit balance); minimum_due null (not in the
  file); days_past_due 30 * max(status, 0): -2 / -1 / 0 -> 0, 1..8 months of delay ->
  30..240, 9 ("nine months or more") -> 270.
payments: one settled "bank_transfer" payment per account-month with PAY_AMT > 0, paid_at
  the 15th of the month 12:00 UTC, recorded_at = paid_at, payment_id "UCIP-<ID>-<YYYYMM>".
  A month with nothing paid has no row.
contacts, promises: none in the file; written with zero rows so the tables exist.
outcomes: one row per account: snapshot_at 2005-10-01 UTC, default_30d = "default payment
  next month", recorded_at 2005-11-01 UTC. Not written when ingesting for scoring.
``<out_dir>/_manifest.json``: source, as_of (the snapshot), labels_as_of (only with the
  label), csv path, sha256, rows, clients, rejected, row_counts, citation.

Input handling
--------------
The header is either the plain UCI header or the two-line UCI xls export (a first line
"X1,...,X23,Y" above the real header); the Kaggle spelling "default.payment.next.month" is
accepted for the label. Extra columns are ignored. A missing column raises UciFormatError
naming it (every UciFormatError names the file). For scoring (``with_label=False``) the
label is neither required nor read, and no outcomes table is written; training keeps the
default and requires it. Rows may come in any order; output is sorted by ID, so the same
clients give the same tables. A row is quarantined (``<quarantine_dir>/uci_input.parquet``:
every original cell as a string, ``row_number`` = 1-based position among data rows,
``reason``) when it has the wrong number of fields, a missing or non-numeric cell in any UCI
column read, an ID that is not a non-negative integer up to 2**53 or is shared with another
row (every copy is quarantined: which one is right cannot be told), a value no client of
this format can have: LIMIT_BAL or a PAY_AMT negative or above contract.MAX_AMOUNT, a
BILL_AMT beyond +-MAX_AMOUNT, AGE not a whole number of years 18..120, SEX other than 1/2,
EDUCATION outside the codes 0..6, MARRIAGE outside 0..3, a repayment status outside the
integer codes -2..9, or a label other than 0/1. If more than 5% of rows are quarantined the
file is refused (UciFormatError) and out_dir is left as it was: tables are written to a
temporary sibling directory that replaces out_dir only at the end.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from collectwise.errors import InvalidInputError
from ingestion import rawio
from ingestion.contract import (
    ACCOUNTS,
    AGE_BANDS,
    ALL_TABLES,
    CONTACTS,
    CUSTOMERS,
    MAX_AMOUNT,
    OUTCOMES,
    PAYMENTS,
    PROMISES,
    STATEMENTS,
    Table,
)
from ingestion.rawio import swap_dir

log = logging.getLogger(__name__)

ID: Final = "ID"
LIMIT: Final = "LIMIT_BAL"
SEX: Final = "SEX"
AGE: Final = "AGE"
LABEL: Final = "default payment next month"
# Month-indexed groups, newest first as in the file: September, August, ... April.
STATUS_COLS: Final = ("PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6")
BILL_COLS: Final = tuple(f"BILL_AMT{k}" for k in range(1, 7))
PAID_COLS: Final = tuple(f"PAY_AMT{k}" for k in range(1, 7))
MONTHS: Final = (9, 8, 7, 6, 5, 4)
YEAR: Final = 2005
UCI_COLUMNS: Final = (
    ID,
    LIMIT,
    SEX,
    "EDUCATION",
    "MARRIAGE",
    AGE,
    *STATUS_COLS,
    *BILL_COLS,
    *PAID_COLS,
    LABEL,
)
# What scoring reads: every column but the outcome, which it ignores when present.
FEATURE_COLUMNS: Final = tuple(c for c in UCI_COLUMNS if c != LABEL)
HEADER_ALIASES: Final = {"default.payment.next.month": LABEL}
STATUS_CODES: Final = tuple(range(-2, 10))
# Codes of the UCI README: EDUCATION 1..4 documented, 0, 5, 6 occur undocumented; MARRIAGE
# 1..3 documented, 0 occurs. Anything else is not from this format.
EDUCATION_CODES: Final = tuple(range(7))
MARRIAGE_CODES: Final = tuple(range(4))
# Whole years a card holder can be: an adult (the contract's first age band starts at 18)
# and alive (no one has lived past 122).
AGE_YEARS: Final = (18, 120)
# Ids become int64 account keys; above 2**53 a float no longer tells which integer it was.
MAX_ID: Final = 2**53

WINDOW_START: Final = "2005-04-01"
SNAPSHOT: Final = "2005-10-01"
# The file describes clients as of the snapshot; the outcomes were observed a month later.
AS_OF: Final = SNAPSHOT
LABELS_AS_OF: Final = "2005-11-01"
MAX_BAD_SHARE: Final = 0.05
QUARANTINE_FILE: Final = "uci_input.parquet"
MANIFEST_FILE: Final = "_manifest.json"
CITATION: Final = "Yeh & Lien (2009); UCI ML Repository, DOI 10.24432/C55S3H; CC BY 4.0"


class UciFormatError(InvalidInputError, ValueError):
    """The file is not in the UCI format, or too damaged to trust."""


@dataclass(frozen=True)
class UciSummary:
    """What one ingest did; rows_read == clients_written + rows_rejected always holds."""

    rows_read: int
    clients_written: int
    rows_rejected: int
    # "COLUMN: problem" -> rows with that problem (a row may have several).
    reasons: dict[str, int] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    label_share: float = float("nan")
    seconds: float = 0.0


def _utc(value: str) -> pd.Timestamp:
    return pd.Timestamp(value, tz="UTC")


# ---------------------------------------------------------------------------- reading


def _find_header(rows: list[list[str]]) -> int:
    """Index of the header line: 0 for a plain CSV, 1 below the xls export's X1..Y line."""
    for i, row in enumerate(rows[:2]):
        if ID in (cell.strip() for cell in row):
            return i
    return 0


def _clean_header(raw: list[str], columns: tuple[str, ...]) -> list[str]:
    names = [HEADER_ALIASES.get(c.strip(), c.strip()) for c in raw]
    names = [name or f"unnamed_{i}" for i, name in enumerate(names)]
    missing = [c for c in columns if c not in names]
    if missing:
        raise UciFormatError(f"UCI file lacks column(s): {', '.join(missing)}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UciFormatError(f"UCI file repeats column(s): {', '.join(dupes)}")
    return names


def _parse(raw: bytes, columns: tuple[str, ...]) -> tuple[pd.DataFrame, np.ndarray]:
    """All cells as stripped strings, plus the number of fields each row really had.

    The csv module rather than pandas so that a ragged row is kept (and later quarantined)
    instead of aborting the read or being dropped silently.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UciFormatError(f"UCI file is not UTF-8 text: {exc}") from exc
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if not rows:
        raise UciFormatError("UCI file is empty")
    at = _find_header(rows)
    header = _clean_header(rows[at], columns)
    body = rows[at + 1 :]
    if not body:
        raise UciFormatError("UCI file has a header but no data rows")
    width = len(header)
    counts = np.fromiter((len(r) for r in body), dtype=np.int64, count=len(body))
    fitted = [r[:width] + [""] * (width - len(r)) for r in body]
    cells = pd.DataFrame(fitted, columns=header, dtype=object)
    return cells.apply(lambda s: s.str.strip()), counts


# ---------------------------------------------------------------------------- checking


def _to_numbers(cells: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """The UCI columns as float64; NaN where a cell is missing, not a number or infinite."""
    num = cells[list(columns)].apply(pd.to_numeric, errors="coerce").astype("float64")
    return num.where(np.isfinite(num))


def _cell_flags(cells: pd.DataFrame, num: pd.DataFrame) -> dict[str, pd.Series]:
    flags: dict[str, pd.Series] = {}
    for col in num.columns:
        empty = cells[col].eq("")
        flags[f"{col}: missing"] = empty
        flags[f"{col}: not numeric"] = num[col].isna() & ~empty
    return flags


def _not_in(values: pd.Series, allowed: tuple[int, ...]) -> pd.Series:
    # NaN compares False everywhere, so a non-numeric cell is reported once, as such.
    return values.notna() & ~values.isin(allowed)


def _amount_flags(num: pd.DataFrame) -> dict[str, pd.Series]:
    """Money the raw contract would refuse (contract.MAX_AMOUNT), named by its UCI column."""
    flags: dict[str, pd.Series] = {
        f"{LIMIT}: negative": num[LIMIT].lt(0),
        f"{LIMIT}: above {MAX_AMOUNT:g}": num[LIMIT].gt(MAX_AMOUNT),
    }
    for col in BILL_COLS:
        flags[f"{col}: outside {-MAX_AMOUNT:g}..{MAX_AMOUNT:g}"] = num[col].abs().gt(MAX_AMOUNT)
    for col in PAID_COLS:
        flags[f"{col}: negative"] = num[col].lt(0)
        flags[f"{col}: above {MAX_AMOUNT:g}"] = num[col].gt(MAX_AMOUNT)
    return flags


def _code_flags(num: pd.DataFrame) -> dict[str, pd.Series]:
    low, high = AGE_YEARS
    age = num[AGE]
    flags: dict[str, pd.Series] = {
        f"{SEX}: not 1 or 2": _not_in(num[SEX], (1, 2)),
        f"{AGE}: not a whole number of years {low}..{high}": age.notna()
        & (age.lt(low) | age.gt(high) | age.mod(1).ne(0)),
        "EDUCATION: not a code 0..6": _not_in(num["EDUCATION"], EDUCATION_CODES),
        "MARRIAGE: not a code 0..3": _not_in(num["MARRIAGE"], MARRIAGE_CODES),
    }
    if LABEL in num.columns:
        flags[f"{LABEL}: not 0 or 1"] = _not_in(num[LABEL], (0, 1))
    for col in STATUS_COLS:
        flags[f"{col}: not a status code -2..9"] = _not_in(num[col], STATUS_CODES)
    return flags


def _id_flags(num: pd.DataFrame) -> dict[str, pd.Series]:
    ids = num[ID]
    malformed = ids.notna() & (ids.lt(0) | ids.gt(MAX_ID) | ids.mod(1).ne(0))
    usable = ids.where(~malformed)
    duplicate = usable.notna() & usable.duplicated(keep=False)
    return {f"{ID}: not a non-negative integer": malformed, f"{ID}: duplicate": duplicate}


def _flag_problems(cells: pd.DataFrame, num: pd.DataFrame, counts: np.ndarray) -> pd.DataFrame:
    """One boolean column per "COLUMN: problem"; only problems that occur are kept."""
    ragged = pd.Series(counts != cells.shape[1], index=cells.index)
    flags = {**_cell_flags(cells, num), **_amount_flags(num), **_code_flags(num)}
    flags.update(_id_flags(num))
    # A ragged row's cells are shifted, so per-column findings on it would mislead.
    frame = pd.DataFrame(flags)
    frame.loc[ragged] = False
    frame.insert(0, "row: wrong number of fields", ragged)
    return frame.loc[:, frame.any()]


def _quarantine_rows(cells: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    bad = flags.any(axis=1)
    hits = flags[bad]
    reasons = ["; ".join(hits.columns[row].tolist()) for row in hits.to_numpy(dtype=bool)]
    out = cells[bad].astype("string")
    out["row_number"] = (cells.index[bad] + 1).astype("int64")
    out["reason"] = pd.Series(reasons, index=out.index, dtype="string")
    return out.reset_index(drop=True)


def _write_quarantine(rows: pd.DataFrame, quarantine_dir: Path) -> Path:
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    path = quarantine_dir / QUARANTINE_FILE
    # Written even when empty so a stale file from an earlier run cannot mislead.
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), path)
    return path


# ---------------------------------------------------------------------------- mapping


def _age_bands(age: pd.Series) -> np.ndarray:
    years = np.floor(age.to_numpy(dtype="float64"))
    conditions, labels = [], []
    for band in AGE_BANDS:
        low, _, high = band.replace("+", "-").partition("-")
        upper = float(high) if high else np.inf
        conditions.append((years >= float(low)) & (years <= upper))
        labels.append(band)
    return np.select(conditions, labels, default="unknown")


def _customers(good: pd.DataFrame, keys: pd.Series) -> pd.DataFrame:
    sex = good[SEX].map({1.0: "male", 2.0: "female"}).fillna("unknown")
    return pd.DataFrame(
        {
            "customer_id": "UCIC-" + keys,
            "monthly_income": np.nan,
            "region": "unknown",
            "created_at": _utc(WINDOW_START),
            "age_band": _age_bands(good[AGE]),
            "sex": sex,
        }
    )


def _chronological(good: pd.DataFrame, cols: tuple[str, ...]) -> np.ndarray:
    """(clients, 6) matrix of a month-indexed group, April first."""
    return good[list(reversed(cols))].to_numpy(dtype="float64")


def _month_starts() -> pd.DatetimeIndex:
    return pd.DatetimeIndex([_utc(f"{YEAR}-{m:02d}-01") for m in reversed(MONTHS)])


def _delinquent_since(status: np.ndarray) -> pd.Series:
    late = status >= 1
    first = late.argmax(axis=1)
    since = pd.Series(_month_starts()[first])
    return since.where(pd.Series(late.any(axis=1)), _utc(SNAPSHOT))


def _accounts(good: pd.DataFrame, keys: pd.Series) -> pd.DataFrame:
    bills = good[list(BILL_COLS)].to_numpy(dtype="float64")
    status = _chronological(good, STATUS_COLS)
    return pd.DataFrame(
        {
            "account_id": "UCI-" + keys,
            "customer_id": "UCIC-" + keys,
            "product": "credit_card",
            "credit_limit": good[LIMIT].to_numpy(),
            "original_amount": np.maximum(bills.max(axis=1), 0.0),
            "opened_at": _utc(WINDOW_START),
            "delinquent_since": _delinquent_since(status).to_numpy(),
            "placed_at": _utc(WINDOW_START),
        }
    )


def _statements(good: pd.DataFrame, keys: pd.Series) -> pd.DataFrame:
    month_ends = _month_starts() + pd.offsets.MonthEnd(0)
    status = _chronological(good, STATUS_COLS)
    return pd.DataFrame(
        {
            "account_id": np.repeat(("UCI-" + keys).to_numpy(), len(MONTHS)),
            "statement_date": np.tile(month_ends, len(good)),
            "balance": _chronological(good, BILL_COLS).ravel(),
            "minimum_due": np.nan,
            "days_past_due": (30 * np.clip(status, 0, None)).ravel().astype("int64"),
        }
    )


def _payments(good: pd.DataFrame, keys: pd.Series) -> pd.DataFrame:
    amounts = _chronological(good, PAID_COLS).ravel()
    paid = amounts > 0
    n_months = len(MONTHS)
    client = pd.Series(np.repeat(keys.to_numpy(), n_months)[paid], dtype="string")
    yyyymm = np.tile([f"{YEAR}{m:02d}" for m in reversed(MONTHS)], len(good))[paid]
    paid_at = np.tile(_month_starts() + pd.Timedelta(days=14, hours=12), len(good))[paid]
    return pd.DataFrame(
        {
            "payment_id": "UCIP-" + client + "-" + yyyymm,
            "account_id": "UCI-" + client,
            "paid_at": paid_at,
            "amount": amounts[paid],
            "channel": "bank_transfer",
            "status": "settled",
            "recorded_at": paid_at,
        }
    )


def _outcomes(good: pd.DataFrame, keys: pd.Series) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": "UCI-" + keys,
            "snapshot_at": _utc(SNAPSHOT),
            "default_30d": good[LABEL].to_numpy(dtype="int64"),
            "recorded_at": _utc(LABELS_AS_OF),
        }
    )


def _empty(table: Table) -> pd.DataFrame:
    return pd.DataFrame({c.name: pd.Series(dtype=c.dtype) for c in table.columns})


def _map_rows(good: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Map validated UCI rows (float64 UCI columns, no problems) onto the raw tables; the
    optional outcomes table only when the rows carry the label."""
    good = good.sort_values(ID, kind="stable").reset_index(drop=True)
    keys = good[ID].astype("int64").astype(str)
    tables = {
        CUSTOMERS.name: _customers(good, keys),
        ACCOUNTS.name: _accounts(good, keys),
        STATEMENTS.name: _statements(good, keys),
        PAYMENTS.name: _payments(good, keys),
        CONTACTS.name: _empty(CONTACTS),
        PROMISES.name: _empty(PROMISES),
    }
    if LABEL in good.columns:
        tables[OUTCOMES.name] = _outcomes(good, keys)
    return tables


# ---------------------------------------------------------------------------- writing


def _manifest(
    csv_path: Path, digest: str, summary: UciSummary, with_label: bool
) -> dict[str, object]:
    labels = {"labels_as_of": _utc(LABELS_AS_OF).isoformat()} if with_label else {}
    return {
        "source": "uci",
        "as_of": _utc(AS_OF).isoformat(),
        **labels,
        "csv": str(csv_path),
        "sha256": digest,
        "rows": summary.rows_read,
        "clients": summary.clients_written,
        "rejected": summary.rows_rejected,
        "row_counts": summary.row_counts,
        "citation": CITATION,
    }


def _write_raw(tables: dict[str, pd.DataFrame], manifest: dict[str, object], out_dir: Path) -> None:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # A sibling of out_dir, so the final rename stays on one file system.
    staged = out_dir.with_name(f".{out_dir.name}.tmp-{uuid.uuid4().hex[:12]}")
    staged.mkdir()
    try:
        for table in ALL_TABLES:
            if table.name in tables:
                rawio.write_part(tables[table.name], staged, table.name, 0)
        (staged / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        swap_dir(staged, out_dir)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


# ---------------------------------------------------------------------------- entry point


def _split(
    raw: bytes, quarantine_dir: Path, columns: tuple[str, ...]
) -> tuple[int, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Rows read, good rows (numbers), quarantined rows (original strings), problem flags."""
    cells, counts = _parse(raw, columns)
    num = _to_numbers(cells, columns)
    flags = _flag_problems(cells, num, counts)
    bad_rows = _quarantine_rows(cells, flags)
    path = _write_quarantine(bad_rows, quarantine_dir)
    if len(bad_rows):
        log.warning("quarantined %d of %d UCI rows to %s", len(bad_rows), len(cells), path)
    return len(cells), num[~flags.any(axis=1)], bad_rows, flags


def _refuse_if_damaged(rows: int, rejected: int, reasons: dict[str, int]) -> None:
    if rejected > MAX_BAD_SHARE * rows:
        raise UciFormatError(
            f"{rejected} of {rows} UCI rows are bad (more than {MAX_BAD_SHARE:.0%}); "
            f"file refused, nothing written. Problems: {reasons}"
        )


def _columns(with_label: bool) -> tuple[str, ...]:
    return UCI_COLUMNS if with_label else FEATURE_COLUMNS


def check_format(csv_path: Path, *, with_label: bool = True) -> None:
    """Raise UciFormatError (naming the file) unless csv_path is UTF-8 text with the UCI
    header and at least one data row: what can be told before any row is mapped."""
    with _named(csv_path):
        _parse(Path(csv_path).read_bytes(), _columns(with_label))


@contextmanager
def _named(csv_path: Path) -> Iterator[None]:
    # The checks deep in the parse know the problem, not the file: name it once, here.
    try:
        yield
    except UciFormatError as exc:
        raise UciFormatError(f"{csv_path}: {exc}") from None


def _label_share(good: pd.DataFrame) -> float:
    if LABEL not in good.columns or not len(good):
        return float("nan")
    return float(good[LABEL].mean())


def ingest_uci(
    csv_path: Path, out_dir: Path, quarantine_dir: Path, *, with_label: bool = True
) -> UciSummary:
    """Map the UCI CSV at csv_path onto the raw tables under out_dir (replaced whole).

    Raises UciFormatError (naming csv_path) when a column is missing or more than 5% of
    rows are bad; bad rows are written to quarantine_dir/uci_input.parquet either way.
    with_label=False is for scoring: the label column is neither required nor read, and
    no outcomes table is written. Training keeps the default, which requires it.
    """
    started = time.perf_counter()
    raw = Path(csv_path).read_bytes()
    with _named(csv_path):
        rows, good, bad_rows, flags = _split(raw, Path(quarantine_dir), _columns(with_label))
        reasons = {str(k): int(v) for k, v in flags.sum().items() if v}
        _refuse_if_damaged(rows, len(bad_rows), reasons)
    tables = _map_rows(good)
    summary = UciSummary(
        rows_read=rows,
        clients_written=len(tables[ACCOUNTS.name]),
        rows_rejected=len(bad_rows),
        reasons=reasons,
        row_counts={name: len(df) for name, df in tables.items()},
        label_share=_label_share(good),
    )
    if summary.rows_read != summary.clients_written + summary.rows_rejected:
        raise RuntimeError(f"UCI rows unaccounted for: {summary}")
    digest = hashlib.sha256(raw).hexdigest()
    manifest = _manifest(Path(csv_path), digest, summary, with_label)
    _write_raw(tables, manifest, Path(out_dir))
    seconds = time.perf_counter() - started
    log.info(
        "UCI: %d rows read, %d clients written, %d rejected, label share %.3f, %.2f s -> %s",
        rows,
        summary.clients_written,
        summary.rows_rejected,
        summary.label_share,
        seconds,
        out_dir,
    )
    return replace(summary, seconds=seconds)
