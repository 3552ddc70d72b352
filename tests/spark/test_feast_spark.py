"""Feast on Spark (feature_store.spark.yaml): the same definitions over the same parquet
tables, read by Feast's Spark offline store and materialised by its Spark engine, give what
the DuckDB profile gives: point-in-time vectors of collection_risk_v1 (created timestamps
respected), online values, the training set and its fingerprints. Both stores are opened
from copies of the repo's own profiles with the registry and online store in a temp folder;
Feast runs on the session `spark` fixture, so one JVM serves every Spark test."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
import yaml
from feast import FeatureStore, FileSource
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from typer.testing import CliRunner

from collectwise.cli import app
from collectwise.settings import Settings
from feature_repo.feature_services import COLLECTION_RISK_V1
from ingestion import retrieval
from ingestion.feast_store import (
    ONLINE_VIEWS,
    apply_definitions,
    features_as_of,
    materialize_latest,
    online_feature_vectors,
    open_store,
)
from ingestion.features import build_features
from ingestion.spark_features import SPARK_CONF
from ingestion.synthetic import SyntheticConfig, generate
from ingestion.validate import validate_raw
from training.dataset import build_training_set, read_dataset, read_summary
from training.fingerprint import definitions_fingerprint, resolved_definitions

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = [pytest.mark.spark, pytest.mark.slow]

TOLERANCE = 1e-12
SPARK_PROFILE = "feature_store.spark.yaml"
DUCKDB_PROFILE = "feature_store.yaml"
LABEL = "account_default_labels__default_30d"
UNKNOWN_ACCOUNT = "A99999999"


@dataclass(frozen=True)
class Data:
    root: Path
    features: Path
    validated: Path
    oracle: Path
    as_of: datetime


@dataclass(frozen=True)
class Profile:
    home: Path
    store: FeatureStore


@dataclass(frozen=True)
class Stores:
    duckdb: Profile
    spark: Profile


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    """120 generated accounts over 8 months, validated, feature tables built (DuckDB)."""
    root = tmp_path_factory.mktemp("feast_spark")
    config = SyntheticConfig(accounts=120, months=8, seed=5, start=datetime(2025, 1, 1, tzinfo=UTC))
    generate(config, root / "raw")
    validate_raw(root / "raw", root / "validated", root / "quarantine", root / "reports")
    build_features(root / "validated", root / "features")
    return Data(
        root,
        root / "features",
        root / "validated",
        root / "raw" / "_oracle",
        features_as_of(root / "features"),
    )


def copy_profile(repo_root: Path, name: str, home: Path) -> Path:
    """The repo's profile `name` in home/name, with its registry and SQLite file in home and
    everything else (stores, engine, Spark settings, staging) as the repo has it."""
    profile = yaml.safe_load((repo_root / name).read_text())
    profile["registry"] = str(home / "registry.db")
    profile["online_store"]["path"] = str(home / "online.db")
    home.mkdir(parents=True, exist_ok=True)
    (home / name).write_text(yaml.safe_dump(profile))
    return home / name


def _applied(repo_root: Path, name: str, home: Path, features: Path) -> Profile:
    yaml_file = copy_profile(repo_root, name, home)
    store = open_store(Settings(home=home), yaml_file)
    apply_definitions(store, features)
    return Profile(home, store)


@pytest.fixture(scope="module")
def stores(data: Data, spark: SparkSession, repo_root: Path) -> Iterator[Stores]:
    """The definitions applied through each profile, each with a registry and online store of
    its own. `spark` is running first, so Feast's Spark store and engine use that session.

    Feast registers temporary views in the session (entity frames, sources, joins) and sets
    session options, and undoes neither; the session is shared, so it is left as found."""
    views = _temporary_views(spark)
    conf = spark.conf.getAll
    yield Stores(
        duckdb=_applied(repo_root, DUCKDB_PROFILE, data.root / "duckdb", data.features),
        spark=_applied(repo_root, SPARK_PROFILE, data.root / "spark", data.features),
    )
    for name in _temporary_views(spark) - views:
        spark.catalog.dropTempView(name)
    for key, value in spark.conf.getAll.items():
        if key not in conf:
            spark.conf.unset(key)
        elif value != conf[key]:
            spark.conf.set(key, conf[key])


def _temporary_views(spark: SparkSession) -> set[str]:
    return {table.name for table in spark.catalog.listTables() if table.isTemporary}


# --------------------------------------------------------------------------- comparison


def _same(left: Any, right: Any) -> bool:
    """Floats within TOLERANCE (NaN equals NaN), arrays element by element, anything else
    (nulls included) of the same type and equal."""
    arrays = (np.ndarray, list)
    if isinstance(left, arrays) or isinstance(right, arrays):
        return (
            isinstance(left, arrays)
            and isinstance(right, arrays)
            and len(left) == len(right)
            and all(map(_same, left, right))
        )
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        if math.isnan(left) or math.isnan(right):
            return math.isnan(left) and math.isnan(right)
        return math.isclose(left, right, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    if left is pd.NaT:
        return right is pd.NaT
    return bool(left == right)


def assert_same_frame(expected: pd.DataFrame, actual: pd.DataFrame) -> None:
    assert list(actual.columns) == list(expected.columns)
    assert [str(t) for t in actual.dtypes] == [str(t) for t in expected.dtypes]
    assert len(actual) == len(expected) > 0
    differences: list[str] = []
    for name in expected.columns:
        want, got = expected[name].tolist(), actual[name].tolist()
        rows = [i for i, (w, g) in enumerate(zip(want, got, strict=True)) if not _same(w, g)]
        differences += [f"{name} row {i}: duckdb {want[i]!r}, spark {got[i]!r}" for i in rows[:3]]
    assert not differences, "\n".join(differences)


def _entity_rows(features: Path, as_of: datetime) -> pd.DataFrame:
    """The training set's rows (every matured label) and probes of the edges: between two
    snapshots, before the first one, past the TTL after the last one, an unknown account."""
    labels = pd.read_parquet(features / "labels.parquet")
    probes = labels.drop_duplicates("account_id").head(25)
    n = len(probes)
    first = pd.Timestamp(labels["event_timestamp"].min())
    times = [
        labels["event_timestamp"],
        probes["event_timestamp"] + pd.Timedelta(days=10),
        pd.Series([first - pd.Timedelta(days=1)] * n),
        pd.Series([pd.Timestamp(as_of) + pd.Timedelta(days=60)] * n),
    ]
    accounts = [labels["account_id"], *[probes["account_id"]] * 3]
    customers = [labels["customer_id"], *[probes["customer_id"]] * 3]
    return retrieval.entity_rows(
        [*pd.concat(accounts), UNKNOWN_ACCOUNT],
        [*pd.concat(customers), "C99999999"],
        [*pd.concat(times), pd.Timestamp(as_of)],
    )


# --------------------------------------------------------------------------- the profile


def test_the_spark_profile_reads_sparksources_of_the_same_tables(stores: Stores) -> None:
    spark, duckdb = stores.spark.store, stores.duckdb.store
    assert spark.config.offline_store.type == "spark"
    assert spark.config.batch_engine.type == "spark.engine"
    assert spark.config.online_store.type == duckdb.config.online_store.type == "sqlite"
    # The profile's relative staging folder is read from the home (Feast takes only absolute
    # paths), so retrieval results go through parquet there instead of the Spark driver.
    assert spark.config.offline_store.staging_location == str(
        stores.spark.home / "data" / "spark-staging"
    )
    # The engine's settings as the feature build has them.
    spark_conf = spark.config.offline_store.spark_conf
    for key in ("spark.sql.session.timeZone", "spark.sql.ansi.enabled"):
        assert spark_conf[key] == SPARK_CONF[key]
    assert spark.config.batch_engine.spark_conf == spark_conf
    for name in (*ONLINE_VIEWS, "account_default_labels"):
        on_spark = spark.get_feature_view(name).batch_source
        on_duckdb = duckdb.get_feature_view(name).batch_source
        assert isinstance(on_spark, SparkSource) and on_spark.file_format == "parquet"
        assert isinstance(on_duckdb, FileSource)
        assert on_spark.path == on_duckdb.path
        assert on_spark.created_timestamp_column == on_duckdb.created_timestamp_column


def test_the_definitions_fingerprint_is_the_same_on_both_profiles(stores: Stores) -> None:
    # The sources differ in kind (above) and the fingerprint does not see it: a model trained
    # on one profile serves on the other.
    spark, duckdb = stores.spark.store, stores.duckdb.store
    assert resolved_definitions(spark, COLLECTION_RISK_V1) == resolved_definitions(
        duckdb, COLLECTION_RISK_V1
    )
    assert definitions_fingerprint(spark, COLLECTION_RISK_V1) == definitions_fingerprint(
        duckdb, COLLECTION_RISK_V1
    )


# --------------------------------------------------------------------------- offline


def test_historical_features_equal_duckdbs(stores: Stores, data: Data) -> None:
    entities = _entity_rows(data.features, data.as_of)
    expected = retrieval.point_in_time_vectors(stores.duckdb.store, entities, COLLECTION_RISK_V1)
    actual = retrieval.point_in_time_vectors(stores.spark.store, entities, COLLECTION_RISK_V1)

    assert_same_frame(expected, actual)
    # The probes reach the edges, so nulls are compared too: arrays, integers, timestamps.
    history = expected["account_payment_velocity__payment_history"]
    assert history.isna().sum() > 50 and history.notna().sum() > len(history) // 2
    assert expected["account_payment_velocity__overdue_since"].isna().any()
    assert expected["account_contact_behavior__contacts_90d"].isna().any()
    # The result came through the staging folder, not through the Spark driver.
    assert list((stores.spark.home / "data" / "spark-staging").rglob("*.parquet"))


def test_created_timestamps_hide_unrecorded_labels_on_both(stores: Stores, data: Data) -> None:
    # A label is recorded a month or more after its snapshot. Each account's first label,
    # asked for as of its own snapshot, must not be seen (it has the event time asked for,
    # only its created time is later); 90 days later it must, on either store.
    labels = pd.read_parquet(data.features / "labels.parquet")
    first = labels.sort_values("event_timestamp").drop_duplicates("account_id").head(40)
    at = first["event_timestamp"]
    assert (first["created_timestamp"] > at).all()
    entities = retrieval.entity_rows(
        pd.concat([first["account_id"]] * 2),
        pd.concat([first["customer_id"]] * 2),
        pd.concat([at, at + pd.Timedelta(days=90)]),
    )
    features = [LABEL.replace("__", ":")]
    expected = retrieval.point_in_time_vectors(stores.duckdb.store, entities, features)
    actual = retrieval.point_in_time_vectors(stores.spark.store, entities, features)

    assert_same_frame(expected, actual)
    assert expected[LABEL].head(len(first)).isna().all()
    assert expected[LABEL].tail(len(first)).notna().sum() > len(first) // 2


def test_build_dataset_on_the_spark_profile_yields_the_same_training_set(
    stores: Stores, data: Data, tmp_path: Path
) -> None:
    build_training_set(
        stores.duckdb.store,
        data.features,
        data.validated,
        tmp_path / "duckdb",
        oracle_dir=data.oracle,
    )
    # The command itself, choosing the Spark profile the documented way.
    result = CliRunner().invoke(
        app,
        ["train", "build-dataset", "--features", str(data.features), "--raw",
         str(data.validated), "--oracle", str(data.oracle), "--out", str(tmp_path / "spark")],
        env={"COLLECTWISE_HOME": str(stores.spark.home), "FEAST_FS_YAML_FILE_PATH": SPARK_PROFILE},
    )  # fmt: skip
    assert result.exit_code == 0, result.output

    assert_same_frame(read_dataset(tmp_path / "duckdb"), read_dataset(tmp_path / "spark"))
    on_duckdb, on_spark = read_summary(tmp_path / "duckdb"), read_summary(tmp_path / "spark")
    assert on_spark.has_oracle and on_spark.rows == on_duckdb.rows > 0
    assert on_spark.definitions_fingerprint == on_duckdb.definitions_fingerprint
    assert on_spark.dataset_fingerprint == on_duckdb.dataset_fingerprint


# --------------------------------------------------------------------------- online


def test_the_spark_engine_materialises_what_the_duckdb_profile_loads(
    stores: Stores, data: Data
) -> None:
    # direct=False: Feast's own path, i.e. the profile's batch engine (spark.engine), rather
    # than the platform's direct writer, which would load the same parquet without Spark.
    materialize_latest(stores.spark.store, data.as_of, direct=False)
    materialize_latest(stores.duckdb.store, data.as_of)

    profiles = pd.read_parquet(data.features / "account_profile.parquet")
    accounts: Sequence[str] = [*sorted(profiles["account_id"].unique()), UNKNOWN_ACCOUNT]
    expected = online_feature_vectors(stores.duckdb.store, accounts, data.as_of)
    actual = online_feature_vectors(stores.spark.store, accounts, data.as_of)

    assert_same_frame(expected, actual)
    found = expected["account_payment_velocity__debt_amount"].notna()
    assert found.sum() > len(accounts) // 2 and not found.iloc[-1]


# --------------------------------------------------------------------------- feast apply


def test_feast_apply_from_the_repo_root_registers_sparksources(
    stores: Stores, data: Data, repo_root: Path, tmp_path: Path
) -> None:
    # Feast's own CLI in its own process (and JVM), from the repo root, the profile chosen
    # by FEAST_FS_YAML_FILE_PATH: feature_repo/repo.py must build SparkSources over the
    # home's tables, which Feast validates by reading them with Spark.
    home = tmp_path / "home"
    shutil.copytree(data.features, home / "data" / "features")
    profile = copy_profile(repo_root, SPARK_PROFILE, home)
    env = {**os.environ, "COLLECTWISE_HOME": str(home), "FEAST_FS_YAML_FILE_PATH": str(profile)}
    feast = Path(sys.executable).with_name("feast")
    result = subprocess.run(
        [str(feast), "apply"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    applied = FeatureStore(repo_path=str(home), fs_yaml_file=profile)
    source = applied.get_feature_view("account_payment_velocity").batch_source
    assert isinstance(source, SparkSource)
    assert source.path == str(home / "data" / "features" / "account_payment_velocity.parquet")
    assert definitions_fingerprint(applied, COLLECTION_RISK_V1) == definitions_fingerprint(
        stores.duckdb.store, COLLECTION_RISK_V1
    )


# --------------------------------------------------------------------------- faults


def test_the_spark_profile_without_java_says_what_to_install(
    data: Data, repo_root: Path, tmp_path: Path
) -> None:
    # The profile's commands check for pyspark and Java before Feast starts a JVM (which
    # would fail with a gateway error naming neither); pyspark missing takes the same check,
    # whose wording tests/spark/test_spark_faults.py covers.
    copy_profile(repo_root, SPARK_PROFILE, tmp_path / "home")
    command = [sys.executable, "-c", "from collectwise.cli import main; main()"]
    args = ["train", "build-dataset", "--features", str(data.features), "--out", str(tmp_path)]
    result = subprocess.run(
        [*command, *args],
        env={
            **os.environ,
            "COLLECTWISE_HOME": str(tmp_path / "home"),
            "FEAST_FS_YAML_FILE_PATH": SPARK_PROFILE,
            # A PATH with python's own directory only, and a JAVA_HOME that holds no java.
            "PATH": str(Path(sys.executable).parent),
            "JAVA_HOME": str(tmp_path / "nojava"),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, result.stderr
    assert "SparkUnavailableError" in errors[0] and "openjdk-17-jre-headless" in errors[0]
