"""One SparkSession for every Spark test of a process: local mode, UTC, ANSI on, few shuffle
partitions (starting a JVM costs about ten seconds)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from ingestion.spark_features import SparkUnavailableError, spark_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="session", autouse=True)
def spark_python_workers() -> Iterator[None]:
    """Spark's Python workers run this interpreter. PySpark starts `python3` from PATH unless
    PYSPARK_PYTHON says otherwise, read once when the SparkContext starts; Feast's Spark
    engine materialises in Python workers, which need Feast. `make test` puts the venv on
    PATH; a bare `.venv/bin/python -m pytest` does not. An explicit choice is kept."""
    with pytest.MonkeyPatch.context() as patch:
        if not os.environ.get("PYSPARK_PYTHON"):
            patch.setenv("PYSPARK_PYTHON", sys.executable)
        yield


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
