"""Which tables to validate, and whether they can be read at all.

Runs before any heavy work, so a missing table or column, or a column of a type that cannot
be coerced, fails the run at once with a message that names it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ingestion import rawio
from ingestion.contract import (
    FLOAT,
    INT,
    OPTIONAL_TABLES,
    REQUIRED_TABLES,
    STRING,
    TIMESTAMP,
    Table,
)
from ingestion.validate.errors import ValidationFailed

log = logging.getLogger(__name__)


def _parents_first(tables: Sequence[Table]) -> list[Table]:
    """Order tables so each comes after the tables its foreign keys point to."""
    names = {t.name for t in tables}
    ordered: list[Table] = []
    pending = list(tables)
    while pending:
        done = {o.name for o in ordered}
        ready = [t for t in pending if set(t.foreign_keys.values()) <= done]
        if not ready:
            t = pending[0]
            col, parent = next((c, p) for c, p in t.foreign_keys.items() if p not in names)
            raise ValidationFailed(
                f"{t.name}.{col}: refers to table '{parent}', which is missing", t.name, col
            )
        ordered += ready
        pending = [t for t in pending if t not in ready]
    return ordered


def tables_to_validate(raw_dir: Path) -> list[Table]:
    """The required tables and the optional ones present, parents before children."""
    missing = [t.name for t in REQUIRED_TABLES if not rawio.has_table(raw_dir, t.name)]
    if missing:
        raise ValidationFailed(
            f"missing required raw table(s) {', '.join(missing)}: no parquet parts under "
            f"{raw_dir}/<table>/",
            table=missing[0],
        )
    optional = [t for t in OPTIONAL_TABLES if rawio.has_table(raw_dir, t.name)]
    return _parents_first([*REQUIRED_TABLES, *optional])


def _readable_as(typ: pa.DataType, dtype: str) -> bool:
    """Whether values stored as arrow type `typ` can be coerced, row by row, to `dtype`."""
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    textual = (
        pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ)
    )
    if textual or pa.types.is_null(typ):
        return True
    if dtype in (FLOAT, INT):
        return pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ)
    if dtype == TIMESTAMP:
        return pa.types.is_timestamp(typ) or pa.types.is_date(typ)
    return dtype == STRING and pa.types.is_integer(typ)


def _read_schema(table: Table, path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowException) as err:
        raise ValidationFailed(f"{table.name}: cannot read {path}: {err}", table.name) from err


def _preflight_part(table: Table, path: Path) -> set[str]:
    """Raise on what makes the part unreadable; return notes worth a warning."""
    schema = _read_schema(table, path)
    notes: set[str] = set()
    for col in table.columns:
        where = f"{table.name}.{col.name}"
        if col.name not in schema.names:
            raise ValidationFailed(f"{where}: column missing in {path}", table.name, col.name)
        typ = schema.field(col.name).type
        if not _readable_as(typ, col.dtype):
            raise ValidationFailed(
                f"{where}: holds {typ} in {path}, which cannot be read as {col.dtype}",
                table.name,
                col.name,
            )
        if pa.types.is_timestamp(typ) and typ.tz is None:
            notes.add(f"{where}: naive timestamps, read as UTC")
    extra = sorted(set(schema.names) - set(table.column_names))
    if extra:
        notes.add(f"{table.name}: columns not in the contract are left out: {extra}")
    return notes


def preflight(raw_dir: Path, tables: Sequence[Table]) -> None:
    """Fail before any heavy work on what makes a table unusable as a whole."""
    notes: Counter[str] = Counter()
    for table in tables:
        for path in rawio.part_paths(raw_dir, table.name):
            notes.update(_preflight_part(table, path))
    for note, parts in sorted(notes.items()):
        log.warning("%s (%d parts)", note, parts)
