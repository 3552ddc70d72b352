"""Backups of a real home (alert store, audit log, console users, Feast profile, MLflow files):
what a backup holds, restoring it into an empty home, and refusing a corrupted, partial or
misplaced backup by item name without writing anything."""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from admin_app.sessions import SessionStore
from admin_app.user_store import UserStore
from collectwise.settings import Settings, load_settings
from ingestion.feast_store import EMBEDDED_PROFILE
from monitoring.disaster import (
    BackupRefused,
    RestoreConflictError,
    create_backup,
    restore_backup,
    verify_backup,
)
from monitoring.disaster.copies import CopyError
from monitoring.disaster.manifest import MANIFEST, sha256_of
from monitoring.monitor_db import MonitoringStore
from serving.audit import AuditLog
from tests.serving.conftest import key_entries
from tests.unit.test_audit import make_event

pytestmark = pytest.mark.integration

SQLITE_ITEMS = ("mlflow-backend", "platform-db", "audit-log", "console-users")


def home_settings(root: Path, **sections: Any) -> Settings:
    return Settings(home=root, **sections)


def build_home(root: Path) -> Settings:
    """A home with something in every item, written by the components that own them."""
    settings = home_settings(root, serving={"api_keys": key_entries()})
    with closing(sqlite3.connect(root / "mlflow.db")) as conn, conn:
        conn.execute("CREATE TABLE runs (run_uuid TEXT PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO runs VALUES ('r1', 'first run')")
    artifacts = root / "mlruns" / "1" / "r1" / "artifacts"
    artifacts.mkdir(parents=True)
    (artifacts / "model.bin").write_bytes(bytes(range(256)) * 64)
    settings.feature_store_yaml.write_text(yaml.safe_dump(EMBEDDED_PROFILE))
    (settings.paths.data_dir / "registry.db").write_bytes(b"\x0a\x05feast" * 100)
    store = MonitoringStore(settings.monitoring.database_url)
    store.finish_run(store.start_run("materialize"), "succeeded", 10, None)
    store.dispose()
    AuditLog(settings.paths.audit_db).append([make_event(i) for i in range(1, 6)])
    day = settings.paths.served_dir / "date=2026-03-01"
    day.mkdir(parents=True)
    pd.DataFrame({"account_id": ["A1", "A2"], "probability": [0.1, 0.7]}).to_parquet(
        day / "part-1.parquet"
    )
    UserStore(settings.paths.users_db).add("alice", "a-long-enough-password", "admin")
    SessionStore(settings.paths.users_db, timedelta(minutes=30)).start("alice")
    settings.paths.secret_key_file.write_text("k" * 64)
    settings.paths.secret_key_file.chmod(0o600)
    settings.scheduler.schedule_file.write_text("jobs: []\n")
    return settings


def rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a SQLite file, read without changing it."""
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}


def files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def only_backup(parent: Path) -> Path:
    (found,) = list(parent.iterdir())
    return found


@pytest.fixture
def home(tmp_path: Path) -> Settings:
    root = tmp_path / "home"
    (root / "data").mkdir(parents=True)
    return build_home(root)


@pytest.fixture
def backup(home: Settings, tmp_path: Path) -> Path:
    return create_backup(home, tmp_path / "backups").folder


def test_a_backup_holds_every_item_with_its_checksums(home: Settings, backup: Path) -> None:
    manifest = json.loads((backup / MANIFEST).read_text())
    names = [item["name"] for item in manifest["items"]]
    assert names == [
        "mlflow-backend", "mlflow-artifacts", "feast-profile", "feast-registry", "platform-db",
        "audit-log", "served-log", "api-keys", "console-users", "console-key", "schedules",
    ]  # fmt: skip
    for item in manifest["items"]:
        for entry in item["files"]:
            assert sha256_of(backup / entry["path"]) == entry["sha256"], entry["path"]
        assert item["size"] == sum(e["size"] for e in item["files"]) > 0
    assert manifest["collectwise_version"] and manifest["created_at"]
    assert manifest["absent"] == [] and manifest["excluded"] == {}
    # The settings travel masked; the key hashes are only in their own item.
    hashes = {e["sha256"] for e in json.loads(key_entries())}
    assert not any(h in json.dumps(manifest["settings"]) for h in hashes)
    stored_keys = json.loads((backup / "api-keys.json").read_text())
    assert {e["sha256"] for e in stored_keys} == hashes
    # Owner-only: the backup holds password hashes and the console's signing key.
    assert backup.stat().st_mode & 0o777 == 0o700
    assert (backup / "console-users.sqlite").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in backup.parent.iterdir()] == [backup.name]  # no partial left
    assert verify_backup(backup).items[0].name == "mlflow-backend"


def test_restore_into_an_empty_home_gives_the_same_content(
    home: Settings, backup: Path, tmp_path: Path
) -> None:
    other = home_settings(tmp_path / "other")
    done = restore_backup(other, backup)
    assert len(done.items) == 11
    for name in SQLITE_ITEMS:
        source = _sqlite_path(home, name)
        restored = _sqlite_path(other, name)
        assert rows(restored) == rows(source), name
    assert rows(other.paths.users_db)["sessions"]  # the live session came along
    assert files(other.home / "mlruns") == files(home.home / "mlruns")
    assert files(other.paths.served_dir) == files(home.paths.served_dir)
    for path in ("feature_store.yaml", "data/registry.db", "data/admin/secret_key",
                 "schedules.yaml"):  # fmt: skip
        assert (other.home / path).read_bytes() == (home.home / path).read_bytes(), path
    assert other.paths.secret_key_file.stat().st_mode & 0o777 == 0o600
    assert other.paths.users_db.stat().st_mode & 0o777 == 0o600
    assert AuditLog(other.paths.audit_db).verify().ok
    # The key hashes land in the new home's .env, where the settings read them.
    reloaded = load_settings(home=other.home)
    assert reloaded.serving.key_entries() == home.serving.key_entries()


def _sqlite_path(settings: Settings, name: str) -> Path:
    return {
        "mlflow-backend": settings.home / "mlflow.db",
        "platform-db": settings.paths.monitoring_db,
        "audit-log": settings.paths.audit_db,
        "console-users": settings.paths.users_db,
    }[name]


def test_a_corrupted_file_is_refused_by_name_and_nothing_is_restored(
    backup: Path, tmp_path: Path
) -> None:
    stored = backup / "audit-log.sqlite"
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(BackupRefused, match=r"1 bad item.*audit-log: audit-log\.sqlite does not"):
        verify_backup(backup)
    other = tmp_path / "other"
    with pytest.raises(BackupRefused, match="audit-log"):
        restore_backup(home_settings(other), backup)
    assert not other.exists()


def test_a_missing_item_is_refused_by_name(backup: Path, tmp_path: Path) -> None:
    (backup / "console-users.sqlite").unlink()
    (backup / "mlflow-artifacts" / "1" / "r1" / "artifacts" / "model.bin").unlink()
    with pytest.raises(BackupRefused) as refused:
        restore_backup(home_settings(tmp_path / "other"), backup)
    message = str(refused.value)
    assert "2 bad item(s)" in message
    assert "console-users: console-users.sqlite is missing" in message
    assert "mlflow-artifacts: mlflow-artifacts/1/r1/artifacts/model.bin is missing" in message
    assert not (tmp_path / "other").exists()


def test_a_folder_without_its_manifest_is_not_a_backup(backup: Path) -> None:
    (backup / MANIFEST).unlink()
    with pytest.raises(BackupRefused, match=f"not a backup, it has no {MANIFEST}"):
        verify_backup(backup)
    # A manifest that is not one is refused too.
    (backup / MANIFEST).write_text("{}")
    with pytest.raises(BackupRefused, match="unreadable manifest"):
        verify_backup(backup)


def test_a_manifest_naming_files_outside_the_backup_is_refused(backup: Path) -> None:
    manifest = json.loads((backup / MANIFEST).read_text())
    manifest["items"][0]["files"][0]["path"] = "../../etc/passwd"
    (backup / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BackupRefused, match="not a path inside the backup folder"):
        verify_backup(backup)


def test_the_backup_directory_points_at_its_backups(backup: Path) -> None:
    with pytest.raises(BackupRefused, match=f"it holds backups, the newest {backup}"):
        verify_backup(backup.parent)


def test_a_failed_backup_leaves_nothing_that_looks_whole(home: Settings, tmp_path: Path) -> None:
    # A platform database that is no longer a database: the backup stops there.
    home.paths.monitoring_db.write_bytes(b"not a database at all" * 100)
    parent = tmp_path / "backups"
    with pytest.raises(CopyError, match="platform-db: cannot read"):
        create_backup(home, parent)
    assert list(parent.iterdir()) == []


def test_restore_refuses_an_occupied_home_unless_forced(home: Settings, backup: Path) -> None:
    store = MonitoringStore(home.monitoring.database_url)
    store.start_run("after the backup")
    store.dispose()
    with pytest.raises(RestoreConflictError, match=r"already holds mlflow-backend \(") as refused:
        restore_backup(home, backup)
    assert "console-users" in str(refused.value) and "--force" in str(refused.value)
    restore_backup(home, backup, force=True)
    stages = [r[1] for r in rows(home.paths.monitoring_db)["pipeline_runs"]]
    assert stages == ["materialize"]


def test_a_backup_of_a_log_being_written_is_a_whole_chain(home: Settings, tmp_path: Path) -> None:
    """The backup API takes a consistent snapshot while a writer appends."""
    audit = AuditLog(home.paths.audit_db)
    stop = threading.Event()

    def write() -> None:
        i = 100
        while not stop.is_set():
            audit.append([make_event(i), make_event(i + 1)])
            i += 2

    writer = threading.Thread(target=write)
    writer.start()
    try:
        folder = create_backup(home, tmp_path / "backups").folder
    finally:
        stop.set()
        writer.join()
    other = home_settings(tmp_path / "other")
    restore_backup(other, folder)
    result = AuditLog(other.paths.audit_db).verify()
    assert result.ok, result.summary()
    assert result.rows >= 5


def test_an_item_kept_elsewhere_must_be_left_out_by_name(home: Settings, tmp_path: Path) -> None:
    remote = home_settings(
        home.home,
        serving={"api_keys": key_entries()},
        mlflow={"tracking_uri": "https://mlflow.example:5000", "artifact_location": "s3://b/cw"},
    )
    with pytest.raises(BackupRefused) as refused:
        create_backup(remote, tmp_path / "backups")
    message = str(refused.value)
    assert "mlflow-backend: tracking URI mlflow.example:5000" in message
    assert "--exclude mlflow-backend --exclude mlflow-artifacts" in message
    with pytest.raises(BackupRefused, match="--exclude nonsense: no such item"):
        create_backup(remote, tmp_path / "backups", ["nonsense"])
    done = create_backup(remote, tmp_path / "backups", ["mlflow-backend", "mlflow-artifacts"])
    assert "mlflow-backend" not in done.items and "audit-log" in done.items
    assert (
        done.excluded["mlflow-artifacts"]
        == "s3://b/cw: remote artifact storage keeps its own copies"
    )


def test_the_items_a_home_lacks_are_recorded_absent(tmp_path: Path) -> None:
    bare = home_settings(tmp_path / "bare")
    bare.home.mkdir()
    (bare.home / "mlflow.db").touch()  # only a (empty) MLflow backend
    done = create_backup(bare, tmp_path / "backups")
    assert done.items == ["mlflow-backend"]
    assert "audit-log" in done.absent and "api-keys" in done.absent
    restore_backup(home_settings(tmp_path / "again"), done.folder)
    assert (tmp_path / "again" / "mlflow.db").is_file()


def test_a_postgresql_platform_database_round_trips_through_pg_dump(
    tmp_path: Path, pg_url: str
) -> None:
    """pg_url: a fresh database of its own (tests/integration/conftest.py)."""
    root = tmp_path / "home"
    root.mkdir()
    settings = home_settings(root, monitoring={"db_url": pg_url})
    store = MonitoringStore(pg_url)
    store.finish_run(store.start_run("materialize"), "succeeded", 3, None)
    before = ([r.name for r in store.list_rules()], store.list_runs())
    done = create_backup(settings, tmp_path / "backups", ["mlflow-backend", "mlflow-artifacts"])
    assert done.items == ["platform-db"]
    assert (done.folder / "platform-db.pgdump").read_bytes()[:5] == b"PGDMP"
    store.start_run("after the backup")
    with pytest.raises(RestoreConflictError, match="platform-db"):
        restore_backup(settings, done.folder)
    restore_backup(settings, done.folder, force=True)
    after = ([r.name for r in store.list_rules()], store.list_runs())
    store.dispose()
    assert after == before


def test_a_scheduled_backup_keeps_only_the_newest(home: Settings, tmp_path: Path) -> None:
    parent = tmp_path / "backups"
    first = create_backup(home, parent).folder
    second = create_backup(home, parent).folder
    third = create_backup(home, parent, keep=2).folder
    assert sorted(parent.iterdir()) == [second, third]
    assert not first.exists() and second.name < third.name
