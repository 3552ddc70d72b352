"""The DuckDB feature build in hash partitions of the customers, one partition at a time.

A book whose joins spill more than the disk holds (10,000,000 accounts spilled past 40 GB in
the population step) is built a slice at a time. The raw tables are first split, in one
read of each, by the hash of the row's customer: customers, their accounts and those
accounts' events land in the same slice. The raw views are then pointed at one slice's files
at a time and the same feature statements run on it. Every window in the feature SQL is per
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

# The hidden column the split writes by; DuckDB names each slice's folder after it.
SLICE: Final = "_slice"
ACCOUNT_SLICES: Final = "_account_slices"


def _source(raw_dir: Path, table: Table) -> str:
    return f"read_parquet({literal(table_glob(raw_dir, table.name))})"


def _sliced_tables(raw_dir: Path) -> list[Table]:
    return [t for t in (*REQUIRED_TABLES, *OPTIONAL_TABLES) if has_table(raw_dir, t.name)]


def split_raw(
    con: duckdb.DuckDBPyConnection, raw_dir: Path, split_dir: Path, partitions: int
) -> None:
    """Read every raw table once and write its rows into split_dir/<table>/_slice=<k>/, k the
    hash partition of the row's customer; each slice then reads only its own files (slicing
    with a filter instead read the whole book once per slice)."""
    of_customer = f"hash(customer_id) % {int(partitions)}"
    split_dir.mkdir(parents=True, exist_ok=True)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {ACCOUNT_SLICES} AS "  # nosec B608  # constant names; the path is the operator's own
        f"SELECT account_id, {of_customer} AS {SLICE} FROM {_source(raw_dir, ACCOUNTS)}"
    )
    for table in _sliced_tables(raw_dir):
        if table in (CUSTOMERS, ACCOUNTS):
            rows = f"SELECT *, {of_customer} AS {SLICE} FROM {_source(raw_dir, table)}"  # nosec B608  # as above
        elif table.foreign_keys.get("account_id") == ACCOUNTS.name:
            # An inner join, as the filtered views had: events of no known account (validation
            # quarantines them) belong to no slice.
            rows = (
                f"SELECT t.*, a.{SLICE} FROM {_source(raw_dir, table)} AS t "  # nosec B608  # as above
                f"JOIN {ACCOUNT_SLICES} AS a USING (account_id)"
            )
        else:  # a new table must say how it follows its customers before it can be sliced
            raise ValueError(f"raw table {table.name} has no account or customer key to slice by")
        started = time.perf_counter()
        con.execute(
            f"COPY ({rows}) TO {literal(str(split_dir / table.name))} "  # nosec B608  # as above
            f"(FORMAT PARQUET, PARTITION_BY ({SLICE}), OVERWRITE_OR_IGNORE)"
        )
        log.info(
            "split %s into %d slices in %.0fs",
            table.name,
            partitions,
            time.perf_counter() - started,
        )
    con.execute(f"DROP TABLE {ACCOUNT_SLICES}")


def narrow_to_partition(
    con: duckdb.DuckDBPyConnection, raw_dir: Path, split_dir: Path, partition: int
) -> None:
    """Point the raw views at one slice's files (split_raw wrote them)."""
    for table in _sliced_tables(raw_dir):
        folder = split_dir / table.name / f"{SLICE}={int(partition)}"
        if folder.is_dir():
            # hive_partitioning off: the slice number is in the path, not a column of the table.
            files = literal(str(folder / "*.parquet"))
            rows = f"SELECT * FROM read_parquet({files}, hive_partitioning = false)"  # nosec B608  # our own path, quoted
        else:  # no rows of this table in the slice: an empty view of the same columns
            rows = f"SELECT * FROM {_source(raw_dir, table)} LIMIT 0"  # nosec B608  # the operator's path, quoted
        con.execute(f"CREATE OR REPLACE VIEW {table.name} AS {rows}")  # nosec B608  # constant names; our own paths


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
