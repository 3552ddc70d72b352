"""The disaster drill: build a home, score through the real scorer, back up, lose everything
but the raw data and the backup, restore, rebuild what derives from raw data, and the scorer
answers as before with an audit chain that still holds."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import set_key
from typer.testing import CliRunner

from admin_app.user_store import UserStore
from collectwise.cli import app as cli
from collectwise.settings import Settings, get_settings
from ingestion.feast_store import (
    EMBEDDED_PROFILE,
    apply_definitions,
    materialize_latest,
    open_store,
)
from ingestion.features import build_features
from ingestion.validate import validate_raw
from monitoring.disaster import create_backup, restore_backup
from monitoring.disaster.rebuild import rebuild_online, sample_accounts
from monitoring.monitor_db import MonitoringStore
from serving.audit import AuditLog
from serving.main import create_app
from tests.integration import conftest as integration
from tests.integration.conftest import FeatureData
from tests.serving.conftest import (
    SCORE_KEY,
    ScorerWorld,
    fit_model,
    key_entries,
    register_model,
    serve,
)
from training import registry
from training.dataset import build_training_set, read_dataset

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# The session fixture of the integration tier: its raw data is this home's raw data.
feature_data = integration.feature_data

ACCOUNTS = 12
AUTH = {"X-API-Key": SCORE_KEY}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project home of its own with every setting at its default (MLflow, the alert store
    and the Feast profile all under it)."""
    root = tmp_path / "home"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("COLLECTWISE_HOME", str(root))
    for name in ("COLLECTWISE_MLFLOW__TRACKING_URI", "COLLECTWISE_MLFLOW__ARTIFACT_LOCATION",
                 "COLLECTWISE_MONITORING__DB_URL", "COLLECTWISE_SERVING__API_KEYS",
                 "FEAST_FS_YAML_FILE_PATH"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    return root


def settings() -> Settings:
    """The home's settings as a fresh process would read them (.env included)."""
    get_settings.cache_clear()
    return get_settings()


def derive(s: Settings) -> None:
    """What is rebuilt from raw data: validated tables, feature tables, the definitions."""
    p = s.paths
    validate_raw(p.raw_dir, p.validated_dir, p.quarantine_dir, s.paths.reports_dir / "quality")
    build_features(p.validated_dir, p.features_dir)
    apply_definitions(open_store(s), p.features_dir)


def build(home: Path, data: FeatureData) -> Settings:
    shutil.copytree(data.root / "raw", home / "data" / "raw")
    # The scorer's key hashes where `collectwise keys new --env-file .env` puts them.
    set_key(home / ".env", "COLLECTWISE_SERVING__API_KEYS", key_entries())
    s = settings()
    s.feature_store_yaml.write_text(yaml.safe_dump(EMBEDDED_PROFILE))
    derive(s)
    store = open_store(s)
    materialize_latest(store, data.as_of)
    build_training_set(store, s.paths.features_dir, s.paths.validated_dir, home / "training")
    world = ScorerWorld(store, data, read_dataset(home / "training"), home)
    registry.promote(register_model(fit_model(world), auc=0.8).version)
    UserStore(s.paths.users_db).add("alice", "a-long-enough-password", "admin")
    MonitoringStore(s.monitoring.database_url).dispose()
    return s


def score(s: Settings, accounts: list[str], data: FeatureData) -> dict[str, tuple[Any, ...]]:
    """Each account scored once through the real scorer at the snapshot time: probability,
    band and model version."""
    body = {"as_of": data.as_of.isoformat()}
    with serve(create_app(s)) as client:
        answers = {
            a: client.post("/v1/score", json={"account_id": a, **body}, headers=AUTH)
            for a in accounts
        }
    assert all(r.status_code == 200 for r in answers.values()), [r.text for r in answers.values()]
    return {
        a: (r.json()["probability"], r.json()["band"], r.json()["model"]["version"])
        for a, r in answers.items()
    }


def lose_everything_but_raw_data_and(home: Path, backups: Path) -> None:
    for path in home.iterdir():
        if path not in (backups, home / "data"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in (home / "data").iterdir():
        if path.name != "raw":
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def test_disaster_drill(home: Path, feature_data: FeatureData) -> None:
    s = build(home, feature_data)
    drawn = sample_accounts(s.paths.features_dir, feature_data.as_of, ACCOUNTS, seed=5)
    accounts = list(drawn["account_id"])
    before = score(s, accounts, feature_data)
    assert len(before) == ACCOUNTS
    backup = create_backup(s, home / "backups").folder

    lose_everything_but_raw_data_and(home, home / "backups")
    assert sorted(p.name for p in home.iterdir()) == ["backups", "data"]
    assert [p.name for p in (home / "data").iterdir()] == ["raw"]

    restored = restore_backup(settings(), backup)
    assert "audit-log" in restored.items and "api-keys" in restored.items
    s = settings()
    derive(s)
    rebuilt = rebuild_online(s, sample=20)
    assert rebuilt.checked_accounts == 20

    after = score(s, accounts, feature_data)
    assert after == before
    audit = AuditLog(s.paths.audit_db)
    result = audit.verify()
    assert result.ok and result.rows == 2 * ACCOUNTS, result.summary()
    verified = CliRunner().invoke(cli, ["audit", "verify"])
    assert verified.exit_code == 0 and "audit chain holds" in verified.output
    assert [u.name for u in UserStore(s.paths.users_db).list()] == ["alice"]
    assert [e.name for e in s.serving.key_entries()] == ["platform", "ops", "slow"]
