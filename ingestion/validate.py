"""Validate the raw tables against the contract: good rows out, bad rows quarantined.

Per table, three passes with bounded memory:

1. screen: read each parquet part in batches, coerce every column to the contract's type
   row by row, set aside infinities (a float that is not finite is a bad value), run the
   row schema (ingestion.schemas.row_schema: nulls, allowed values, bounds such as
   contract.MAX_AMOUNT); failing rows go to the quarantine with their reasons, the rest are
   staged with their position (part, row).
2. flag: DuckDB over the staged parts finds what no single part can show: duplicate keys
   and foreign keys missing from the parent's good rows (so a quarantined account takes its
   payments with it). Among the rows that passed screening, the first occurrence of a key
   in part and row order is kept: a row already quarantined for another reason does not
   take the place of a valid one.
3. finish: staged rows not flagged are written as the good table, flagged rows are added to
   the quarantine with their original values.

A problem that makes a table unusable (missing table or column, a column of the wrong type,
too many bad rows) raises ValidationFailed. Output goes to temporary sibling directories
that replace out_dir and quarantine_dir only when every table passed, so a failed run
leaves the previous good state in place.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pandera.errors import SchemaErrors
from rich.console import Console
from rich.progress import Progress

from ingestion import quality, rawio, schemas
from ingestion.contract import (
    FLOAT,
    INT,
    OPTIONAL_TABLES,
    REQUIRED_TABLES,
    STRING,
    TABLES_BY_NAME,
    TIMESTAMP,
    Table,
)
from ingestion.quality import TableCounts
from ingestion.rawio import swap_dir

log = logging.getLogger(__name__)

BATCH_ROWS: Final = 250_000
# A column where more than this share of present values cannot be read has the wrong type:
# that is a table-level failure, not a pile of bad rows.
UNUSABLE_SHARE: Final = 0.5
# DuckDB spills to disk beyond this instead of growing with the data.
DUCKDB_MEMORY_LIMIT: Final = "2GB"
MANIFEST: Final = "_manifest.json"
PASSED: Final = "passed"
FAILED: Final = "failed"
ARROW_TEXT: Final = pd.StringDtype("pyarrow")
NOT_FINITE: Final = "not finite"


class ValidationFailed(Exception):  # noqa: N818 (the name the pipeline agreed on)
    """Raw data that cannot be used: the message names the table, the column and the problem."""

    def __init__(self, message: str, table: str | None = None, column: str | None = None):
        super().__init__(message)
        self.table = table
        self.column = column


@dataclass
class ValidationSummary:
    """The outcome of validate_raw: per-table counts and reason tallies."""

    status: str
    tables: dict[str, TableCounts]
    error: str | None = None

    @property
    def raw_rows(self) -> int:
        return sum(c.raw for c in self.tables.values())

    @property
    def good_rows(self) -> int:
        return sum(c.good for c in self.tables.values())

    @property
    def quarantined_rows(self) -> int:
        return sum(c.quarantined for c in self.tables.values())


# --- output directories -------------------------------------------------------------------


@dataclass(frozen=True)
class _Workspace:
    """Temporary siblings of the output directories, swapped in only on success."""

    out_dir: Path
    quarantine_dir: Path

    def _sibling(self, path: Path, tag: str) -> Path:
        return path.with_name(f"{path.name}.{tag}-{os.getpid()}")

    @property
    def out_tmp(self) -> Path:
        return self._sibling(self.out_dir, "tmp")

    @property
    def quarantine_tmp(self) -> Path:
        return self._sibling(self.quarantine_dir, "tmp")

    @property
    def staging(self) -> Path:
        return self._sibling(self.out_dir, "staging")

    def create(self) -> None:
        self.discard()
        for path in (self.out_tmp, self.quarantine_tmp, self.staging):
            path.mkdir(parents=True)

    def commit(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        swap_dir(self.out_tmp, self.out_dir)
        swap_dir(self.quarantine_tmp, self.quarantine_dir)

    def discard(self) -> None:
        for path in (self.out_tmp, self.quarantine_tmp, self.staging):
            shutil.rmtree(path, ignore_errors=True)


# --- which tables, and can they be read at all --------------------------------------------


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


def _tables_to_validate(raw_dir: Path) -> list[Table]:
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


def _preflight(raw_dir: Path, tables: Sequence[Table]) -> None:
    """Fail before any heavy work on what makes a table unusable as a whole."""
    notes: Counter[str] = Counter()
    for table in tables:
        for path in rawio.part_paths(raw_dir, table.name):
            notes.update(_preflight_part(table, path))
    for note, parts in sorted(notes.items()):
        log.warning("%s (%d parts)", note, parts)


# --- coercion, one column at a time ---------------------------------------------------------

Coerced = tuple[pd.Series, pd.Series, str]


def _numbers(raw: pd.Series) -> pd.Series:
    # to_numeric answers nullable Float64 for arrow-backed text; plain float64 keeps NaN simple.
    return pd.to_numeric(raw, errors="coerce").astype("float64")


def _to_float(raw: pd.Series) -> Coerced:
    values = _numbers(raw)
    return values, raw.notna() & values.isna(), "not a number"


def _to_int(raw: pd.Series) -> Coerced:
    numbers = _numbers(raw)
    # Beyond 2**53 a float no longer tells which integer it was.
    failed = raw.notna() & (numbers.isna() | (numbers % 1 != 0) | (numbers.abs() > 2**53))
    return numbers.where(~failed).astype("Int64"), failed, "not an integer"


def _to_timestamp(raw: pd.Series) -> Coerced:
    if pd.api.types.is_datetime64_any_dtype(raw):
        values = raw.dt.tz_localize("UTC") if raw.dt.tz is None else raw.dt.tz_convert("UTC")
        return values.dt.as_unit("us"), pd.Series(False, index=raw.index), ""
    # ISO 8601 only: other layouts (15/01/2024) are ambiguous, so such rows are quarantined.
    values = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
    return values.dt.as_unit("us"), raw.notna() & values.isna(), "unparseable timestamp"


def _to_string(raw: pd.Series) -> Coerced:
    # Arrow-backed text: checks on it (isin, strip) run in C, not per Python object.
    return raw.astype(ARROW_TEXT), pd.Series(False, index=raw.index), ""


COERCERS: Final[dict[str, Callable[[pd.Series], Coerced]]] = {
    FLOAT: _to_float,
    INT: _to_int,
    TIMESTAMP: _to_timestamp,
    STRING: _to_string,
}


def _show(value: Any) -> str:
    """A short rendering of an offending value for a quarantine reason."""
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def _problems(rows: np.ndarray, order: int, kind: str, details: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"row": rows.astype("int64"), "order": order, "kind": kind, "detail": list(details)}
    )


def _no_problems() -> pd.DataFrame:
    return _problems(np.array([], dtype="int64"), 0, "", [])


def _plain(series: pd.Series) -> pd.Series:
    # Dictionary-encoded parquet columns arrive as categoricals; coerce their values instead.
    return series.astype(object) if isinstance(series.dtype, pd.CategoricalDtype) else series


def _coerce_frame(raw: pd.DataFrame, table: Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The batch in the contract's types, and one problem row per value that would not fit."""
    typed: dict[str, pd.Series] = {}
    found = [_no_problems()]
    for order, col in enumerate(table.columns):
        source = _plain(raw[col.name])
        values, failed, problem = COERCERS[col.dtype](source)
        typed[col.name] = values
        rows = np.flatnonzero(failed.to_numpy())
        if len(rows):
            details = [_show(v) for v in source.iloc[rows]]
            found.append(_problems(rows, order, f"{col.name}: {problem}", details))
    return pd.DataFrame(typed, index=raw.index), pd.concat(found, ignore_index=True)


