"""The DuckDB feature build in hash partitions of the customers, one partition at a time.

A book whose joins spill more than the disk holds (10,000,000 accounts spilled past 40 GB in
the population step) is built a slice at a time: the raw views are narrowed to the
customers whose id hashes into the partition, with their accounts and the accounts' events,
and the same feature statements run on the slice. Every window in the feature SQL is per
account and every aggregate per account or per customer, so a slice's rows are exactly the
rows the whole build gives for those customers. The snapshot calendar is the whole book's,
fixed before the first slice.

Each slice's tables are written sorted, then concatenated in partition order: the same rows
as the one-pass build, ordered by partition and then by key.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Final

import duckdb

from feature_repo import transformations as tx
from ingestion.contract import ACCOUNTS, CUSTOMERS, OPTIONAL_TABLES, REQUIRED_TABLES, Table
from ingestion.duckdb_text import literal
from ingestion.rawio import has_table, table_glob

log = logging.getLogger(__name__)

BUCKET_ACCOUNTS: Final = "_partition_accounts"


def _source(raw_dir: Path, table: Table) -> str:
    return f"read_parquet({literal(table_glob(raw_dir, table.name))})"


def narrow_to_partition(
    con: duckdb.DuckDBPyConnection, raw_dir: Path, partition: int, partitions: int
) -> None:
    """Point the raw views at one partition: customers hashing into it, their accounts, and
    the events of those accounts."""
    in_partition = f"hash(customer_id) % {int(partitions)} = {int(partition)}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {BUCKET_ACCOUNTS} AS "  # nosec B608  # constant names; the path is the operator's own
        f"SELECT * FROM {_source(raw_dir, ACCOUNTS)} WHERE {in_partition}"
    )
    con.execute(f"CREATE OR REPLACE VIEW {ACCOUNTS.name} AS SELECT * FROM {BUCKET_ACCOUNTS}")  # nosec B608  # constant names
    for table in (*REQUIRED_TABLES, *OPTIONAL_TABLES):
        if table == ACCOUNTS or not has_table(raw_dir, table.name):
            continue
        if table == CUSTOMERS:
            where = in_partition
        elif table.foreign_keys.get("account_id") == ACCOUNTS.name:
            where = f"account_id IN (SELECT account_id FROM {BUCKET_ACCOUNTS})"  # nosec B608  # a constant name
        else:  # a new table must say how it follows its customers before it can be sliced
            raise ValueError(f"raw table {table.name} has no account or customer key to slice by")
        con.execute(
            f"CREATE OR REPLACE VIEW {table.name} AS "  # nosec B608  # constant names; the path is the operator's own
            f"SELECT * FROM {_source(raw_dir, table)} WHERE {where}"
        )


def write_partition(
    con: duckdb.DuckDBPyConnection, parts: Path, partition: int, sort_keys: dict[str, str]
) -> None:
    """This partition's tables, each sorted by its key, as parts/<table>/p<partition>."""
    for name in (*tx.FEATURE_TABLES, tx.LABEL_TABLE):
        folder = parts / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"p{partition:05d}.parquet"
        con.execute(
            f"COPY (SELECT * FROM {name} ORDER BY {sort_keys[name]}) "  # nosec B608  # constant table names; the path is ours
            f"TO {literal(str(path))} (FORMAT PARQUET, COMPRESSION ZSTD)"
        )


def concatenate(con: duckdb.DuckDBPyConnection, parts: Path, out_dir: Path) -> dict[str, int]:
    """Each table's parts, in partition order, as one file; returns the row counts."""
    rows: dict[str, int] = {}
    # File order must survive the copy: the parts are sorted, the whole is partition-major.
    con.execute("SET preserve_insertion_order = true")
    for name in (*tx.FEATURE_TABLES, tx.LABEL_TABLE):
        source = f"read_parquet({literal(str(parts / name / '*.parquet'))})"
        path = out_dir / f"{name}.parquet"
        con.execute(
            f"COPY (SELECT * FROM {source}) "  # nosec B608  # our own paths
            f"TO {literal(str(path))} (FORMAT PARQUET, COMPRESSION ZSTD)"
        )
        count = con.execute(f"SELECT count(*) FROM read_parquet({literal(str(path))})").fetchone()  # nosec B608  # our own path
        rows[name] = int(count[0]) if count else 0
    shutil.rmtree(parts)
    return rows


def log_partition(partition: int, partitions: int, started: float) -> None:
    done = partition + 1
    elapsed = time.perf_counter() - started
    log.info(
        "partition %d/%d built in %.0fs so far; about %.0fs to go",
        done,
        partitions,
        elapsed,
        elapsed / done * (partitions - done),
    )
