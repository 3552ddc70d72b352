"""Cross-part flags in DuckDB: what no single part can show.

Duplicate keys and foreign keys missing from the parent's good rows are found over all
staged parts at once. Among the rows that passed screening, the first occurrence of a key in
part and row order is kept, so a row quarantined for another reason does not take the place
of a valid one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import duckdb
import pandas as pd

from collectwise.errors import InvalidInputError
from ingestion import rawio, schemas
from ingestion.contract import TABLES_BY_NAME, Table
from ingestion.duckdb_text import DUCKDB_DEFAULT_MEMORY, ident, literal
from ingestion.quality import TableCounts
from ingestion.validate.errors import ValidationFailed

log = logging.getLogger(__name__)

# Defaults of the settings (collectwise.settings.IngestionSettings) for callers without them.
DEFAULT_BUCKET_ROWS: Final = 40_000_000
FLAG_COLUMNS: Final = "_part INTEGER, _row BIGINT, ord INTEGER, reason VARCHAR"


@dataclass(frozen=True)
class FlagLimits:
    """DuckDB's memory cap, and the most staged rows one duplicate or orphan query takes."""

    memory_limit: str | None = None  # None: DuckDB's default, 80% of RAM
    bucket_rows: int = DEFAULT_BUCKET_ROWS

    def buckets(self, rows: int) -> int:
        return max(1, math.ceil(rows / self.bucket_rows))