def _mask_non_finite(typed: pd.DataFrame, raw: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Set +-inf in float columns to NaN in place; one problem row per value masked.

    An infinity reads as a float, so coercion lets it through; reported here as what it is,
    it is not also reported as out of bounds, and the null check it then fails is an echo.
    """
    found = [_no_problems()]
    for order, col in enumerate(table.columns):
        if col.dtype != FLOAT:
            continue
        infinite = np.isinf(typed[col.name].to_numpy(dtype="float64", na_value=np.nan))
        rows = np.flatnonzero(infinite)
        if len(rows):
            details = [_show(v) for v in raw[col.name].iloc[rows]]
            found.append(_problems(rows, order, f"{col.name}: {NOT_FINITE}", details))
            typed[col.name] = typed[col.name].mask(infinite)
    return pd.concat(found, ignore_index=True)


# --- row checks through pandera -------------------------------------------------------------


# Pandera's check names -> the problem a quarantine reason states; bounds add their value.
CHECK_PROBLEMS: Final = {
    "not_nullable": "null",
    "isin": "not allowed",
    schemas.BLANK_CHECK: "blank",
    schemas.FINITE_CHECK: NOT_FINITE,
}


def _column_kind(check: Any, column: str) -> str:
    name = getattr(check, "name", check)
    if name == "greater_than_or_equal_to":
        return f"{column}: less than {check.statistics['min_value']:g}"
    if name == "less_than_or_equal_to":
        return f"{column}: greater than {check.statistics['max_value']:g}"
    return f"{column}: {CHECK_PROBLEMS.get(name, f'failed {name}')}"


def _check_position(number: object) -> int | None:
    """Pandera's check_number: an int, or None / NaN for built-in checks such as nullability."""
    if isinstance(number, int | np.integer):
        return int(number)
    if isinstance(number, float) and not math.isnan(number):
        return int(number)
    return None


def _column_problems(fc: pd.DataFrame, schema: Any, table: Table) -> list[pd.DataFrame]:
    found = []
    for (column, check, number), group in fc.groupby(
        ["column", "check", "check_number"], dropna=False, sort=False
    ):
        checks = schema.columns[str(column)].checks
        position = _check_position(number)
        obj = checks[position] if position is not None else check
        kind = _column_kind(obj, str(column))
        details = [] if kind.endswith(": null") else [_show(v) for v in group["failure_case"]]
        details = details or [""] * len(group)
        order = table.column_names.index(str(column))
        found.append(_problems(group["index"].to_numpy(), order, kind, details))
    return found


def _frame_problems(fc: pd.DataFrame, typed: pd.DataFrame, table: Table) -> list[pd.DataFrame]:
    found = []
    for rule_no, rule in enumerate(schemas.time_orders(table)):
        rows = np.unique(fc.loc[fc["check"] == rule.reason, "index"].to_numpy(dtype="int64"))
        if len(rows):
            later, earlier = typed[rule.later].iloc[rows], typed[rule.earlier].iloc[rows]
            details = [f"{_show(a)} < {_show(b)}" for a, b in zip(later, earlier, strict=True)]
            found.append(_problems(rows, len(table.columns) + rule_no, rule.reason, details))
    return found


def _check_rows(typed: pd.DataFrame, table: Table) -> pd.DataFrame:
    """One problem row per failed pandera check of the row schema."""
    schema = schemas.row_schema(table)
    try:
        schema.validate(typed, lazy=True, inplace=True)
    except SchemaErrors as err:
        fc = err.failure_cases
        if fc["index"].isna().any():
            raise ValidationFailed(f"{table.name}: {err}", table.name) from err
        fc = fc.assign(index=fc["index"].astype("int64"))
        by_column = fc[fc["schema_context"] == "Column"]
        by_frame = fc[fc["schema_context"] != "Column"]
        found = _column_problems(by_column, schema, table)
        found += _frame_problems(by_frame, typed, table)
        return pd.concat([_no_problems(), *found], ignore_index=True)
    return _no_problems()


def _drop_echoes(coerce: pd.DataFrame, checked: pd.DataFrame) -> pd.DataFrame:
    """Both problem lists; a value that could not be read is not also reported as null."""
    echoes = set(zip(coerce["row"], coerce["order"], strict=True))
    is_echo = [
        (r, o) in echoes and k.endswith(": null")
        for r, o, k in zip(checked["row"], checked["order"], checked["kind"], strict=True)
    ]
    kept = checked[~np.array(is_echo, dtype=bool)]
    both = pd.concat([coerce, kept], ignore_index=True)
    return both.drop_duplicates(["row", "kind"])


def _reasons(problems: pd.DataFrame) -> pd.Series:
    """Row -> "col: problem (value); col: problem" in column order."""
    p = problems.sort_values(["row", "order"], kind="stable")
    detail = p["detail"].astype(str)
    text = p["kind"] + np.where(detail != "", " (" + detail + ")", "")
    return text.groupby(p["row"]).agg("; ".join)


# --- quarantine file --------------------------------------------------------------------------


def _as_text(series: pd.Series) -> pd.Series:
    return _plain(series).astype("string")


def _quarantine_frame(
    raw: pd.DataFrame,
    table: Table,
    rows: np.ndarray,
    reasons: Sequence[str],
    *,
    part: Path,
    offset: int,
) -> pd.DataFrame:
    """The original values of the given rows as text, with reason and where they came from."""
    out = pd.DataFrame({c: _as_text(raw[c].iloc[rows]).to_numpy() for c in table.column_names})
    out["reason"] = list(reasons)
    out["source_part"] = part.name
    out["source_row"] = rows.astype("int64") + offset
    return out


class _QuarantineSink:
    """Streams a table's quarantined rows into one parquet file."""

    def __init__(self, path: Path, table: Table) -> None:
        self.path = path
        fields = [pa.field(c, pa.string()) for c in [*table.column_names, "reason", "source_part"]]
        self.schema = pa.schema([*fields, pa.field("source_row", pa.int64())])
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, self.schema)
        self.writer.write_table(
            pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        )
        self.rows += len(frame)

    def close(self) -> None:
        if self.writer is None:
            pq.write_table(self.schema.empty_table(), self.path)
        else:
            self.writer.close()


