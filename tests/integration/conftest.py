"""A temporary Feast repo over generated data, on SQLite or on the real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import yaml
from feast import FeatureStore

from feature_repo.definitions import Definitions, build_definitions
from ingestion.features import build_features
from ingestion.store import features_as_of
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


def make_store(
    repo: Path, online: dict[str, object], project: str, registry: dict[str, object] | None = None
) -> FeatureStore:
    repo.mkdir(parents=True, exist_ok=True)
    config = {
        "project": project,
        "provider": "local",
        "registry": registry or str(repo / "registry.db"),
        "offline_store": {"type": "duckdb"},
        "online_store": online,
        "entity_key_serialization_version": 3,
    }
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(config))
    return FeatureStore(repo_path=str(repo))


@dataclass
class AppliedStore:
    store: FeatureStore
    definitions: Definitions
    project: str


def apply_store(
    repo: Path,
    features_dir: Path,
    online: dict[str, object],
    project: str,
    registry: dict[str, object] | None = None,
) -> AppliedStore:
    store = make_store(repo, online, project, registry)
    definitions = build_definitions(features_dir)
    store.apply(definitions.objects())
    return AppliedStore(store, definitions, project)


@pytest.fixture(params=["sqlite", "redis"])
def online_store(
    request: pytest.FixtureRequest, feature_data: FeatureData, tmp_path: Path
) -> Iterator[AppliedStore]:
    """The feature repo applied to a fresh online store of each kind; Redis keys cleaned up."""
    project = f"cwtest_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        online: dict[str, object] = {"type": "sqlite", "path": str(tmp_path / "online.db")}
    else:
        online = {"type": "redis", "connection_string": REDIS_URL}
    applied = apply_store(tmp_path / "repo", feature_data.features_dir, online, project)
    yield applied
    applied.store.teardown()
    if request.param == "redis":
        client = redis.Redis.from_url(f"redis://{REDIS_URL}")
        leftover = list(client.scan_iter(match=f"*{project}*"))
        assert not leftover, f"Redis keys of {project} survived teardown"
