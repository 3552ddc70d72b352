"""The feature build on Apache Spark (local mode here, a cluster elsewhere).

The same statements as the DuckDB build (ingestion.features), translated by sqlglot at run
time (ingestion.feature_sql); the same cutoffs, snapshot calendar, sort keys and summary,
and the same publishing: tables are written to a staging directory and swapped in whole, so
a build that fails leaves the previous feature tables as they were. Each output is one
parquet file named as DuckDB names it, so every reader downstream is unchanged.

Each statement's table becomes a cached temporary view: Spark has no temp tables, and an
uncached view would be recomputed by every statement that reads it.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from collectwise.errors import CollectwiseError
from feature_repo import transformations as tx
from ingestion.contract import OPTIONAL_TABLES, REQUIRED_TABLES
from ingestion.feature_sql import query_to_spark, to_spark
from ingestion.features import (
    DEFAULT_RATE_SQL,
    SNAPSHOT_COUNT_SQL,
    SORT_KEYS,
    FeatureBuildError,
    FeatureBuildSummary,
    feature_statements,
    publish,
    read_cutoffs,
    snapshot_calendar,
    statement_params,
    summarise,
    used_params,
)
from ingestion.rawio import part_paths

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

DEFAULT_MASTER = "local[2]"
# Month boundaries and year()/month() depend on the session time zone, as in DuckDB's
# connect(). ANSI mode (Spark 4's default) is pinned so an overflow fails instead of
# wrapping. Parquet timestamps are written as DuckDB writes them (microseconds, UTC).
SPARK_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.compression.codec": "zstd",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}
INSTALL_PYSPARK = "install it with `make setup-spark` (pip install 'collectwise[spark]')"
INSTALL_JAVA = "install openjdk-17-jre-headless (apt) or point JAVA_HOME at a Java 17"


class SparkUnavailableError(CollectwiseError):
    """The Spark engine cannot start here: pyspark or Java is missing (the message says
    which, and what to install)."""

    kind = "missing_dependency"


def require_spark() -> None:
    """Fail with one line naming what to install when pyspark or Java is missing."""
    try:
        import pyspark  # noqa: F401, PLC0415
    except ImportError as exc:
        raise SparkUnavailableError(
            f"the Spark engine needs pyspark, which is not installed: {INSTALL_PYSPARK}"
        ) from exc
    if _java() is None:
        where = f"JAVA_HOME={os.environ['JAVA_HOME']}" if os.environ.get("JAVA_HOME") else "PATH"
        raise SparkUnavailableError(
            f"the Spark engine needs a Java runtime and found none ({where}): {INSTALL_JAVA}"
        )


def _java() -> str | None:
    # pyspark's launcher takes $JAVA_HOME/bin/java when JAVA_HOME is set, else java on PATH.
    home = os.environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        return str(java) if java.is_file() and os.access(java, os.X_OK) else None
    return shutil.which("java")


def spark_session(master: str = DEFAULT_MASTER, **conf: str) -> SparkSession:
    """A SparkSession with the build's settings (SPARK_CONF, overridden by `conf`)."""
    require_spark()
    from pyspark.errors import PySparkException  # noqa: PLC0415
    from pyspark.sql import SparkSession  # noqa: PLC0415

    builder = SparkSession.builder.master(master).appName("collectwise-features")
    for key, value in {**SPARK_CONF, **conf}.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except PySparkException as exc:
        raise SparkUnavailableError(f"Spark did not start ({master}): {exc}") from exc
    session.sparkContext.setLogLevel("ERROR")
    # py4j logs every gateway connection at INFO.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    return session