# --- DuckDB helpers ---------------------------------------------------------------------------


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _connect(spill_dir: Path) -> duckdb.DuckDBPyConnection:
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
        f"SELECT _part, _row, {order} AS ord, {reason} AS reason FROM ("
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
        f"SELECT s._part, s._row, {order} AS ord, {reason} AS reason"
        f" FROM {stage} AS s ANTI JOIN {parent_source} AS p ON s.{c} = p.{_ident(parent.key)}"
        f" WHERE s.{c} IS NOT NULL"
    )


# --- one table ----------------------------------------------------------------------------------


def _batches(path: Path, table: Table) -> Iterator[pd.DataFrame]:
    """A raw part in batches of contract columns, each with a 0-based RangeIndex."""
    text = {pa.string(): ARROW_TEXT, pa.large_string(): ARROW_TEXT}
    try:
        for batch in pq.ParquetFile(path).iter_batches(BATCH_ROWS, columns=table.column_names):
            yield batch.to_pandas(types_mapper=text.get)
    except (OSError, pa.ArrowException) as err:
        raise ValidationFailed(f"{table.name}: cannot read {path}: {err}", table.name) from err


@dataclass
class _TableRun:
    """Validates one table into the workspace; raises ValidationFailed when it is unusable."""

    table: Table
    raw_dir: Path
    ws: _Workspace
    con: duckdb.DuckDBPyConnection
    max_bad_share: float
    counts: TableCounts
    progress: Progress
    unreadable: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    present: Counter[str] = field(default_factory=Counter)
    staged: dict[int, list[Path]] = field(default_factory=dict)
    written_parts: int = 0
    sink: _QuarantineSink = field(init=False)

    def __post_init__(self) -> None:
        self.sink = _QuarantineSink(self.ws.quarantine_tmp / f"{self.name}.parquet", self.table)

    @property
    def name(self) -> str:
        return self.table.name

    def run(self) -> None:
        parts = rawio.part_paths(self.raw_dir, self.name)
        sizes = [pq.ParquetFile(p).metadata.num_rows for p in parts]
        self.counts.raw = sum(sizes)
        task = self.progress.add_task(self.name, total=2 * self.counts.raw or 1)
        (self.ws.staging / self.name).mkdir()
        for part_no, path in enumerate(parts):
            self._screen_part(part_no, path, task)
        flagged = self._flag_global()
        self._check_usable(pending=flagged, final=True)
        for part_no, (path, size) in enumerate(zip(parts, sizes, strict=True)):
            self._finish_part(part_no, path, flagged)
            self.progress.advance(task, size)
        self.sink.close()
        self._finish_table()

    # pass 1: screen rows --------------------------------------------------------------------

    def _screen_part(self, part_no: int, path: Path, task: Any) -> None:
        offset = 0
        staged = self.staged.setdefault(part_no, [])
        for raw in _batches(path, self.table):
            typed, unread = _coerce_frame(raw, self.table)
            self._count_unreadable(raw, unread)
            # After counting: an infinity is a bad value, not a sign of a wrongly typed column.
            masked = pd.concat(
                [unread, _mask_non_finite(typed, raw, self.table)], ignore_index=True
            )
            problems = _drop_echoes(masked, _check_rows(typed, self.table))
            reasons = _reasons(problems)
            bad = reasons.index.to_numpy(dtype="int64")
            if len(bad):
                self.sink.write(
                    _quarantine_frame(raw, self.table, bad, list(reasons), part=path, offset=offset)
                )
            self.counts.quarantined += len(bad)
            self.counts.add_reasons(Counter(problems["kind"].astype(str)))
            staged.append(self._stage(typed[~typed.index.isin(bad)], part_no, offset))
            offset += len(raw)
            self.progress.advance(task, len(raw))
            self._check_usable(pending=0, final=False)
        log.debug("%s: screened %s (%d rows)", self.name, path.name, offset)

    def _count_unreadable(self, raw: pd.DataFrame, unread: pd.DataFrame) -> None:
        self.present.update({c: int(raw[c].notna().sum()) for c in self.table.column_names})
        for kind, group in unread.groupby("kind"):
            column = str(kind).split(":")[0]
            self.unreadable[column] += len(group)
            seen = self.examples.setdefault(column, [])
            seen += list(group["detail"][: 3 - len(seen)])

    def _stage(self, good: pd.DataFrame, part_no: int, offset: int) -> Path:
        # Not rawio.conform: its Python-object strings would cost more than the staging write.
        frame = good[self.table.column_names].copy()
        for col in self.table.columns:
            if col.dtype == INT:
                frame[col.name] = frame[col.name].astype(INT)
        frame["_part"] = np.int32(part_no)
        frame["_row"] = good.index.to_numpy(dtype="int64") + offset
        path = self.ws.staging / self.name / f"p{part_no:05d}-{offset:012d}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        return path

    # table-level verdicts --------------------------------------------------------------------

    def _check_usable(self, pending: int, final: bool) -> None:
        """Fail as soon as the table is certain to fail, naming the column when it is one."""
        bad = self.counts.quarantined + pending
        too_many = bad > self.max_bad_share * self.counts.raw
        if not (too_many or final):
            return
        for column, rows in self.unreadable.most_common():
            if rows > UNUSABLE_SHARE * self.present[column]:
                dtype = self.table.columns[self.table.column_names.index(column)].dtype
                raise ValidationFailed(
                    f"{self.name}.{column}: {rows} of {self.present[column]} values seen cannot "
                    f"be read as {dtype} (e.g. {', '.join(self.examples[column])}); "
                    "the column is unusable",
                    self.name,
                    column,
                )
        if too_many:
            self._fail_bad_share(bad)

    def _fail_bad_share(self, bad: int) -> None:
        top = self.counts.top_reasons(5)
        listed = ", ".join(f"{r} ({n} rows)" for r, n in top)
        raise ValidationFailed(
            f"{self.name}: at least {bad} of {self.counts.raw} rows "
            f"({bad / self.counts.raw:.1%}) are bad, above the allowed "
            f"{self.max_bad_share:.1%}; reasons: {listed}",
            self.name,
            top[0][0].split(":")[0] if top else None,
        )

    # pass 2: flag duplicates and orphans -----------------------------------------------------

    def _flag_queries(self, stage: str) -> list[str]:
        names = self.table.column_names
        queries = [
            _duplicate_sql(stage, key, names.index(key[0]))
            for key in schemas.unique_keys(self.table)
        ]
        for column, parent_name in self.table.foreign_keys.items():
            parent = TABLES_BY_NAME[parent_name]
            source = f"read_parquet({_literal(rawio.table_glob(self.ws.out_tmp, parent_name))})"
            queries.append(_orphan_sql(stage, column, parent, source, names.index(column)))
        return queries

    def _flag_global(self) -> int:
        """Flag duplicate keys and orphan foreign keys in DuckDB; return how many rows."""
        stage = f"read_parquet({_literal(str(self.ws.staging / self.name / '*.parquet'))})"
        queries = self._flag_queries(stage)
        if not queries or not any(self.staged.values()):
            return 0
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE flag_rows AS {' UNION ALL '.join(queries)}")
        tally = self.con.execute(
            "SELECT reason, count(*) FROM flag_rows GROUP BY reason"
        ).fetchall()
        self.counts.add_reasons(dict(tally))
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE flags AS SELECT _part, _row,"
            " string_agg(reason, '; ' ORDER BY ord) AS reason FROM flag_rows GROUP BY _part, _row"
        )
        row = self.con.execute("SELECT count(*) FROM flags").fetchone()
        flagged = int(row[0]) if row else 0
        log.info("%s: %d rows flagged as duplicates or orphans", self.name, flagged)
        return flagged

    # pass 3: write good rows and the flagged ones ----------------------------------------------

    def _flags_of(self, part_no: int, flagged: int) -> pd.DataFrame:
        if not flagged:
            return pd.DataFrame({"_row": pd.Series(dtype="int64"), "reason": pd.Series(dtype=str)})
        sql = "SELECT _row, reason FROM flags WHERE _part = ? ORDER BY _row"
        return self.con.execute(sql, [part_no]).df()

    def _finish_part(self, part_no: int, path: Path, flagged: int) -> None:
        flags = self._flags_of(part_no, flagged)
        for staged in self.staged.get(part_no, []):
            good = pq.read_table(staged).to_pandas()
            good = good[~good["_row"].isin(flags["_row"])]
            if not good.empty:
                rawio.write_part(good, self.ws.out_tmp, self.name, self.written_parts)
                self.written_parts += 1
                self.counts.good += len(good)
        if not flags.empty:
            self._quarantine_flagged(path, flags)

    def _quarantine_flagged(self, path: Path, flags: pd.DataFrame) -> None:
        """Quarantine flagged rows with their values as read from the raw part."""
        wanted = flags.set_index("_row")["reason"]
        offset = 0
        for raw in _batches(path, self.table):
            inside = wanted[(wanted.index >= offset) & (wanted.index < offset + len(raw))]
            rows = inside.index.to_numpy(dtype="int64") - offset
            self.sink.write(
                _quarantine_frame(raw, self.table, rows, list(inside), part=path, offset=offset)
            )
            self.counts.quarantined += len(rows)
            offset += len(raw)

    def _finish_table(self) -> None:
        if not self.written_parts:
            # An empty part keeps the table readable (rawio.read_table, DuckDB globs).
            empty = pd.DataFrame({c: pd.Series(dtype=object) for c in self.table.column_names})
            rawio.write_part(empty, self.ws.out_tmp, self.name, 0)
        c = self.counts
        if c.raw != c.good + c.quarantined or self.sink.rows != c.quarantined:
            raise AssertionError(
                f"{self.name}: raw {c.raw} != good {c.good} + quarantined {c.quarantined}"
            )
        c.status = PASSED
        log.info(
            "%s: %d raw = %d good + %d quarantined (%.2f%%)",
            self.name,
            c.raw,
            c.good,
            c.quarantined,
            100 * c.quarantined_share,
        )


