"""Every feature table and the labels built by Spark equal DuckDB's, row for row: the same
columns and types, the same order, floats within 1e-12, everything else (arrays and nulls
included) exactly. On generated data (derived labels) and on a slice of the UCI file
(observed labels), so every statement runs on both engines."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feature_repo import transformations as tx
from ingestion import spark_features
from ingestion.features import build_features
from ingestion.spark_features import build_features_spark
from ingestion.synthetic import SyntheticConfig, generate
from ingestion.uci import ingest_uci
from ingestion.validate import validate_raw

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = [pytest.mark.spark, pytest.mark.slow]

OUTPUTS = (*tx.FEATURE_TABLES, tx.LABEL_TABLE)
TOLERANCE = 1e-12
UCI_CLIENTS = 300


@dataclass
class Built:
    duckdb: Path
    spark: Path


def _build_both(validated: Path, root: Path, spark: SparkSession) -> Built:
    build_features(validated, root / "duckdb")
    build_features_spark(validated, root / "spark", spark=spark)
    return Built(root / "duckdb", root / "spark")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, spark: SparkSession) -> Built:
    """300 generated accounts over 12 months (derived labels), built on both engines."""
    root = tmp_path_factory.mktemp("parity_generated")
    config = SyntheticConfig(
        accounts=300, months=12, seed=11, start=datetime(2025, 1, 1, tzinfo=UTC)
    )
    generate(config, root / "raw")
    validate_raw(root / "raw", root / "validated", root / "quarantine", root / "reports")
    return _build_both(root / "validated", root, spark)


@pytest.fixture(scope="module")
def uci(tmp_path_factory: pytest.TempPathFactory, uci_csv: Path, spark: SparkSession) -> Built:
    """The first clients of the UCI file (observed labels), built on both engines."""
    root = tmp_path_factory.mktemp("parity_uci")
    lines = uci_csv.read_text().splitlines(keepends=True)
    (root / "uci.csv").write_text("".join(lines[: UCI_CLIENTS + 1]))
    ingest_uci(root / "uci.csv", root / "raw", root / "quarantine_input")
    validate_raw(root / "raw", root / "validated", root / "quarantine", root / "reports")
    return _build_both(root / "validated", root, spark)


def _values_equal(left: object, right: object) -> bool:
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_values_equal, left, right))
    if isinstance(left, float) and isinstance(right, float):
        if math.isnan(left) or math.isnan(right):
            return math.isnan(left) and math.isnan(right)
        return math.isclose(left, right, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    return type(left) is type(right) and left == right


def _types(table: pa.Table) -> list[tuple[str, str]]:
    # Nullability aside: DuckDB marks columns NOT NULL where it can prove it, Spark never.
    return [(f.name, str(f.type).replace(" not null", "")) for f in table.schema]


def assert_same_table(duckdb_file: Path, spark_file: Path) -> None:
    expected, actual = pq.read_table(duckdb_file), pq.read_table(spark_file)
    assert _types(actual) == _types(expected)
    assert actual.num_rows == expected.num_rows > 0
    differences = []
    for name in expected.column_names:
        want, got = expected[name].to_pylist(), actual[name].to_pylist()
        rows = [
            i for i, (w, g) in enumerate(zip(want, got, strict=True)) if not _values_equal(w, g)
        ]
        differences += [f"{name} row {i}: duckdb {want[i]!r}, spark {got[i]!r}" for i in rows[:3]]
    assert not differences, "\n".join(differences)


@pytest.mark.parametrize("table", OUTPUTS)
def test_spark_builds_what_duckdb_builds_from_generated_data(generated: Built, table: str) -> None:
    assert_same_table(generated.duckdb / f"{table}.parquet", generated.spark / f"{table}.parquet")


@pytest.mark.parametrize("table", OUTPUTS)
def test_spark_builds_what_duckdb_builds_from_uci_data(uci: Built, table: str) -> None:
    assert_same_table(uci.duckdb / f"{table}.parquet", uci.spark / f"{table}.parquet")


def test_both_engines_write_the_same_manifest(generated: Built, uci: Built) -> None:
    for built in (generated, uci):
        duck = json.loads((built.duckdb / "_manifest.json").read_text())
        assert json.loads((built.spark / "_manifest.json").read_text()) == duck
    assert duck["label_source"] == "observed"


def test_a_spark_build_that_fails_midway_leaves_the_previous_tables(
    generated: Built, spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "features"
    shutil.copytree(generated.duckdb, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_write = spark_features._write_table
    written: list[str] = []

    def fail_on_the_third(session: SparkSession, name: str, staged: Path) -> int:
        if len(written) == 2:
            raise RuntimeError("executor lost")
        written.append(name)
        return real_write(session, name, staged)

    monkeypatch.setattr(spark_features, "_write_table", fail_on_the_third)
    validated = generated.duckdb.parent / "validated"
    with pytest.raises(RuntimeError, match="executor lost"):
        build_features_spark(validated, out, spark=spark)

    assert len(written) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features"], "staging left behind"
    # the shared session keeps no view of the failed build
    assert not [t.name for t in spark.catalog.listTables() if t.isTemporary]
