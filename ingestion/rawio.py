"""Reading and writing raw tables: one directory of parquet parts per table."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from collectwise.errors import InvalidInputError
from ingestion.contract import TABLES_BY_NAME, Table

log = logging.getLogger(__name__)


class RawTableMissingError(InvalidInputError, FileNotFoundError):
    """A required raw table has no parquet parts under the raw directory."""


def table_dir(raw_dir: Path, table: str) -> Path:
    return Path(raw_dir) / table


def table_glob(raw_dir: Path, table: str) -> str:
    """A glob DuckDB can read (`read_parquet('<glob>')`) for every part of a table."""
    return str(table_dir(raw_dir, table) / "*.parquet")


def part_paths(raw_dir: Path, table: str) -> list[Path]:
    return sorted(table_dir(raw_dir, table).glob("*.parquet"))


def has_table(raw_dir: Path, table: str) -> bool:
    return bool(part_paths(raw_dir, table))


def conform(df: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Order columns as the contract does and cast them to the contract's dtypes."""
    out = df[table.column_names].copy()
    for col in table.columns:
        out[col.name] = out[col.name].astype(col.dtype)  # type: ignore[call-overload]
    return out


def write_part(df: pd.DataFrame, raw_dir: Path, table: str, part: int) -> Path:
    """Write one part of a raw table, conformed to the contract."""
    spec = TABLES_BY_NAME[table]
    out_dir = table_dir(raw_dir, table)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"part-{part:05d}.parquet"
    pq.write_table(pa.Table.from_pandas(conform(df, spec), preserve_index=False), path)
    return path


def clear_table(raw_dir: Path, table: str) -> None:
    """Remove a table's parts before rewriting it, so no stale part survives."""
    for path in part_paths(raw_dir, table):
        path.unlink()


def read_table(raw_dir: Path, table: str) -> pd.DataFrame:
    """Read every part of a raw table into one DataFrame (small and medium data only)."""
    paths = part_paths(raw_dir, table)
    if not paths:
        raise RawTableMissingError(
            f"raw table '{table}' has no parquet parts in {table_dir(raw_dir, table)}"
        )
    return pq.ParquetDataset([str(p) for p in paths]).read().to_pandas()


def swap_dir(staged: Path, target: Path) -> None:
    """Replace `target` by the fully written `staged` directory with two renames, so readers
    never see a half-written set; if the second rename fails the old one is put back."""
    old = target.with_name(f"{target.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    try:
        staged.rename(target)
    except OSError:
        if old.exists():
            old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)