def build_features_spark(
    raw_dir: Path,
    out_dir: Path,
    label_grace_days: int = tx.DEFAULT_LABEL_GRACE_DAYS,
    spark: SparkSession | None = None,
    master: str = DEFAULT_MASTER,
    conf: Mapping[str, str] | None = None,
) -> FeatureBuildSummary:
    """Compute all feature tables and labels on Spark, as ingestion.features.build_features
    does on DuckDB. Uses `spark` when given (and leaves it running), else starts one with
    `conf` over the build's settings (e.g. spark.driver.memory for a big local run)."""
    if spark is None:
        require_spark()  # before anything else: a missing install is the first thing to say
    started = time.perf_counter()
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    as_of, labels_as_of = read_cutoffs(raw_dir)
    session = spark or spark_session(master, **(conf or {}))
    try:
        with _temp_views(session) as views:
            observed = register_raw(session, raw_dir, views)
            log.info("building features on Spark from %s as of %s", raw_dir, as_of.isoformat())
            compute_features(session, views, as_of, observed, label_grace_days, labels_as_of)

            def write(staged: Path) -> FeatureBuildSummary:
                rows = {name: _write_table(session, name, staged) for name in _OUTPUTS}
                snapshots = session.sql(query_to_spark(SNAPSHOT_COUNT_SQL)).first()
                rate = session.sql(query_to_spark(DEFAULT_RATE_SQL)).first()
                return summarise(as_of, rows, observed, snapshots, rate, started)

            return publish(out_dir, write)
    finally:
        if spark is None:
            session.stop()


_OUTPUTS = (*tx.FEATURE_TABLES, tx.LABEL_TABLE)


@contextmanager
def _temp_views(session: SparkSession) -> Iterator[list[str]]:
    """Collects the names of the views a build makes; drops them (and their cache) after,
    so a shared session keeps neither names nor memory."""
    views: list[str] = []
    try:
        yield views
    finally:
        for name in views:
            if session.catalog.tableExists(name):
                session.table(name).unpersist()
            session.catalog.dropTempView(name)


def register_raw(session: SparkSession, raw_dir: Path, views: list[str]) -> bool:
    """Expose each raw table (the same parquet parts DuckDB reads) as a temp view; returns
    whether observed outcomes exist."""
    outcomes = OPTIONAL_TABLES[0].name
    for name in (*(t.name for t in REQUIRED_TABLES), outcomes):
        parts = [str(p) for p in part_paths(raw_dir, name)]
        if not parts and name == outcomes:
            return False
        if not parts:
            raise FeatureBuildError(f"raw table '{name}' is missing under {raw_dir}")
        session.read.parquet(*parts).createOrReplaceTempView(name)
        views.append(name)
    return True


def compute_features(
    session: SparkSession,
    views: list[str],
    as_of: datetime,
    observed_labels: bool,
    label_grace_days: int,
    labels_as_of: datetime,
) -> dict[str, float]:
    """Run every statement, leaving one cached temp view per table; returns the seconds
    each took, by table."""
    first = session.sql(query_to_spark(tx.FIRST_STATEMENT_SQL)).first()
    calendar = snapshot_calendar(tuple(first) if first else None, as_of)
    rows = [(t,) for t in calendar]
    session.createDataFrame(rows, "snapshot_at timestamp").createOrReplaceTempView(
        tx.CALENDAR_TABLE
    )
    views.append(tx.CALENDAR_TABLE)
    params = statement_params(labels_as_of, label_grace_days)
    statements = feature_statements(observed_labels)
    seconds: dict[str, float] = {}
    for step, sql in enumerate(statements, start=1):
        began = time.perf_counter()
        table, query = to_spark(sql)
        args = {k: _spark_arg(v) for k, v in used_params(sql, params).items()}
        frame = session.sql(query, args=args).cache()
        frame.createOrReplaceTempView(table)
        views.append(table)
        count = frame.count()  # fills the cache, so a failing statement fails here
        seconds[table] = time.perf_counter() - began
        log.info(
            "step %d/%d %s: %d rows, %.1fs", step, len(statements), table, count, seconds[table]
        )
    return seconds


def _spark_arg(value: object) -> object:
    # Spark binds timestamps as ISO text (cast in the SQL); a datetime would be read in the
    # JVM's time zone.
    return value.isoformat() if isinstance(value, datetime) else value


def _write_table(session: SparkSession, name: str, staged: Path) -> int:
    """Write one table, sorted like DuckDB's, as the single file `<name>.parquet`."""
    keys = [k.strip() for k in SORT_KEYS[name].split(",")]
    frame = session.table(name)
    spark_dir = staged / f".{name}.spark"
    frame.repartition(1).sortWithinPartitions(*keys).write.parquet(str(spark_dir))
    (part,) = spark_dir.glob("part-*.parquet")
    part.rename(staged / f"{name}.parquet")
    shutil.rmtree(spark_dir)
    return frame.count()
