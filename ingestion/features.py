"""Feature-table builder: runs the feature SQL of feature_repo.transformations over the
validated raw tables with DuckDB and writes one parquet file per feature view plus labels.

The SQL is the one definition of each feature; this module only wires inputs and outputs.
Outputs are written to a temporary directory and swapped in at the end, so a failed build
leaves the previous feature tables in place. What does not depend on the engine (the
cutoffs, the statements and their parameters, the sort keys, the summary) is here too, for
the Spark runner (ingestion.spark_features) to share.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path

import duckdb
import pyarrow as pa

from collectwise.errors import InvalidInputError
from feature_repo import transformations as tx
from ingestion import partitioned_build as pb
from ingestion.contract import OPTIONAL_TABLES, REQUIRED_TABLES
from ingestion.duckdb_text import DUCKDB_DEFAULT_MEMORY, literal
from ingestion.rawio import has_table, swap_dir, table_glob

log = logging.getLogger(__name__)

# Sort keys make the output files deterministic and keep each entity's rows together.
SORT_KEYS = {
    "account_payment_velocity": "account_id, event_timestamp",
    "customer_financial_ratios": "customer_id, event_timestamp",
    "account_contact_behavior": "account_id, event_timestamp",
    "account_profile": "account_id, event_timestamp",
    "labels": "account_id, event_timestamp",
}


class FeatureBuildError(InvalidInputError, RuntimeError):
    """The feature build cannot run on these inputs (the message says why)."""


@dataclass
class FeatureBuildSummary:
    as_of: str
    snapshots: int
    rows: dict[str, int] = field(default_factory=dict)
    label_source: str = "derived"
    default_rate: float | None = None
    seconds: float = 0.0


def read_cutoffs(raw_dir: Path) -> tuple[datetime, datetime]:
    """The data cutoff (as_of: nothing recorded after it, the last snapshot) and the time by
    which outcomes were observed (labels_as_of, defaulting to as_of)."""
    manifest = Path(raw_dir) / "_manifest.json"
    stated = json.loads(manifest.read_text()) if manifest.exists() else {}
    if not stated.get("as_of"):
        raise FeatureBuildError(
            f"{manifest} is missing or has no 'as_of': the data cutoff must be stated, "
            "since labels and snapshots depend on it"
        )
    as_of = datetime.fromisoformat(stated["as_of"]).astimezone(UTC)
    labels_as_of = stated.get("labels_as_of")
    return as_of, datetime.fromisoformat(labels_as_of).astimezone(UTC) if labels_as_of else as_of


def connect(
    threads: int | None = None, memory_limit: str | None = None, spill_dir: Path | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB session for the build. With memory_limit (DuckDB's own syntax, "8GB" or
    "50%"), what does not fit spills to spill_dir instead of growing the process: a book
    bigger than the machine's memory is built in bounded memory, more slowly."""
    con = duckdb.connect()
    # Month boundaries and year()/month() depend on the session time zone.
    con.execute("SET TimeZone = 'UTC'")
    # Progress is logged per statement instead; DuckDB's bar would garble the logs.
    con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if spill_dir is not None:
        con.execute("SET temp_directory = ?", [str(spill_dir)])
    if memory_limit:
        try:
            con.execute("SET memory_limit = ?", [memory_limit])
        except duckdb.Error as exc:
            con.close()
            raise FeatureBuildError(f"--memory-limit {memory_limit!r}: {exc}") from exc
        # Insertion order costs memory in sorts and windows; the output is sorted anyway.
        con.execute("SET preserve_insertion_order = false")
    return con


