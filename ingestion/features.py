"""Feature-table builder: runs the feature SQL of feature_repo.transformations over the
validated raw tables with DuckDB and writes one parquet file per feature view plus labels.

The SQL is the one definition of each feature; this module only wires inputs and outputs.
Outputs are written to a temporary directory and swapped in at the end, so a failed build
leaves the previous feature tables in place.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from collectwise.errors import InvalidInputError
from feature_repo import transformations as tx
from ingestion.contract import OPTIONAL_TABLES, REQUIRED_TABLES
from ingestion.rawio import has_table, swap_dir, table_glob

log = logging.getLogger(__name__)

# Sort keys make the output files deterministic and keep each entity's rows together.
_SORT_KEYS = {
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


def connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    # Month boundaries and year()/month() depend on the session time zone.
    con.execute("SET TimeZone = 'UTC'")
    # Progress is logged per statement instead; DuckDB's bar would garble the logs.
    con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def register_raw(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> bool:
    """Expose each raw table as a view; returns whether observed outcomes exist."""
    for table in REQUIRED_TABLES:
        if not has_table(raw_dir, table.name):
            raise FeatureBuildError(f"raw table '{table.name}' is missing under {raw_dir}")
        con.execute(
            f"CREATE OR REPLACE VIEW {table.name} AS "  # nosec B608  # table names are constants; the path is the operator's own (settings)
            f"SELECT * FROM read_parquet('{table_glob(raw_dir, table.name)}')"
        )
    outcomes = OPTIONAL_TABLES[0].name
    if has_table(raw_dir, outcomes):
        con.execute(
            f"CREATE OR REPLACE VIEW {outcomes} AS "  # nosec B608  # table names are constants; the path is the operator's own (settings)
            f"SELECT * FROM read_parquet('{table_glob(raw_dir, outcomes)}')"
        )
        return True
    return False


def compute_features(
    con: duckdb.DuckDBPyConnection,
    as_of: datetime,
    observed_labels: bool,
    label_grace_days: int = tx.DEFAULT_LABEL_GRACE_DAYS,
    labels_as_of: datetime | None = None,
) -> dict[str, float]:
    """Run every feature statement, leaving one temp table per output in `con`.

    Returns the seconds each statement took, by the table it creates.
    """
    params = {
        "as_of": as_of,
        "labels_as_of": labels_as_of or as_of,
        "label_grace_days": label_grace_days,
    }
    label_sql = tx.OBSERVED_LABELS_SQL if observed_labels else tx.DERIVED_LABELS_SQL
    statements = (*tx.FEATURE_STATEMENTS, label_sql)
    seconds: dict[str, float] = {}
    for step, sql in enumerate(statements, start=1):
        started = time.perf_counter()
        con.execute(sql, _used_params(sql, params))
        name = _table_name(sql)
        seconds[name] = time.perf_counter() - started
        log.info("step %d/%d %s: %.1fs", step, len(statements), name, seconds[name])
    return seconds


def _table_name(sql: str) -> str:
    match = re.search(r"TEMP TABLE (\w+)", sql)
    return match.group(1) if match else "statement"


def _used_params(sql: str, params: dict[str, object]) -> dict[str, object]:
    # DuckDB rejects named parameters that a statement does not use.
    return {k: v for k, v in params.items() if f"${k}" in sql}


def write_tables(con: duckdb.DuckDBPyConnection, out_dir: Path) -> dict[str, int]:
    rows: dict[str, int] = {}
    for name in (*tx.FEATURE_TABLES, tx.LABEL_TABLE):
        path = out_dir / f"{name}.parquet"
        con.execute(
            f"COPY (SELECT * FROM {name} ORDER BY {_SORT_KEYS[name]}) "  # nosec B608  # table names are constants; the path is the operator's own (settings)
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
) -> FeatureBuildSummary:
    """Compute all feature tables and labels from validated raw tables into `out_dir`."""
    started = time.perf_counter()
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    as_of, labels_as_of = read_cutoffs(raw_dir)
    con = connect(threads)
    observed = register_raw(con, raw_dir)
    log.info("building features from %s as of %s", raw_dir, as_of.isoformat())
    compute_features(con, as_of, observed, label_grace_days, labels_as_of)
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        rows = write_tables(con, tmp)
        summary = _summarise(con, as_of, rows, observed, started)
        # No timings in the manifest: its hash fingerprints the data, so it must not
        # change when the same data is rebuilt.
        stable = {k: v for k, v in asdict(summary).items() if k != "seconds"}
        (tmp / "_manifest.json").write_text(json.dumps(stable, indent=2))
        swap_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        con.close()
    log.info(
        "built %s feature rows over %d snapshots in %.1fs (labels: %d, default rate %s)",
        sum(v for k, v in rows.items() if k != tx.LABEL_TABLE),
        summary.snapshots,
        summary.seconds,
        rows[tx.LABEL_TABLE],
        f"{summary.default_rate:.3f}" if summary.default_rate is not None else "n/a",
    )
    return summary


def _summarise(
    con: duckdb.DuckDBPyConnection,
    as_of: datetime,
    rows: dict[str, int],
    observed: bool,
    started: float,
) -> FeatureBuildSummary:
    snapshots = con.execute("SELECT count(*) FROM snapshots").fetchone()
    rate = con.execute("SELECT avg(default_30d) FROM labels").fetchone()
    return FeatureBuildSummary(
        as_of=as_of.isoformat(),
        snapshots=int(snapshots[0]) if snapshots else 0,
        rows=rows,
        label_source="observed" if observed else "derived",
        default_rate=float(rate[0]) if rate and rate[0] is not None else None,
        seconds=round(time.perf_counter() - started, 3),
    )
