"""One SparkSession for every Spark test of a process: local mode, UTC, ANSI on, few shuffle
partitions (starting a JVM costs about ten seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from ingestion.spark_features import SparkUnavailableError, spark_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    try:
        session = spark_session("local[2]", **{"spark.sql.shuffle.partitions": "2"})
    except SparkUnavailableError as exc:
        # Not a skip: `make test` installs pyspark and Java, so their absence is a failure.
        pytest.fail(f"the spark tests cannot start Spark: {exc}")
    assert session.conf.get("spark.sql.session.timeZone") == "UTC"
    assert session.conf.get("spark.sql.ansi.enabled") == "true"
    yield session
    session.stop()
