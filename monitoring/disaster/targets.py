"""What a backup holds and where each part lives in a home, from the settings alone.

One table, read both ways: `backup create` reads each target from where the settings say it
lives, and `backup restore` writes it back to where the restoring home's settings say it
belongs. Only what cannot be rebuilt from the raw data is here; the validated tables, the
feature tables, the training set and the online store are rebuilt (validate, build-features,
apply, rebuild-online).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote, urlparse

import sqlalchemy as sa
import yaml

if TYPE_CHECKING:
    from collectwise.settings import Settings

log = logging.getLogger(__name__)

Kind = Literal["sqlite", "postgresql", "file", "tree", "api-keys"]

MLFLOW_BACKEND = "mlflow-backend"
MLFLOW_ARTIFACTS = "mlflow-artifacts"
FEAST_REGISTRY = "feast-registry"
FEAST_PROFILE = "feast-profile"
PLATFORM_DB = "platform-db"
AUDIT_LOG = "audit-log"
SERVED_LOG = "served-log"
API_KEYS = "api-keys"
CONSOLE_USERS = "console-users"
CONSOLE_KEY = "console-key"
SCHEDULES = "schedules"

# What each item holds, in the order a backup takes them: a database before the files it
# points to (the MLflow backend before its artifacts, which are written before the rows that
# name them), so every artifact the backed-up rows name is in the backup.
ITEMS: dict[str, str] = {
    MLFLOW_BACKEND: "MLflow runs, registered model versions and aliases",
    MLFLOW_ARTIFACTS: "MLflow artifacts: the model bundles, reports and cards",
    FEAST_PROFILE: "the active feature_store yaml",
    FEAST_REGISTRY: "the Feast registry (feature definitions as applied)",
    PLATFORM_DB: "the platform database: metrics, alert rules, alerts, pipeline runs",
    AUDIT_LOG: "the scorer's hash-chained audit log",
    SERVED_LOG: "the scorer's served-feature log, which monitoring reads",
    API_KEYS: "the scorer's API key entries (names, scopes, sha256 hashes)",
    CONSOLE_USERS: "the console's users, sessions and admin audit trail",
    CONSOLE_KEY: "the console's cookie-signing key",
    SCHEDULES: "the schedule file",
}


@dataclass(frozen=True)
class Target:
    """One item of a backup where it lives in a home: a file or folder path, a database URL,
    or (api-keys) the settings' key entries."""

    name: str
    kind: Kind
    location: str

    @property
    def path(self) -> Path:
        return Path(self.location)

    @property
    def shown(self) -> str:
        """The location as messages may show it: a URL's password masked."""
        if self.kind != "postgresql":
            return self.location
        return sa.engine.make_url(self.location).render_as_string(hide_password=True)


class Unsupported(Exception):  # noqa: N818 - reads as the condition
    """An item of this home that a backup cannot take (a remote store it does not reach)."""


@dataclass(frozen=True)
class Plan:
    """The targets of one home, and the items it cannot take with the reason for each."""

    targets: dict[str, Target]
    unsupported: dict[str, str]


def plan(settings: Settings, profile: Path | None = None) -> Plan:
    """Every item's target in the home of `settings`. `profile` is the feature_store yaml
    that names the Feast registry (default: the settings' own); a restore passes the backed-up
    copy, since that is the profile the restored home will have."""
    found: dict[str, Target] = {}
    unsupported: dict[str, str] = {}
    makers = {
        MLFLOW_BACKEND: lambda: _mlflow_backend(settings),
        MLFLOW_ARTIFACTS: lambda: _mlflow_artifacts(settings),
        FEAST_PROFILE: lambda: Target(FEAST_PROFILE, "file", str(settings.feature_store_yaml)),
        FEAST_REGISTRY: lambda: _feast_registry(settings, profile or settings.feature_store_yaml),
        PLATFORM_DB: lambda: _database(PLATFORM_DB, settings.monitoring.database_url),
        AUDIT_LOG: lambda: Target(AUDIT_LOG, "sqlite", str(settings.paths.audit_db)),
        SERVED_LOG: lambda: Target(SERVED_LOG, "tree", str(settings.paths.served_dir)),
        API_KEYS: lambda: _api_keys(settings),
        CONSOLE_USERS: lambda: Target(CONSOLE_USERS, "sqlite", str(settings.paths.users_db)),
        CONSOLE_KEY: lambda: Target(CONSOLE_KEY, "file", str(settings.paths.secret_key_file)),
        SCHEDULES: lambda: Target(SCHEDULES, "file", str(settings.scheduler.schedule_file)),
    }
    for name in ITEMS:
        try:
            found[name] = makers[name]()
        except Unsupported as exc:
            unsupported[name] = str(exc)
    return Plan(found, unsupported)


