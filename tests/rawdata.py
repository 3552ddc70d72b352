"""Tiny hand-made raw datasets for tests: a few rows per table, values chosen by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ingestion.contract import ALL_TABLES, TABLES_BY_NAME, Table
from ingestion.rawio import write_part
from ingestion.schemas import table_schema


def ts(value: str) -> pd.Timestamp:
    return pd.Timestamp(value, tz="UTC")


def empty(table: str) -> pd.DataFrame:
    spec = TABLES_BY_NAME[table]
    return pd.DataFrame({c.name: pd.Series(dtype=c.dtype) for c in spec.columns})  # type: ignore[call-overload]


def frame(table: str, rows: list[dict[str, object]]) -> pd.DataFrame:
    if not rows:
        return empty(table)
    return pd.DataFrame(rows)


def write_raw(raw_dir: Path, tables: dict[str, list[dict[str, object]]], as_of: str) -> Path:
    """Write each table (missing required ones as empty) and a manifest stating as_of."""
    for spec in ALL_TABLES:
        rows = tables.get(spec.name)
        if rows is None and spec.name == "outcomes":
            continue
        write_part(frame(spec.name, rows or []), raw_dir, spec.name, 0)
    (raw_dir / "_manifest.json").write_text(
        json.dumps({"source": "test", "as_of": ts(as_of).isoformat()})
    )
    return raw_dir


def one_account(**overrides: object) -> dict[str, list[dict[str, object]]]:
    """One customer with one account placed 2024-01-10 and statements from January to June."""
    customer = {
        "customer_id": "C1",
        "monthly_income": 2000.0,
        "region": "north",
        "created_at": ts("2023-06-01"),
        "age_band": "36-45",
        "sex": "female",
    }
    account = {
        "account_id": "A1",
        "customer_id": "C1",
        "product": "credit_card",
        "credit_limit": 5000.0,
        "original_amount": 3000.0,
        "opened_at": ts("2022-01-01"),
        "delinquent_since": ts("2023-12-01"),
        "placed_at": ts("2024-01-10"),
    }
    statements = [
        {
            "account_id": "A1",
            "statement_date": ts(f"2024-{m:02d}-25"),
            "balance": 3000.0 - 100 * (m - 1),
            "minimum_due": 100.0,
            "days_past_due": 30 if m < 4 else 0,
        }
        for m in range(1, 7)
    ]
    tables: dict[str, list[dict[str, object]]] = {
        "customers": [customer],
        "accounts": [account],
        "statements": statements,
        "payments": [],
        "contacts": [],
        "promises": [],
    }
    tables.update(overrides)  # type: ignore[arg-type]
    return tables


def assert_meets_contract(df: pd.DataFrame, table: Table) -> None:
    """The contract's own pandera schema, plus its column order."""
    assert list(df.columns) == table.column_names
    table_schema(table).validate(df, lazy=True)
