"""Settings of the alerting side of monitoring: where alerts live, where they go, retraining.

Read through the cached get_monitoring_settings(); never instantiate at module level. Values
come from the environment (prefix COLLECTWISE_) or a git-ignored `.env`; the SMTP password
and any credentials inside db_url / webhook_url come only from there, never from git.

Backends, chosen by environment:
- embedded default: SQLite at <data dir>/monitoring/monitoring.db (data dir as in
  feature_repo.paths: COLLECTWISE_DATA_DIR or data/ beside the repo);
- production: COLLECTWISE_DB_URL=postgresql+psycopg://user:pass@host:5432/collectwise.

Lists (retrain_on, smtp_to) read as comma-separated text or a JSON list; retrain_command as
a JSON list or a shell-quoted string, e.g. COLLECTWISE_RETRAIN_COMMAND="dvc repro register".
"""

from __future__ import annotations

import json
import shlex
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from feature_repo.paths import REPO_ROOT, data_dir

Severity = Literal["info", "warning", "critical"]
# The DVC stages that train, evaluate and register a challenger. Never a promotion: a
# retrained model waits as `challenger` until a person (or the gate, run by a person) decides.
DEFAULT_RETRAIN_COMMAND = ("dvc", "repro", "register")


def default_db_url() -> str:
    return f"sqlite:///{data_dir() / 'monitoring' / 'monitoring.db'}"


def _as_list(value: Any) -> Any:
    """'a, b' or '["a", "b"]' from the environment; lists pass through."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return []
    if text.startswith("["):
        return json.loads(text)
    return [part.strip() for part in text.split(",") if part.strip()]


class MonitoringSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COLLECTWISE_", env_file=".env", extra="ignore")

    repo_root: Path = REPO_ROOT
    db_url: str = Field(default_factory=default_db_url)
    # Where a delivered alert points people; the console's alert page.
    console_url: str = "http://localhost:8050/alerts"
    # Alerts below this severity are only logged (and shown in the console), not pushed.
    notify_min_severity: Severity = "warning"

    webhook_url: str | None = None
    webhook_timeout: float = Field(default=5.0, gt=0)
    webhook_retries: int = Field(default=3, ge=0, le=10)
    # First wait between webhook attempts, in seconds; doubles per attempt up to 30 s.
    webhook_backoff: float = Field(default=1.0, ge=0)

    smtp_host: str | None = None
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str | None = None
    smtp_to: Annotated[list[str], NoDecode] = Field(default_factory=list)
    smtp_starttls: bool = True
    smtp_timeout: float = Field(default=10.0, gt=0)

    # Severities ("critical") or rule names / globs ("performance*") whose new alerts start
    # retraining; empty = retraining is never triggered by an alert.
    retrain_on: Annotated[list[str], NoDecode] = Field(default_factory=list)
    retrain_command: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_RETRAIN_COMMAND)
    )
    retrain_timeout: float = Field(default=6 * 3600.0, gt=0)

    # The scorer's Prometheus endpoint for the health page, e.g. http://127.0.0.1:8000/metrics.
    scorer_metrics_url: str | None = None

    @field_validator("smtp_to", "retrain_on", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("retrain_command", mode="before")
    @classmethod
    def _split_command(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip().startswith("["):
            return shlex.split(value)
        return _as_list(value)

    @field_validator("retrain_command")
    @classmethod
    def _never_promote(cls, value: list[str]) -> list[str]:
        # Retraining registers a challenger; promotion is a human decision (DESIGN.md).
        if not value:
            raise ValueError("retrain_command is empty")
        if any("promote" in part for part in value):
            raise ValueError("retrain_command must not promote: it may only register")
        return value

    @property
    def smtp_configured(self) -> bool:
        return bool(self.smtp_host and self.smtp_from and self.smtp_to)


@lru_cache(maxsize=1)
def get_monitoring_settings() -> MonitoringSettings:
    return MonitoringSettings()