def _database(name: str, url: str) -> Target:
    """A SQLAlchemy URL as a target: SQLite by its file, PostgreSQL by its URL."""
    parsed = sa.engine.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Target(name, "sqlite", str(Path(parsed.database or "").resolve()))
    if backend == "postgresql":
        return Target(name, "postgresql", url)
    shown = parsed.render_as_string(hide_password=True)
    raise Unsupported(f"{shown}: only SQLite files and PostgreSQL databases are backed up")


def _mlflow_backend(settings: Settings) -> Target:
    uri = settings.mlflow.tracking
    scheme = urlparse(uri).scheme
    if scheme in ("", "file"):
        # MLflow's file store: runs and registry are a folder.
        return Target(MLFLOW_BACKEND, "tree", _local_path(uri))
    if scheme.startswith(("sqlite", "postgresql")):
        return _database(MLFLOW_BACKEND, uri)
    raise Unsupported(
        f"tracking URI {urlparse(uri).netloc or uri}: an MLflow tracking server keeps its own "
        "backend; back it up where it runs"
    )


def _mlflow_artifacts(settings: Settings) -> Target:
    location = settings.mlflow.artifact_location
    if location is None:
        raise Unsupported(
            "COLLECTWISE_MLFLOW__ARTIFACT_LOCATION is not set, so where MLflow keeps artifacts "
            "is not known here; set it"
        )
    if urlparse(location).scheme not in ("", "file"):
        raise Unsupported(f"{location}: remote artifact storage keeps its own copies")
    return Target(MLFLOW_ARTIFACTS, "tree", _local_path(location))


def _local_path(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def _feast_registry(settings: Settings, profile: Path) -> Target:
    """The registry the profile names (a file, or a SQL registry's database)."""
    if not profile.is_file():
        # Nothing to read it from: no profile, so no registry either (a fresh home).
        return Target(FEAST_REGISTRY, "file", str(settings.paths.data_dir / "registry.db"))
    registry_type, path = _registry_of(settings, profile)
    if registry_type == "sql":
        return _database(FEAST_REGISTRY, path)
    if registry_type != "file" or urlparse(path).scheme not in ("", "file"):
        raise Unsupported(f"{path}: a {registry_type} registry keeps its own copies")
    # Relative to the home, as Feast reads it (the store's repo_path is the home).
    return Target(FEAST_REGISTRY, "file", str(settings.home / _local_path(path)))


def _registry_of(settings: Settings, profile: Path) -> tuple[str, str]:
    """The registry's type and path. A profile that names them plainly is read as YAML;
    one with ${VARIABLES} goes through Feast's own loader, which expands them (and costs
    seconds to import)."""
    raw = yaml.safe_load(profile.read_text())
    registry = raw.get("registry") if isinstance(raw, dict) else None
    if isinstance(registry, str) and "$" not in registry:
        return "file", registry
    if isinstance(registry, dict) and "$" not in str(registry):
        return str(registry.get("registry_type", "file")), str(registry.get("path", ""))
    from feast.repo_config import load_repo_config  # noqa: PLC0415

    config = load_repo_config(settings.home, profile).registry
    return str(config.registry_type), str(config.path)


def _api_keys(settings: Settings) -> Target:
    # Where restored entries go: the settings' keys file, else the home's .env.
    keys_file = settings.serving.api_keys_file
    where = keys_file if keys_file is not None else settings.home / ".env"
    return Target(API_KEYS, "api-keys", str(where))
