"""Cross-part flags in DuckDB: what no single part can show.

Duplicate keys and foreign keys missing from the parent's good rows are found over all
staged parts at once. Among the rows that passed screening, the first occurrence of a key in
part and row order is kept, so a row quarantined for another reason does not take the place
of a valid one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

import duckdb
import pandas as pd

from ingestion import rawio, schemas
from ingestion.contract import TABLES_BY_NAME, Table
from ingestion.quality import TableCounts

log = logging.getLogger(__name__)

# DuckDB spills to disk beyond this instead of growing with the data.
DUCKDB_MEMORY_LIMIT: Final = "2GB"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(spill_dir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    # Global duplicate checks over tens of millions of ids may not fit in memory: let it spill.
    con.execute(f"SET temp_directory = {_literal(str(spill_dir))}")
    con.execute(f"SET memory_limit = {_literal(DUCKDB_MEMORY_LIMIT)}")
    con.execute("SET preserve_insertion_order = false")
    return con


def _duplicate_sql(stage: str, key: tuple[str, ...], order: int) -> str:
    cols = ", ".join(_ident(c) for c in key)
    reason = _literal(f"{', '.join(key)}: duplicate")
    # Rank only the keys that repeat, so the window sorts the few, not every row.
    return (
        f"SELECT _part, _row, {order} AS ord, {reason} AS reason FROM ("  # nosec B608  # identifiers and literals quoted (_ident, _literal)
        f" SELECT _part, _row, row_number() OVER (PARTITION BY {cols} ORDER BY _part, _row) AS rn"
        f" FROM {stage} SEMI JOIN ("
        f"  SELECT {cols} FROM {stage} GROUP BY {cols} HAVING count(*) > 1"
        f" ) USING ({cols})"
        f") WHERE rn > 1"
    )


def _orphan_sql(stage: str, column: str, parent: Table, parent_source: str, order: int) -> str:
    reason = _literal(f"{column}: unknown {parent.key.removesuffix('_id')}")
    c = _ident(column)
    return (
        f"SELECT s._part, s._row, {order} AS ord, {reason} AS reason"  # nosec B608  # identifiers and literals quoted (_ident, _literal)
        f" FROM {stage} AS s ANTI JOIN {parent_source} AS p ON s.{c} = p.{_ident(parent.key)}"
        f" WHERE s.{c} IS NOT NULL"
    )


def _flag_queries(table: Table, stage: str, parents_dir: Path) -> list[str]:
    names = table.column_names
    queries = [
        _duplicate_sql(stage, key, names.index(key[0])) for key in schemas.unique_keys(table)
    ]
    for column, parent_name in table.foreign_keys.items():
        parent = TABLES_BY_NAME[parent_name]
        source = f"read_parquet({_literal(rawio.table_glob(parents_dir, parent_name))})"
        queries.append(_orphan_sql(stage, column, parent, source, names.index(column)))
    return queries


def flag_rows(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    stage_dir: Path,
    parents_dir: Path,
    counts: TableCounts,
) -> int:
    """Flag duplicate keys and orphan foreign keys into the temp table `flags`; return how many.

    `stage_dir` holds the table's staged parts (with _part and _row), `parents_dir` the good
    rows of the tables already validated; the reasons are tallied into `counts`.
    """
    stage = f"read_parquet({_literal(str(stage_dir / '*.parquet'))})"
    queries = _flag_queries(table, stage, parents_dir)
    if not queries:
        return 0
    con.execute(f"CREATE OR REPLACE TEMP TABLE flag_rows AS {' UNION ALL '.join(queries)}")
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