def connect(spill_dir: Path, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    # Global duplicate checks over tens of millions of ids may not fit in memory: let it spill.
    con.execute(f"SET temp_directory = {literal(str(spill_dir))}")
    if memory_limit is not None:
        try:
            con.execute(f"SET memory_limit = {literal(memory_limit)}")
        except duckdb.Error as err:
            con.close()
            raise InvalidInputError(f"memory limit {memory_limit!r}: {err}") from err
    con.execute("SET preserve_insertion_order = false")
    return con


def _in_bucket(columns: str, bucket: int, buckets: int) -> str:
    """A filter keeping the rows whose key hashes into `bucket`: every row of one key value
    falls in the same bucket, in the child table and its parent alike."""
    return "TRUE" if buckets == 1 else f"hash({columns}) % {buckets} = {bucket}"


def _duplicate_sql(stage: str, key: tuple[str, ...], order: int, bucket: int, buckets: int) -> str:
    cols = ", ".join(ident(c) for c in key)
    reason = literal(f"{', '.join(key)}: duplicate")
    # Rank only the keys that repeat, so the window sorts the few, not every row.
    return (
        f"WITH b AS (SELECT {cols}, _part, _row FROM {stage}"  # nosec B608  # identifiers and literals quoted (ident, literal)
        f" WHERE {_in_bucket(cols, bucket, buckets)})"
        f" SELECT _part, _row, {order} AS ord, {reason} AS reason FROM ("
        f" SELECT _part, _row, row_number() OVER (PARTITION BY {cols} ORDER BY _part, _row) AS rn"
        f" FROM b SEMI JOIN (SELECT {cols} FROM b GROUP BY {cols} HAVING count(*) > 1)"
        f" USING ({cols})"
        f") WHERE rn > 1"
    )


def _orphan_sql(
    stage: str, column: str, parent: Table, parent_source: str, order: int, bucket: int,
    buckets: int,
) -> str:  # fmt: skip
    reason = literal(f"{column}: unknown {parent.key.removesuffix('_id')}")
    c, k = ident(column), ident(parent.key)
    return (
        f"SELECT s._part, s._row, {order} AS ord, {reason} AS reason"  # nosec B608  # identifiers and literals quoted (ident, literal)
        f" FROM (SELECT _part, _row, {c} FROM {stage}"
        f"  WHERE {c} IS NOT NULL AND {_in_bucket(c, bucket, buckets)}) AS s"
        f" ANTI JOIN (SELECT {k} FROM {parent_source} WHERE {_in_bucket(k, bucket, buckets)}) AS p"
        f" ON s.{c} = p.{k}"
    )


def _flag_queries(table: Table, stage: str, parents_dir: Path, buckets: int) -> list[str]:
    names = table.column_names
    queries = []
    for bucket in range(buckets):
        for key in schemas.unique_keys(table):
            queries.append(_duplicate_sql(stage, key, names.index(key[0]), bucket, buckets))
        for column, parent_name in table.foreign_keys.items():
            parent = TABLES_BY_NAME[parent_name]
            source = f"read_parquet({literal(rawio.table_glob(parents_dir, parent_name))})"
            queries.append(
                _orphan_sql(stage, column, parent, source, names.index(column), bucket, buckets)
            )
    return queries


def flag_rows(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    stage_dir: Path,
    parents_dir: Path,
    counts: TableCounts,
    limits: FlagLimits,
) -> int:
    """Flag duplicate keys and orphan foreign keys into the temp table `flags`; return how many.

    `stage_dir` holds the table's staged parts (with _part and _row), `parents_dir` the good
    rows of the tables already validated; the reasons are tallied into `counts`. Each query
    runs once per hash bucket of its key (limits.bucket_rows), one at a time, so no query
    holds more than a bucket's keys; DuckDB running out of memory anyway is a clear error.
    """
    stage = f"read_parquet({literal(str(stage_dir / '*.parquet'))})"
    staged = counts.raw - counts.quarantined
    buckets = limits.buckets(staged)
    queries = _flag_queries(table, stage, parents_dir, buckets)
    if not queries:
        return 0
    if buckets > 1:
        log.info("%s: checking keys of %d rows in %d buckets", table.name, staged, buckets)
    con.execute(f"CREATE OR REPLACE TEMP TABLE flag_rows ({FLAG_COLUMNS})")
    try:
        for query in queries:
            con.execute(f"INSERT INTO flag_rows {query}")
    except duckdb.OutOfMemoryException as err:
        raise ValidationFailed(
            f"{table.name}: DuckDB ran out of memory finding duplicate keys and orphans in "
            f"{staged:,} rows ({buckets} bucket(s) of at most {limits.bucket_rows:,} rows, "
            f"memory limit {limits.memory_limit or DUCKDB_DEFAULT_MEMORY}); raise --memory-limit "
            "(COLLECTWISE_INGESTION__DUCKDB_MEMORY_LIMIT) or lower "
            "COLLECTWISE_INGESTION__FLAG_BUCKET_ROWS",
            table.name,
        ) from err
    except duckdb.IOException as err:
        # Most often a full disk: DuckDB spills beside the output.
        raise ValidationFailed(
            f"{table.name}: DuckDB could not read or write a file finding duplicate keys and "
            f"orphans: {str(err).splitlines()[0]}",
            table.name,
        ) from err
    tally = con.execute("SELECT reason, count(*) FROM flag_rows GROUP BY reason").fetchall()
    counts.add_reasons(dict(tally))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE flags AS SELECT _part, _row,"
        " string_agg(reason, '; ' ORDER BY ord) AS reason FROM flag_rows GROUP BY _part, _row"
    )
    row = con.execute("SELECT count(*) FROM flags").fetchone()
    flagged = int(row[0]) if row else 0
    log.info("%s: %d rows flagged as duplicates or orphans", table.name, flagged)
    return flagged


def flags_of_part(con: duckdb.DuckDBPyConnection, part_no: int, flagged: int) -> pd.DataFrame:
    """The flagged rows of one raw part (_row, reason), in row order."""
    if not flagged:
        return pd.DataFrame({"_row": pd.Series(dtype="int64"), "reason": pd.Series(dtype=str)})
    sql = "SELECT _row, reason FROM flags WHERE _part = ? ORDER BY _row"
    return con.execute(sql, [part_no]).df()
