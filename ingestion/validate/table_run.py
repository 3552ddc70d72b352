"""One table's run, in three passes with bounded memory.

1. screen: each raw part in batches is coerced, masked for infinities and checked row by
   row; failing rows go to the quarantine with their reasons, the rest are staged with
   their position (part, row).
2. flag: DuckDB over the staged parts finds duplicates and orphans (ingestion.validate.flags).
3. finish: staged rows not flagged are written as the good table, flagged rows are added to
   the quarantine with their original values.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import Progress

from ingestion import rawio
from ingestion.contract import INT, Table
from ingestion.quality import TableCounts
from ingestion.validate.coercion import ARROW_TEXT, coerce_frame, mask_non_finite
from ingestion.validate.errors import ValidationFailed
from ingestion.validate.flags import FlagLimits, flag_rows, flags_of_part
from ingestion.validate.quarantine import QuarantineSink, quarantine_frame
from ingestion.validate.report import PASSED
from ingestion.validate.row_checks import check_rows, drop_echoes, reason_texts
from ingestion.validate.workspace import Workspace

log = logging.getLogger(__name__)

BATCH_ROWS: Final = 250_000
# A column where more than this share of present values cannot be read has the wrong type:
# that is a table-level failure, not a pile of bad rows.
UNUSABLE_SHARE: Final = 0.5


def _batches(path: Path, table: Table) -> Iterator[pd.DataFrame]:
    """A raw part in batches of contract columns, each with a 0-based RangeIndex."""
    text = {pa.string(): ARROW_TEXT, pa.large_string(): ARROW_TEXT}
    try:
        for batch in pq.ParquetFile(path).iter_batches(BATCH_ROWS, columns=table.column_names):
            yield batch.to_pandas(types_mapper=text.get)
    except (OSError, pa.ArrowException) as err:
        raise ValidationFailed(f"{table.name}: cannot read {path}: {err}", table.name) from err


@dataclass
class TableRun:
    """Validates one table into the workspace; raises ValidationFailed when it is unusable."""

    table: Table
    raw_dir: Path
    ws: Workspace
    con: duckdb.DuckDBPyConnection
    max_bad_share: float
    counts: TableCounts
    progress: Progress
    limits: FlagLimits = field(default_factory=FlagLimits)
    unreadable: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    present: Counter[str] = field(default_factory=Counter)
    staged: dict[int, list[Path]] = field(default_factory=dict)
    written_parts: int = 0
    sink: QuarantineSink = field(init=False)

    def __post_init__(self) -> None:
        self.sink = QuarantineSink(self.ws.quarantine_tmp / f"{self.name}.parquet", self.table)

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
            typed, unread = coerce_frame(raw, self.table)
            self._count_unreadable(raw, unread)
            # After counting: an infinity is a bad value, not a sign of a wrongly typed column.
            masked = pd.concat([unread, mask_non_finite(typed, raw, self.table)], ignore_index=True)
            problems = drop_echoes(masked, check_rows(typed, self.table))
            reasons = reason_texts(problems)
            bad = reasons.index.to_numpy(dtype="int64")
            if len(bad):
                self.sink.write(
                    quarantine_frame(raw, self.table, bad, list(reasons), part=path, offset=offset)
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

    def _flag_global(self) -> int:
        """Flag duplicate keys and orphan foreign keys in DuckDB; return how many rows."""
        # Nothing was staged (no batches read): DuckDB's glob would find no file.
        if not any(self.staged.values()):
            return 0
        stage_dir = self.ws.staging / self.name
        return flag_rows(self.con, self.table, stage_dir, self.ws.out_tmp, self.counts, self.limits)

    # pass 3: write good rows and the flagged ones ----------------------------------------------

    def _finish_part(self, part_no: int, path: Path, flagged: int) -> None:
        flags = flags_of_part(self.con, part_no, flagged)
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
                quarantine_frame(raw, self.table, rows, list(inside), part=path, offset=offset)
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
