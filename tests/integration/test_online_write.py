"""The direct materialisation write path (ingestion.online_write) against Feast's own.

The same snapshot is loaded both ways into two stores of the same kind; the stores must
then hold the same keys and bytes, row for row (SQLite) or hash for hash (Redis), and read
back the same vectors through get_online_features. A load killed midway and rerun must
leave the same store as a clean load.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis

from ingestion.feast_store import ONLINE_VIEWS, materialize_latest, online_feature_vectors
from ingestion.online_write import supports, write_views
from ingestion.retrieval import ScratchRepo, scratch_repo
from ingestion.snapshot_marker import holds_snapshot, marker_problems
from tests.integration.conftest import REDIS_URL, FeatureData

pytestmark = pytest.mark.integration

WINDOW = timedelta(days=45)
SECOND = timedelta(seconds=1)


@contextmanager
def two_stores(data: FeatureData, kind: str, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """Two applied repos over the same tables: SQLite files of one project name, or Redis
    projects of equal length (keys end with the project's name)."""
    tag = uuid.uuid4().hex[:10]
    projects = (f"cwfeast_{tag}", f"cwdirc_{tag}")
    with (
        scratch_repo(data.features_dir, projects[0], online=_online(kind, tmp_path / "a")) as a,
        scratch_repo(data.features_dir, projects[1], online=_online(kind, tmp_path / "b")) as b,
    ):
        yield a, b


def _online(kind: str, folder: Path) -> dict[str, object]:
    if kind == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        return {"type": "sqlite", "path": str(folder / "online.db")}
    return {"type": "redis", "connection_string": REDIS_URL}


def views_of(applied: ScratchRepo) -> list[Any]:
    return [applied.store.get_feature_view(name) for name in ONLINE_VIEWS]


def load_both(a: ScratchRepo, b: ScratchRepo, start: datetime, end: datetime) -> None:
    """Feast's materialize into a, the direct path into b; the same window."""
    a.store.materialize(start_date=start, end_date=end, feature_views=list(ONLINE_VIEWS))
    assert supports(b.store, views_of(b)) is None
    write_views(b.store, views_of(b), start, end)


def sqlite_rows(applied: ScratchRepo) -> dict[str, list[tuple[Any, ...]]]:
    """Every online table's rows with each value's SQLite storage class, without the
    project's name (the two stores' tables are named after different projects)."""
    path = applied.store.config.online_store.path
    with sqlite3.connect(path) as conn:
        tables = [
            name
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if name.startswith(applied.project)
        ]
        return {
            table.removeprefix(applied.project): conn.execute(
                "SELECT entity_key, feature_name, value, value_text, typeof(value_text), "
                f'event_ts, typeof(event_ts), created_ts, typeof(created_ts) FROM "{table}" '
                "ORDER BY entity_key, feature_name"
            ).fetchall()
            for table in tables
        }


def redis_hashes(applied: ScratchRepo) -> dict[bytes, dict[bytes, bytes]]:
    """Every hash of the project, keyed by the entity key without the project's name."""
    client = redis.Redis.from_url(f"redis://{REDIS_URL}")
    suffix = applied.project.encode()
    keys = list(client.scan_iter(match=b"*" + suffix, count=10_000))
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        hashes = pipe.execute()
    return {key.removesuffix(suffix): h for key, h in zip(keys, hashes, strict=True)}


def store_content(applied: ScratchRepo) -> Any:
    if applied.store.config.online_store.type == "sqlite":
        return sqlite_rows(applied)
    return redis_hashes(applied)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_direct_load_writes_feasts_bytes(
    kind: str, feature_data: FeatureData, tmp_path: Path
) -> None:
    """The newest snapshot's window, as `collectwise materialize` loads it."""
    with two_stores(feature_data, kind, tmp_path) as (a, b):
        load_both(a, b, feature_data.as_of - WINDOW, feature_data.as_of + SECOND)
        feast, direct = store_content(a), store_content(b)
        assert sum(map(len, feast.values())) > 4 * 300, "the load wrote too little to compare"
        assert direct == feast


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_direct_load_over_the_whole_history_keeps_the_newest_row(
    kind: str, feature_data: FeatureData, tmp_path: Path
) -> None:
    """A window over all twelve snapshots: the newest row per entity wins (event time,
    then recording time); then an older window over the loaded store, where Redis keeps
    the newer rows it holds and SQLite overwrites them, both as Feast does."""
    everything = datetime(2000, 1, 1, tzinfo=feature_data.as_of.tzinfo)
    with two_stores(feature_data, kind, tmp_path) as (a, b):
        load_both(a, b, everything, feature_data.as_of + SECOND)
        assert store_content(b) == store_content(a)
        older = feature_data.as_of - timedelta(days=75)
        load_both(a, b, older - WINDOW, older)
        assert store_content(b) == store_content(a)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_direct_load_reads_back_through_feast(
    kind: str, feature_data: FeatureData, tmp_path: Path
) -> None:
    with two_stores(feature_data, kind, tmp_path) as (a, b):
        materialize_latest(a.store, feature_data.as_of, direct=False)
        materialize_latest(b.store, feature_data.as_of)
        assert holds_snapshot(b.store, ONLINE_VIEWS, feature_data.as_of)
        ids = _some_accounts(feature_data, 60)
        feast = online_feature_vectors(a.store, ids, scoring_time=feature_data.as_of)
        direct = online_feature_vectors(b.store, ids, scoring_time=feature_data.as_of)
        assert feast["account_payment_velocity__debt_amount"].notna().sum() > 30
        pd.testing.assert_frame_equal(direct, feast)


def _some_accounts(data: FeatureData, n: int) -> list[str]:
    profile = pd.read_parquet(data.features_dir / "account_profile.parquet")
    latest = profile[profile["event_timestamp"] == data.as_of]
    return sorted(latest["account_id"].astype(str))[:n]


def test_direct_load_records_the_interval_in_the_registry(
    feature_data: FeatureData, tmp_path: Path
) -> None:
    """`feast materialize-incremental` starts where the last load ended: the direct path
    must record its interval as Feast does."""
    with two_stores(feature_data, "sqlite", tmp_path) as (a, b):
        start, end = feature_data.as_of - WINDOW, feature_data.as_of + SECOND
        load_both(a, b, start, end)
        for name in ONLINE_VIEWS:
            fv_a = a.store.get_feature_view(name)
            fv_b = b.store.get_feature_view(name)
            assert fv_b.most_recent_end_time == fv_a.most_recent_end_time
            assert fv_b.materialization_intervals == fv_a.materialization_intervals


def test_a_load_killed_midway_and_rerun_leaves_a_whole_store(
    feature_data: FeatureData, tmp_path: Path
) -> None:
    """SIGKILL during the direct write: the marker says the load died (not servable);
    the rerun leaves exactly what one clean load leaves."""
    with two_stores(feature_data, "sqlite", tmp_path) as (a, b):
        materialize_latest(a.store, feature_data.as_of, direct=False)
        killed = _run_killed_load(b, feature_data.as_of)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        assert not holds_snapshot(b.store, ONLINE_VIEWS, feature_data.as_of)
        problems = marker_problems(b.store, ONLINE_VIEWS, grace=timedelta(0))
        assert problems, "a killed load must not look whole"
        materialize_latest(b.store, feature_data.as_of)
        assert holds_snapshot(b.store, ONLINE_VIEWS, feature_data.as_of)
        canary = "__collectwise_canary__"
        assert _without(sqlite_rows(b), canary) == _without(sqlite_rows(a), canary)


def _without(rows: dict[str, list[tuple[Any, ...]]], entity: str) -> dict[str, list[Any]]:
    """The rows of every entity but the marker's canary (its rows carry wall-clock times)."""
    return {
        table: [row for row in table_rows if entity.encode() not in row[0]]
        for table, table_rows in rows.items()
    }


def _run_killed_load(applied: ScratchRepo, as_of: datetime) -> subprocess.CompletedProcess[str]:
    """materialize_latest in a child process that SIGKILLs itself after the second chunk
    of the second view was written (chunks of 50 entities)."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from datetime import datetime
        from feast import FeatureStore
        from ingestion import online_write
        from ingestion.feast_store import materialize_latest

        online_write.CHUNK_ROWS = 50
        written = []
        original = online_write._SqliteWriter.write

        def write(self, view, batch):
            result = original(self, view, batch)
            written.append(view.name)
            if len(set(written)) == 2 and written.count(view.name) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        online_write._SqliteWriter.write = write
        store = FeatureStore(repo_path={str(applied.repo)!r})
        materialize_latest(store, datetime.fromisoformat({as_of.isoformat()!r}))
        """
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