# --- the whole run ------------------------------------------------------------------------------


def _progress() -> Progress:
    console = Console(stderr=True)
    return Progress(console=console, transient=True, disable=not console.is_terminal)


def _validate_tables(
    raw_dir: Path, ws: _Workspace, counts: dict[str, TableCounts], max_bad_share: float
) -> None:
    tables = _tables_to_validate(raw_dir)
    _preflight(raw_dir, tables)
    con = _connect(ws.staging)
    try:
        with _progress() as progress:
            for table in tables:
                counts[table.name] = TableCounts()
                try:
                    run = _TableRun(
                        table, raw_dir, ws, con, max_bad_share, counts[table.name], progress
                    )
                    run.run()
                except Exception:
                    counts[table.name].status = FAILED
                    raise
    finally:
        con.close()
    manifest = raw_dir / MANIFEST
    if manifest.exists():
        shutil.copy2(manifest, ws.out_tmp / MANIFEST)


def _report_failure(
    err: Exception, counts: dict[str, TableCounts], ws: _Workspace, report_dir: Path, share: float
) -> None:
    """Write what is known about a failed run; never hide the original error."""
    try:
        quality.write_quality_report(
            report_dir, counts, ws.out_tmp, status=FAILED, error=str(err), max_bad_share=share
        )
    except Exception:
        log.exception("could not write the quality report of the failed run")


