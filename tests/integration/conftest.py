"""A temporary Feast repo over generated data, on SQLite or on the real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql

from ingestion.feast_store import features_as_of
from ingestion.features import build_features
from ingestion.retrieval import ScratchRepo, scratch_repo
from ingestion.synthetic import SyntheticConfig, generate
from ingestion.validate import validate_raw

REDIS_URL = "127.0.0.1:6379"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class FeatureData:
    root: Path
    features_dir: Path
    as_of: datetime


@pytest.fixture(scope="session")
def feature_data(tmp_path_factory: pytest.TempPathFactory) -> FeatureData:
    """400 accounts over 12 months: generated, validated, feature tables built."""
    root = tmp_path_factory.mktemp("featuredata")
    config = SyntheticConfig(
        accounts=400, months=12, seed=7, start=datetime(2025, 1, 1, tzinfo=UTC)
    )
    generate(config, root / "raw")
    validate_raw(root / "raw", root / "validated", root / "quarantine", root / "reports")
    build_features(root / "validated", root / "features")
    return FeatureData(root, root / "features", features_as_of(root / "features"))


@pytest.fixture(params=["sqlite", "redis"])
def online_store(
    request: pytest.FixtureRequest, feature_data: FeatureData, tmp_path: Path
) -> Iterator[ScratchRepo]:
    """The feature repo applied to a fresh online store of each kind; Redis keys cleaned up."""
    project = f"cwtest_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        online: dict[str, object] = {"type": "sqlite", "path": str(tmp_path / "online.db")}
    else:
        online = {"type": "redis", "connection_string": REDIS_URL}
    with scratch_repo(feature_data.features_dir, project, online=online) as applied:
        yield applied
    if request.param == "redis":
        client = redis.Redis.from_url(f"redis://{REDIS_URL}")
        leftover = list(client.scan_iter(match=f"*{project}*"))
        assert not leftover, f"Redis keys of {project} survived teardown"


def _pg_admin(statement: sql.Composed) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards, so parallel runs never
    see each other's rows."""
    name = f"cw_monitoring_{uuid.uuid4().hex[:12]}"
    _pg_admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        _pg_admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A monitoring database URL on SQLite (in a folder that does not exist yet) and on the
    real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nested' / 'monitoring.db'}"
    return str(request.getfixturevalue("pg_url"))