def register_raw(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> bool:
    """Expose each raw table as a view; returns whether observed outcomes exist."""
    for table in REQUIRED_TABLES:
        if not has_table(raw_dir, table.name):
            raise FeatureBuildError(f"raw table '{table.name}' is missing under {raw_dir}")
        con.execute(
            f"CREATE OR REPLACE VIEW {table.name} AS "  # nosec B608  # table names are constants; the path is the operator's own (settings)
            f"SELECT * FROM read_parquet({literal(table_glob(raw_dir, table.name))})"
        )
    outcomes = OPTIONAL_TABLES[0].name
    if has_table(raw_dir, outcomes):
        con.execute(
            f"CREATE OR REPLACE VIEW {outcomes} AS "  # nosec B608  # table names are constants; the path is the operator's own (settings)
            f"SELECT * FROM read_parquet({literal(table_glob(raw_dir, outcomes))})"
        )
        return True
    return False


def first_statement(con: duckdb.DuckDBPyConnection) -> tuple[object, ...] | None:
    # fetchall, not fetchone: an unfinished result would block register() afterwards.
    return next(iter(con.execute(tx.FIRST_STATEMENT_SQL).fetchall()), None)


def compute_features(
    con: duckdb.DuckDBPyConnection,
    as_of: datetime,
    observed_labels: bool,
    label_grace_days: int = tx.DEFAULT_LABEL_GRACE_DAYS,
    labels_as_of: datetime | None = None,
    first: tuple[object, ...] | None = None,
) -> dict[str, float]:
    """Run every feature statement, leaving one temp table per output in `con`.

    `first` is FIRST_STATEMENT_SQL's answer for the whole book (a partitioned build asks it
    once); by default it is asked of the views in `con`. Returns the seconds each statement
    took, by the table it creates.
    """
    if first is None:
        first = first_statement(con)
    calendar = pa.table(
        {"snapshot_at": pa.array(snapshot_calendar(first, as_of), pa.timestamp("us", tz="UTC"))}
    )
    con.register(tx.CALENDAR_TABLE, calendar)
    params = statement_params(labels_as_of or as_of, label_grace_days)
    statements = feature_statements(observed_labels)
    seconds: dict[str, float] = {}
    for step, sql in enumerate(statements, start=1):
        started = time.perf_counter()
        con.execute(sql, used_params(sql, params))
        name = table_name(sql)
        seconds[name] = time.perf_counter() - started
        log.info("step %d/%d %s: %.1fs", step, len(statements), name, seconds[name])
    return seconds


def snapshot_calendar(
    first_statement: tuple[object, ...] | None, as_of: datetime
) -> list[datetime]:
    """The snapshot times, from the one-row answer of FIRST_STATEMENT_SQL on any engine."""
    first = first_statement[0] if first_statement else None
    if first is not None and not isinstance(first, date):
        raise FeatureBuildError(f"the first statement date reads as {first!r}, not a date")
    return tx.snapshot_calendar(first, as_of)


def feature_statements(observed_labels: bool) -> tuple[str, ...]:
    """Every statement in the order it runs: later ones read the tables of earlier ones."""
    label_sql = tx.OBSERVED_LABELS_SQL if observed_labels else tx.DERIVED_LABELS_SQL
    return (*tx.FEATURE_STATEMENTS, label_sql)


def statement_params(labels_as_of: datetime, label_grace_days: int) -> dict[str, object]:
    return {"labels_as_of": labels_as_of, "label_grace_days": label_grace_days}


def table_name(sql: str) -> str:
    match = re.search(r"TEMP TABLE (\w+)", sql)
    return match.group(1) if match else "statement"


def used_params(sql: str, params: dict[str, object]) -> dict[str, object]:
    # DuckDB rejects named parameters that a statement does not use.
    return {k: v for k, v in params.items() if f"${k}" in sql}


def write_tables(con: duckdb.DuckDBPyConnection, out_dir: Path) -> dict[str, int]:
    rows: dict[str, int] = {}
    for name in (*tx.FEATURE_TABLES, tx.LABEL_TABLE):
        path = out_dir / f"{name}.parquet"
        con.execute(
            f"COPY (SELECT * FROM {name} ORDER BY {SORT_KEYS[name]}) "  # nosec B608  # table names are constants; the path is the operator's own (settings)
            f"TO '{path}' (FORMAT PARQUET, COMPRESSION ZSTD)"
        )
        count = con.execute(f"SELECT count(*) FROM {name}").fetchone()  # nosec B608  # name is one of the module's table constants
        rows[name] = int(count[0]) if count else 0
    return rows


def build_features(
    raw_dir: Path,
    out_dir: Path,
    label_grace_days: int = tx.DEFAULT_LABEL_GRACE_DAYS,
    threads: int | None = None,
    memory_limit: str | None = None,
    partitions: int = 1,
) -> FeatureBuildSummary:
    """Compute all feature tables and labels from validated raw tables into `out_dir`.

    DuckDB spills beside out_dir (removed afterwards), never into the working directory.
    With partitions > 1 the book is built a slice of customers at a time
    (ingestion.partitioned_build): the spill shrinks with the slice."""
    if partitions < 1:
        raise FeatureBuildError(f"--partitions must be at least 1, not {partitions}")
    started = time.perf_counter()
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    as_of, labels_as_of = read_cutoffs(raw_dir)
    spill = out_dir.with_name(f"{out_dir.name}.spill-{os.getpid()}")
    con = connect(threads, memory_limit, spill)
    try:
        observed = register_raw(con, raw_dir)
        log.info("building features from %s as of %s", raw_dir, as_of.isoformat())
        cutoffs = (as_of, label_grace_days, labels_as_of)
        if partitions > 1:
            write = partial(_write_partitioned, con, raw_dir, cutoffs, observed, partitions)
        else:
            compute_features(con, as_of, observed, label_grace_days, labels_as_of)
            write = partial(write_tables, con)
        return publish(
            out_dir,
            lambda staged: summarise_built(con, staged, write(staged), as_of, observed, started),
        )
    except duckdb.IOException as err:
        # Most often the disk filled with DuckDB's spill files (a 10M-account build spilled
        # past 40 GB); the previous tables stay, as below.
        raise FeatureBuildError(
            f"DuckDB could not read or write a file building the features into {out_dir} "
            f"(it spills beside the output, in {spill.name}): {str(err).splitlines()[0]}"
        ) from err
    except duckdb.OutOfMemoryException as err:
        # The previous tables stay (publish swaps only a finished build); say what to change.
        raise FeatureBuildError(
            f"DuckDB ran out of memory building the features from {raw_dir} under memory "
            f"limit {memory_limit or DUCKDB_DEFAULT_MEMORY}: "
            f"{str(err).splitlines()[0]}; raise --memory-limit "
            "(COLLECTWISE_INGESTION__DUCKDB_MEMORY_LIMIT)"
        ) from err
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def _write_partitioned(
    con: duckdb.DuckDBPyConnection,
    raw_dir: Path,
    cutoffs: tuple[datetime, int, datetime | None],
    observed: bool,
    partitions: int,
    staged: Path,
) -> dict[str, int]:
    as_of, grace, labels_as_of = cutoffs
    first = first_statement(con)  # of the whole book: every slice shares one calendar
    parts, split = staged / "_parts", staged / "_split"
    pb.split_raw(con, raw_dir, split, partitions)
    started = time.perf_counter()  # the slices' own pace, for the estimate of what is left
    for partition in range(partitions):
        pb.narrow_to_partition(con, raw_dir, split, partition)
        compute_features(con, as_of, observed, grace, labels_as_of, first=first)
        pb.write_partition(con, parts, partition, SORT_KEYS)
        pb.log_partition(partition, partitions, started)
    shutil.rmtree(split)
    return pb.concatenate(con, parts, staged)


def summarise_built(
    con: duckdb.DuckDBPyConnection,
    staged: Path,
    rows: dict[str, int],
    as_of: datetime,
    observed: bool,
    started: float,
) -> FeatureBuildSummary:
    snapshots = con.execute(SNAPSHOT_COUNT_SQL).fetchone()
    labels = literal(str(staged / f"{tx.LABEL_TABLE}.parquet"))
    rate = con.execute(f"SELECT avg(default_30d) FROM read_parquet({labels})").fetchone()  # nosec B608  # our own path, quoted
    return summarise(as_of, rows, observed, snapshots, rate, started)


# What the summary reports, asked of whichever engine built the tables.
SNAPSHOT_COUNT_SQL = "SELECT count(*) FROM snapshots"
DEFAULT_RATE_SQL = f"SELECT avg(default_30d) FROM {tx.LABEL_TABLE}"  # nosec B608  # a constant table name


def publish(out_dir: Path, write: Callable[[Path], FeatureBuildSummary]) -> FeatureBuildSummary:
    """Let `write` fill a staging directory beside `out_dir`, then swap it in whole: a build
    that fails on the way leaves the previous feature tables as they were."""
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        summary = write(tmp)
        # No timings in the manifest: its hash fingerprints the data, so it must not
        # change when the same data is rebuilt.
        stable = {k: v for k, v in asdict(summary).items() if k != "seconds"}
        (tmp / "_manifest.json").write_text(json.dumps(stable, indent=2))
        swap_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "built %s feature rows over %d snapshots in %.1fs (labels: %d, default rate %s)",
        sum(v for k, v in summary.rows.items() if k != tx.LABEL_TABLE),
        summary.snapshots,
        summary.seconds,
        summary.rows[tx.LABEL_TABLE],
        f"{summary.default_rate:.3f}" if summary.default_rate is not None else "n/a",
    )
    return summary


def summarise(
    as_of: datetime,
    rows: dict[str, int],
    observed: bool,
    snapshots: tuple[object, ...] | None,
    rate: tuple[object, ...] | None,
    started: float,
) -> FeatureBuildSummary:
    """The build's summary from the one-row answers of SNAPSHOT_COUNT_SQL and
    DEFAULT_RATE_SQL."""
    count = snapshots[0] if snapshots else 0
    mean = rate[0] if rate else None
    return FeatureBuildSummary(
        as_of=as_of.isoformat(),
        snapshots=int(count) if isinstance(count, int) else 0,
        rows=rows,
        label_source="observed" if observed else "derived",
        default_rate=float(mean) if isinstance(mean, int | float) else None,
        seconds=round(time.perf_counter() - started, 3),
    )
