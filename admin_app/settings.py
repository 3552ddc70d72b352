"""Settings of the admin console, read once through the cached get_admin_settings().

Values come from the environment with the prefix COLLECTWISE_ADMIN_ (for example
COLLECTWISE_ADMIN_SECRET_KEY, COLLECTWISE_ADMIN_SESSION_MINUTES) or a git-ignored `.env`.
Paths default to places under the active data directory (feature_repo.paths.data_dir), so
the UCI profile gets its own users and secret key.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from feature_repo.paths import REPO_ROOT, data_dir


def _admin_dir() -> Path:
    return data_dir() / "admin"


def _users_db() -> Path:
    return _admin_dir() / "users.db"


def _secret_key_file() -> Path:
    return _admin_dir() / "secret_key"


def _batch_dir() -> Path:
    return _admin_dir() / "batch"


def _reports_dir() -> Path:
    # Where the monitoring jobs write (monitoring.settings.JobSettings.reports_dir).
    from monitoring.settings import get_job_settings  # noqa: PLC0415

    return get_job_settings().reports_dir


class AdminSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COLLECTWISE_ADMIN_", env_file=".env", extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8050, gt=0, lt=65536)
    # Flask signs the session cookie with it; when unset a random key is kept in
    # secret_key_file (git-ignored, under the data directory), so restarts keep sessions.
    secret_key: SecretStr | None = None
    secret_key_file: Path = Field(default_factory=_secret_key_file)
    users_db: Path = Field(default_factory=_users_db)
    # A session ends this long after the last request (sliding expiry).
    session_minutes: int = Field(default=30, ge=1, le=24 * 60)
    # Send the cookie over HTTPS only; turn on behind a TLS proxy.
    secure_cookies: bool = False
    # Failed logins from one client address within the window before that address is
    # throttled (429), whatever names it tries; nobody else is locked out by it.
    max_failed_logins_per_client: int = Field(default=10, ge=1)
    # Failed logins of one name within the window, from all addresses together, before the
    # name is locked for everyone: more than one client may fail (see throttle.py).
    max_failed_logins: int = Field(default=30, ge=2)
    lockout_minutes: int = Field(default=15, ge=1)
    # Reverse proxies in front of the console that append to X-Forwarded-For: the login
    # throttle reads the client address through this many of them (0: the socket's peer).
    trusted_proxies: int = Field(default=0, ge=0, le=5)
    reports_dir: Path = Field(default_factory=_reports_dir)
    batch_dir: Path = Field(default_factory=_batch_dir)
    # An upload larger than this (rows of account ids) is refused with a message.
    max_batch_rows: int = Field(default=100_000, ge=1)
    max_upload_mb: int = Field(default=50, ge=1)
    # Where `collectwise admin ensure-demo-user` writes the demo login (git-ignored .run/).
    demo_credentials_file: Path = REPO_ROOT / ".run" / "admin-demo.txt"
    # Online reads in the console wait longer than the scorer's: a person, not an SLA.
    online_timeout_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _one_client_cannot_lock_an_account(self) -> AdminSettings:
        if self.max_failed_logins <= self.max_failed_logins_per_client:
            raise ValueError(
                "max_failed_logins (per account) must exceed max_failed_logins_per_client, "
                "or one client alone could lock anyone's account"
            )
        return self

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(minutes=self.session_minutes)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"


@lru_cache(maxsize=1)
def get_admin_settings() -> AdminSettings:
    return AdminSettings()
