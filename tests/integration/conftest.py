"""A temporary Feast repo over generated data, on SQLite or on the real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from ingestion.feast_store import features_as_of
from ingestion.features import build_features
from ingestion.retrieval import ScratchRepo, scratch_repo
from ingestion.synthetic import SyntheticConfig, generate
from ingestion.validate import validate_raw

REDIS_URL = "127.0.0.1:6379"


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