def _log_summary(summary: ValidationSummary) -> None:
    for name, c in summary.tables.items():
        top = "; ".join(f"{r} x{n}" for r, n in c.top_reasons(3))
        log.info(
            "%-10s raw %10d  good %10d  quarantined %8d  %s",
            name,
            c.raw,
            c.good,
            c.quarantined,
            top,
        )
    log.info(
        "validation %s: %d raw rows = %d good + %d quarantined",
        summary.status,
        summary.raw_rows,
        summary.good_rows,
        summary.quarantined_rows,
    )


def _check_paths(raw_dir: Path, ws: _Workspace) -> None:
    # Swapping an output directory into place removes what was there: never the raw data.
    for target in (ws.out_dir, ws.quarantine_dir):
        if raw_dir == target or target in raw_dir.parents:
            raise ValueError(f"output directory {target} would replace the raw data {raw_dir}")
    if ws.out_dir == ws.quarantine_dir:
        raise ValueError(f"good and quarantined rows need different directories: {ws.out_dir}")


def validate_raw(
    raw_dir: Path,
    out_dir: Path,
    quarantine_dir: Path,
    report_dir: Path,
    max_bad_share: float = 0.05,
) -> ValidationSummary:
    """Validate every raw table; write good rows, quarantined rows and the quality report.

    Raises ValidationFailed (after writing a "failed" report) when a table is unusable; then
    out_dir and quarantine_dir keep their previous content.
    """
    if not 0.0 <= max_bad_share <= 1.0:
        raise ValueError(f"max_bad_share must lie in [0, 1], got {max_bad_share}")
    raw_dir = Path(raw_dir)
    ws = _Workspace(Path(out_dir).resolve(), Path(quarantine_dir).resolve())
    _check_paths(raw_dir.resolve(), ws)
    counts: dict[str, TableCounts] = {}
    ws.create()
    try:
        _validate_tables(raw_dir, ws, counts, max_bad_share)
    except Exception as err:
        log.error("validation failed: %s", err)
        _report_failure(err, counts, ws, Path(report_dir), max_bad_share)
        ws.discard()
        raise
    ws.commit()
    summary = ValidationSummary(PASSED, counts)
    quality.write_quality_report(
        Path(report_dir), counts, ws.out_dir, status=PASSED, max_bad_share=max_bad_share
    )
    _log_summary(summary)
    return summary
