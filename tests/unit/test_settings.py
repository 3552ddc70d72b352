"""The one settings object: paths derived in one place, sections from the environment,
secrets masked, misspelt variables reported, and no other module reading the environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import SecretStr

from collectwise.settings import MASK, Settings, masked, unknown_variables

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("feature_repo", "ingestion", "training", "serving", "monitoring", "admin_app",
            "collectwise")  # fmt: skip
# The one module that reads the environment, and the variables others may still read because
# they belong to another program: Prometheus' multiprocess folder, set for uvicorn's workers.
SETTINGS_MODULE = REPO / "collectwise" / "settings.py"
# Variables other programs own and read (prometheus_client, pyspark's Java launcher): a
# module may look at them to explain a failure, never to configure Collectwise.
FOREIGN_VARIABLES = {"PROMETHEUS_MULTIPROC_DIR", "JAVA_HOME"}


def test_every_path_derives_from_the_home_and_the_data_dir(tmp_path: Path) -> None:
    paths = Settings(home=tmp_path).paths
    assert paths.data_dir == tmp_path / "data"
    assert paths.served_dir == tmp_path / "data" / "serving" / "served"
    assert paths.audit_db == tmp_path / "data" / "serving" / "audit.db"
    assert paths.users_db == tmp_path / "data" / "admin" / "users.db"
    assert paths.monitoring_reports_dir == tmp_path / "reports" / "monitoring"
    moved = Settings(home=tmp_path, paths={"data_dir": "data_uci"}).paths  # type: ignore[arg-type]
    assert moved.served_dir == tmp_path / "data_uci" / "serving" / "served"
    assert moved.users_db == tmp_path / "data_uci" / "admin" / "users.db"


def test_the_environment_sets_sections_and_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLLECTWISE_HOME", str(tmp_path))
    monkeypatch.setenv("COLLECTWISE_PATHS__SERVED_DIR", "logs/served")
    monkeypatch.setenv("COLLECTWISE_SERVING__MAX_BATCH", "500")
    monkeypatch.setenv("COLLECTWISE_MONITORING__RETRAIN_ON", "critical, drift*")
    settings = Settings()
    assert settings.home == tmp_path.resolve()
    # A relative served_dir is read from the data directory, for scorer and jobs alike.
    assert settings.paths.served_dir == tmp_path.resolve() / "data" / "logs" / "served"
    assert settings.serving.max_batch == 500
    assert settings.monitoring.retrain_on == ["critical", "drift*"]
    assert settings.mlflow.tracking == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert settings.monitoring.database_url.endswith("data/monitoring/monitoring.db")


def test_the_feast_profile_follows_feasts_own_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEAST_FS_YAML_FILE_PATH", "feature_store.redis.yaml")
    assert Settings(home=tmp_path).feature_store_yaml == tmp_path / "feature_store.redis.yaml"
    chosen = Settings(home=tmp_path, feast={"yaml": "/etc/fs.yaml"})  # type: ignore[arg-type]
    assert chosen.feature_store_yaml == Path("/etc/fs.yaml")


def test_secrets_are_masked(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        mlflow={"tracking_uri": "postgresql+psycopg://ml:pw1@db:5432/mlflow"},  # type: ignore[arg-type]
        monitoring={"smtp_password": SecretStr("pw2"), "webhook_url": "https://u:pw3@hook/x"},  # type: ignore[arg-type]
        admin={"secret_key": SecretStr("pw4")},  # type: ignore[arg-type]
        serving={"api_keys": '[{"name": "p", "sha256": "' + "a" * 64 + '"}]'},  # type: ignore[arg-type]
    )
    shown = str(masked(settings))
    for secret in ("pw1", "pw2", "pw3", "pw4", "a" * 64):
        assert secret not in shown
    assert f"postgresql+psycopg://ml:{MASK}@db:5432/mlflow" in shown and "'name': 'p'" in shown


def test_a_variable_that_sets_nothing_is_named_with_its_likely_meaning() -> None:
    found = unknown_variables(
        ["COLLECTWISE_API_KEYS", "COLLECTWISE_ADMIN_SECRET_KEY", "COLLECTWISE_SERVING__MAX_BACH",
         "COLLECTWISE_SERVING__MAX_BATCH", "COLLECTWISE_HOME", "COLLECTWISE_LOG_LEVEL", "PATH"]
    )  # fmt: skip
    assert found == {
        "COLLECTWISE_API_KEYS": "COLLECTWISE_SERVING__API_KEYS",
        "COLLECTWISE_ADMIN_SECRET_KEY": "COLLECTWISE_ADMIN__SECRET_KEY",
        "COLLECTWISE_SERVING__MAX_BACH": None,
    }


def _environment_reads(path: Path) -> list[str]:
    """Lines of a module that use os.environ or os.getenv, except for foreign variables."""
    lines = path.read_text().splitlines()
    tree = ast.parse(path.read_text())
    # Setting a variable for child processes (uvicorn's workers) is not reading one.
    writes = {
        target.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Subscript)
    }
    found = []
    for node in ast.walk(tree):
        is_read = isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
        if is_read and node.lineno not in writes:
            line = lines[node.lineno - 1]
            if not any(variable in line for variable in FOREIGN_VARIABLES):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {line.strip()}")
    return found


def test_no_module_but_the_settings_reads_the_environment() -> None:
    modules = [p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))]
    reads = [
        where for path in modules if path != SETTINGS_MODULE for where in _environment_reads(path)
    ]
    assert reads == []
