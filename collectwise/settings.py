"""The one settings object of the platform, read through the cached get_settings().

Values come from the environment with the prefix COLLECTWISE_ and, for the sections, a double
underscore before the field (COLLECTWISE_SERVING__MAX_BATCH=500), or from the git-ignored
`.env` in the project home. Never instantiate Settings at module level.

The project home is COLLECTWISE_HOME, else the working directory: never where the installed
source files lie, so an installed wheel works from any project folder. Every path is derived
here, in PathSettings, from the home and the data directory; a relative path is read from the
home. One path, one variable: the scorer writes its served-feature log to
`paths.served_dir` and every monitoring job reads it from there.

Sections: paths, feast, ingestion (DuckDB's memory in validation and the feature build),
mlflow (tracking and the model registry), serving, monitoring (the jobs, alerting and
retraining), admin (the console) and scheduler (the schedule file and heartbeats).
`collectwise config show` prints the effective values with secrets masked.

This module is the bottom of the import graph with collectwise.errors, the only module of ours
it imports.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from collections.abc import Iterable
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from collectwise.errors import InvalidInputError

log = logging.getLogger(__name__)

HOME_ENV = "COLLECTWISE_HOME"
# Feast's own CLI picks its profile from this variable; the platform follows the same one so
# that `feast materialize` and `collectwise serve` in one shell see the same store.
FEAST_YAML_ENV = "FEAST_FS_YAML_FILE_PATH"

# explain: counterfactuals (POST /v1/counterfactual), which reveal more of the model than a score.
Scope = Literal["score", "admin", "explain"]
Severity = Literal["info", "warning", "critical"]
# The most accounts a batch may ever hold (the schema's bound); serving.max_batch may lower it.
MAX_BATCH_CEILING = 10_000
# The DVC stages that train, evaluate and register a challenger. Never a promotion: a
# retrained model waits as `challenger` until a person (or the gate, run by a person) decides.
DEFAULT_RETRAIN_COMMAND = ("dvc", "repro", "register")


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


class PathSettings(BaseModel):
    """Where everything lives. A relative data_dir, reports_dir, run_dir or dvc_lock is read
    from the home; a relative served_dir, audit_db or admin_dir from the data directory, so
    another data directory (the UCI profile's) brings its own. After validation every path is
    absolute (Settings resolves them)."""

    data_dir: Path = Path("data")
    reports_dir: Path = Path("reports")
    # Pid files, logs and the demo's login of background services (make demo / make stop).
    run_dir: Path = Path(".run")
    dvc_lock: Path = Path("dvc.lock")
    # The scorer's served-feature log, read by every monitoring job.
    served_dir: Path = Path("serving/served")
    # The scorer's hash-chained audit log of scored decisions.
    audit_db: Path = Path("serving/audit.db")
    # The console's users, sessions and admin audit trail; its signing key; batch uploads.
    admin_dir: Path = Path("admin")

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def validated_dir(self) -> Path:
        return self.data_dir / "validated"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def features_dir(self) -> Path:
        return self.data_dir / "features"

    @property
    def monitoring_reports_dir(self) -> Path:
        return self.reports_dir / "monitoring"

    @property
    def monitoring_db(self) -> Path:
        return self.data_dir / "monitoring" / "monitoring.db"

    @property
    def users_db(self) -> Path:
        """The console's users, sessions and admin audit trail."""
        return self.admin_dir / "users.db"

    @property
    def secret_key_file(self) -> Path:
        """The console's cookie-signing key when admin.secret_key is not set."""
        return self.admin_dir / "secret_key"

    @property
    def admin_batch_dir(self) -> Path:
        return self.admin_dir / "batch"

    @property
    def demo_credentials_file(self) -> Path:
        """Where `collectwise admin ensure-demo-user` writes the demo login."""
        return self.run_dir / "admin-demo.txt"

    def resolved(self, home: Path) -> PathSettings:
        """Every path absolute: home-relative ones from the home, the rest from the data
        directory."""
        data = _under(home, self.data_dir)
        return self.model_copy(
            update={
                "data_dir": data,
                "reports_dir": _under(home, self.reports_dir),
                "run_dir": _under(home, self.run_dir),
                "dvc_lock": _under(home, self.dvc_lock),
                "served_dir": _under(data, self.served_dir),
                "audit_db": _under(data, self.audit_db),
                "admin_dir": _under(data, self.admin_dir),
            }
        )


def _under(home: Path, path: Path) -> Path:
    return path if path.is_absolute() else home / path


class FeastSettings(BaseModel):
    """The Feast profile: a feature_store yaml, relative to the home. FEAST_FS_YAML_FILE_PATH
    (Feast's own variable) applies when COLLECTWISE_FEAST__YAML is not set."""

    yaml: Path | None = None


class IngestionSettings(BaseModel):
    """DuckDB's share of the machine in `collectwise validate` and `collectwise build-features`
    (each command's --memory-limit overrides it for one run)."""

    # DuckDB's own syntax ("4GB", "50%"); unset, DuckDB's default of 80% of RAM. Beyond it
    # DuckDB spills to disk beside the output instead of growing the process: a book bigger
    # than memory runs, more slowly.
    duckdb_memory_limit: str | None = Field(default=None, min_length=1)
    # Validation's duplicate and orphan checks take at most this many staged rows at a time
    # (hash buckets of the key), so a key's group fits under the cap however big the table.
    flag_bucket_rows: int = Field(default=40_000_000, ge=1)


class MlflowSettings(BaseModel):
    """Tracking and the model registry.

    Backends, chosen by environment and never by editing code:
    - embedded default: `sqlite:///<home>/mlflow.db` with artifacts in `<home>/mlruns`;
    - production: COLLECTWISE_MLFLOW__TRACKING_URI=postgresql+psycopg://user:pass@host/mlflow
      (MLflow creates its tables on first use) and, usually,
      COLLECTWISE_MLFLOW__ARTIFACT_LOCATION=s3://bucket/collectwise; an http(s):// URI of an
      MLflow tracking server works the same way (it then chooses where artifacts go);
    - DagsHub: COLLECTWISE_MLFLOW__DAGSHUB_REPO_OWNER and _NAME make configure_tracking() call
      dagshub.init(..., mlflow=True) (needs `pip install dagshub` and a token; not tested
      here, there is no network to DagsHub).
    """

    tracking_uri: str | None = None
    artifact_location: str | None = None
    experiment_name: str = "collection-risk"
    registered_model_name: str = "collection-risk"
    # Minimum gain in test ROC AUC (absolute, e.g. 0.005 = half a point) to replace the champion.
    promotion_margin: float = Field(default=0.005, ge=0.0, le=1.0)
    dagshub_repo_owner: str | None = None
    dagshub_repo_name: str | None = None
    # An http(s) tracking server that does not answer: MLflow's own default retries for
    # minutes (7 retries, backoff factor 2); the scorer keeps serving and retries on its own
    # schedule, and a command should say "the MLflow registry is unreachable" within seconds.
    # MLflow's variables (MLFLOW_HTTP_REQUEST_MAX_RETRIES / _TIMEOUT), when set, win.
    http_max_retries: int = Field(default=2, ge=0, le=10)
    http_timeout_seconds: int = Field(default=30, gt=0)

    def export_client_env(self) -> None:
        """Hand the HTTP retries and timeout to MLflow, which reads only its own variables
        (per request); MLflow's variables, when set, win."""
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(self.http_max_retries))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(self.http_timeout_seconds))

    @property
    def uses_dagshub(self) -> bool:
        return bool(self.dagshub_repo_owner and self.dagshub_repo_name)

    def resolved(self, home: Path) -> MlflowSettings:
        """The local SQLite backend and artifact folder under the home, unless set."""
        if self.tracking_uri is not None:
            return self
        return self.model_copy(
            update={
                "tracking_uri": f"sqlite:///{home / 'mlflow.db'}",
                "artifact_location": self.artifact_location or (home / "mlruns").as_uri(),
            }
        )

    @property
    def tracking(self) -> str:
        """The tracking URI (always set once Settings has resolved it)."""
        if self.tracking_uri is None:
            raise RuntimeError("MlflowSettings used before Settings resolved it")
        return self.tracking_uri


def _score_only() -> list[Scope]:
    return ["score"]


class ApiKeyEntry(BaseModel):
    """One caller: a name for logs and limits, the key's sha256, what it may do."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[Scope] = Field(default_factory=_score_only)
    # Requests per minute; None takes the service default.
    rate_per_minute: int | None = Field(default=None, ge=1)


class ServingSettings(BaseModel):
    """The scorer. API keys are configured as hashes only (`collectwise keys new` prints a key
    once and the entry to add); the plain keys never reach a file this service reads."""

    # JSON list of ApiKeyEntry, or a YAML file of them (api_keys_file wins when both are set).
    api_keys: str = "[]"
    api_keys_file: Path | None = None
    rate_per_minute: int = Field(default=6000, ge=1)

    # Online reads: the Feast SDK has no deadline of its own.
    online_timeout_seconds: float = Field(default=0.5, gt=0)
    # A batch is read in chunks of this many accounts, each chunk under the deadline above.
    online_chunk_rows: int = Field(default=250, ge=1)
    # Requests of one worker that read and score at once; the others queue for up to
    # admission_wait_seconds, then get 503 busy (serving.admission). The read deadline starts
    # once a request is admitted, so it measures the store, not the queue or the GIL.
    scoring_slots: int = Field(default=2, ge=1)
    admission_wait_seconds: float = Field(default=5.0, gt=0)
    # Readiness needs the store's snapshot marker (ingestion.snapshot_marker); turn off only
    # for a store loaded by other means than `collectwise materialize`.
    readiness_marker: bool = True
    # A materialisation pending for longer than this is taken for dead (not ready).
    materialize_grace_seconds: float = Field(default=1800.0, ge=0)
    # direct: feature views read through Feast's provider (online_read) and the on-demand
    # view's registered transformation called by the scorer (serving.provider_read, .ondemand);
    # sdk: everything through get_online_features (slower, same values).
    online_path: Literal["direct", "sdk"] = "direct"
    store_probe_seconds: float = Field(default=2.0, gt=0)
    retry_after_seconds: int = Field(default=5, ge=1)
    # Circuit breaker around online reads: this many failed reads in a row open it; while
    # open, requests get 503 at once without touching the store; after the reset time (or
    # as soon as the store probe succeeds) reads are tried again.
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_seconds: float = Field(default=10.0, gt=0)
    # Features older than their view's TTL: score and flag `degraded`, or refuse.
    stale_policy: Literal["degrade", "refuse"] = "degrade"

    # Champion / challenger: off, shadow (challenger scored and logged, not returned) or split
    # (a stable share of accounts, by hash of the id, get the challenger's answer).
    challenger_mode: Literal["off", "shadow", "split"] = "shadow"
    challenger_share: float = Field(default=0.1, ge=0.0, le=1.0)
    # How often the registry's aliases are checked for a promotion or rollback.
    model_refresh_seconds: float = Field(default=15.0, gt=0)

    # Reasons returned with a score: at most this many features that raised the risk, each
    # with its code from training/reason_codes.py (was reason_codes, default 3).
    max_reasons: int = Field(default=4, ge=0, le=10)
    # Bounds of one counterfactual search (POST /v1/counterfactual): rounds of single-feature
    # moves (each scores at most 8 features x 19 grid values) and features changed at once.
    counterfactual_rounds: int = Field(default=8, ge=1, le=20)
    counterfactual_changes: int = Field(default=3, ge=1, le=8)
    max_batch: int = Field(default=1000, ge=1, le=MAX_BATCH_CEILING)
    # Request bodies above this get 413 (a full batch of 1,000 is about 70 kB).
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Write the audit log and the served-feature log (paths.audit_db, paths.served_dir).
    record: bool = True
    # A score is answered only once its audit record is committed (concurrent requests share
    # one transaction: group commit). full: each commit is fsynced, so a record survives a
    # power loss; normal: it survives a crash of the scorer (SIGKILL), not of the machine.
    audit_sync: Literal["full", "normal"] = "full"
    # How long a request waits for its audit record before it gets 503 (audit_unavailable).
    audit_timeout_seconds: float = Field(default=5.0, gt=0)
    # How long a group's first request waits for others to join (0: only those waiting).
    audit_group_wait_seconds: float = Field(default=0.0, ge=0, le=0.1)
    # How often the served-feature log is written (one parquet part per flush, per worker).
    served_flush_seconds: float = Field(default=5.0, gt=0)
    # Where uvicorn workers write their metrics for /metrics to merge; `collectwise serve
    # --workers N` sets it for its workers (None: one process, its own registry).
    metrics_dir: Path | None = None

    @field_validator("api_keys")
    @classmethod
    def _json_list(cls, value: str) -> str:
        parsed = json.loads(value)
        if not isinstance(parsed, list):
            raise ValueError("COLLECTWISE_SERVING__API_KEYS must be a JSON list of key entries")
        return value

    def key_entries(self) -> list[ApiKeyEntry]:
        if self.api_keys_file is not None:
            raw = yaml.safe_load(self.api_keys_file.read_text()) or []
        else:
            raw = json.loads(self.api_keys)
        return [ApiKeyEntry.model_validate(item) for item in raw]


class MonitoringSettings(BaseModel):
    """The monitoring jobs (drift, performance, skew, fairness), alerting and retraining.

    Alerts live in `db_url`: SQLite under the data directory by default, or
    COLLECTWISE_MONITORING__DB_URL=postgresql+psycopg://user:pass@host:5432/collectwise. The
    SMTP password and any credentials inside db_url / webhook_url come only from the
    environment or `.env`, never from git. Lists (retrain_on, smtp_to) read as
    comma-separated text or a JSON list; retrain_command as a JSON list or a shell-quoted
    string, e.g. COLLECTWISE_MONITORING__RETRAIN_COMMAND="dvc repro register".
    """

    # Drift: PSI for numeric features, Jensen-Shannon distance for the categorical one; both
    # are distances, so a column drifts when its score reaches the threshold. 0.1 is the
    # usual "some shift" PSI cut (0.25 "major"); it is also Evidently's default for both.
    drift_num_method: str = "psi"
    drift_cat_method: str = "jensenshannon"
    drift_num_threshold: float = Field(default=0.1, gt=0)
    drift_cat_threshold: float = Field(default=0.1, gt=0)
    score_drift_threshold: float = Field(default=0.1, gt=0)
    # Evidently's dataset-level verdict: drift when at least this share of columns drifted.
    drift_share: float = Field(default=0.5, gt=0, le=1)
    # Scores of one account repeat within a window; one row per account compares populations
    # (as the training reference does), not traffic volumes.
    drift_dedupe_accounts: bool = True
    # Above this many current rows a seeded sample is compared; PSI needs far fewer.
    drift_max_rows: int = Field(default=50_000, ge=100)

    skew_rel_tolerance: float = Field(default=1e-9, ge=0)
    skew_sample: int = Field(default=500, ge=1)
    seed: int = 0

    fairness_min_ratio: float = Field(default=0.8, gt=0, le=1)
    fairness_min_group_size: int = Field(default=30, ge=1)

    # None: SQLite at paths.monitoring_db.
    db_url: str | None = None
    # Where a delivered alert points people; the console's alert page.
    console_url: str = "http://localhost:8050/alerts"
    # Alerts below this severity are only logged (and shown in the console), not pushed.
    notify_min_severity: Severity = "warning"

    webhook_url: str | None = None
    webhook_timeout: float = Field(default=5.0, gt=0)
    webhook_retries: int = Field(default=3, ge=0, le=10)
    # First wait between webhook attempts, in seconds; doubles per attempt up to 30 s.
    webhook_backoff: float = Field(default=1.0, ge=0)
    # Where an alert goes when its webhook or email delivery failed (monitoring.delivery):
    # file:///path appends a JSON line, http(s)://... posts the webhook body. None: a file
    # beside the monitoring database (data/monitoring/escalated-alerts.jsonl).
    fallback_url: str | None = None

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

    # Probation (monitoring.probation): for this long after its promotion a champion is
    # judged on its own requests and scores, and rolled back by the platform when it crosses
    # a limit. The error and latency limits are the serving alert rules'; PSI 0.25 is the
    # usual "major shift" cut (the drift alert warns from 0.2).
    probation_minutes: float = Field(default=60.0, gt=0)
    probation_max_error_rate: float = Field(default=0.01, ge=0, le=1)
    probation_max_p99_ms: float = Field(default=250.0, gt=0)
    probation_max_psi: float = Field(default=0.25, gt=0)
    # Below these counts a limit is not judged yet: a p99 or a PSI of a handful is noise.
    probation_min_requests: int = Field(default=50, ge=1)
    probation_min_scores: int = Field(default=100, ge=10)

    # Champion / challenger experiments (monitoring.experiment): intervals at 1 - alpha; the
    # sample size reported is what detects an AUC gain of min_auc_difference with this power.
    # Costs price the logged decisions per band, as training prices them (params.yaml).
    experiment_alpha: float = Field(default=0.05, gt=0, lt=1)
    experiment_power: float = Field(default=0.8, gt=0, lt=1)
    experiment_min_auc_difference: float = Field(default=0.02, gt=0, lt=1)
    experiment_costs: dict[Literal["fn", "fp", "tp", "tn"], float] = Field(
        default={"fn": 5.0, "fp": 1.0, "tp": 1.0, "tn": 0.0}
    )

    @field_validator("smtp_to", "retrain_on", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("fallback_url")
    @classmethod
    def _fallback_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("file:///", "http://", "https://")):
            raise ValueError("fallback_url must be a file:/// path or an http(s):// URL")
        return value

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

    @property
    def database_url(self) -> str:
        """The alert store's URL (always set once Settings has resolved it)."""
        if self.db_url is None:
            raise RuntimeError("MonitoringSettings used before Settings resolved it")
        return self.db_url


class SchedulerSettings(BaseModel):
    """`collectwise scheduler run`: the schedule file, its time zone, catching up, heartbeats.

    Its job store lives in the monitoring database (monitoring.db_url), beside the runs and
    heartbeats it writes.
    """

    # Relative to the home.
    schedule_file: Path = Path("schedules.yaml")
    # The IANA zone the cron expressions are read in (and the Kubernetes CronJobs' timeZone).
    timezone: str = "UTC"
    # A run missed while the scheduler was down is still run (once) if it is at most this late.
    misfire_grace_seconds: int = Field(default=3600, ge=1)
    # A job is overdue when it has not beaten for its cron interval plus this long.
    heartbeat_grace_seconds: int = Field(default=900, ge=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name, e.g. UTC)") from None
        return value


class AdminSettings(BaseModel):
    """The admin console (Dash). Its files live under paths.admin_dir."""

    host: str = "127.0.0.1"
    port: int = Field(default=8050, gt=0, lt=65536)
    # Flask signs the session cookie with it; when unset a random key is kept in
    # <admin_dir>/secret_key (git-ignored, under the data directory), so restarts keep sessions.
    secret_key: SecretStr | None = None
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
    # An upload larger than this (rows of account ids) is refused with a message.
    max_batch_rows: int = Field(default=100_000, ge=1)
    max_upload_mb: int = Field(default=50, ge=1)
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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COLLECTWISE_", env_nested_delimiter="__", extra="ignore"
    )

    home: Path = Field(default_factory=Path.cwd)
    log_level: str = "INFO"
    paths: PathSettings = Field(default_factory=PathSettings)
    feast: FeastSettings = Field(default_factory=FeastSettings)
    ingestion: IngestionSettings = Field(default_factory=IngestionSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        # Derived once, here, so every reader sees the same absolute paths and URIs.
        self.home = self.home.expanduser().resolve()
        self.paths = self.paths.resolved(self.home)
        self.mlflow = self.mlflow.resolved(self.home)
        if self.monitoring.db_url is None:
            self.monitoring.db_url = f"sqlite:///{self.paths.monitoring_db}"
        if self.monitoring.fallback_url is None:
            escalated = self.paths.monitoring_db.with_name("escalated-alerts.jsonl")
            self.monitoring.fallback_url = escalated.as_uri()
        self.scheduler.schedule_file = _under(self.home, self.scheduler.schedule_file)
        return self

    @property
    def feature_store_yaml(self) -> Path:
        """The Feast profile in use: feast.yaml, else FEAST_FS_YAML_FILE_PATH, else the
        home's feature_store.yaml."""
        chosen = self.feast.yaml or Path(os.environ.get(FEAST_YAML_ENV) or "feature_store.yaml")
        return _under(self.home, chosen)


MASK = "**********"
# Fields that may carry credentials inside a URL (user:password@host) or hold key hashes.
_URL_FIELDS = ("tracking_uri", "db_url", "webhook_url", "scorer_metrics_url", "fallback_url")


def masked(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, with every secret masked: SecretStr values, the
    password inside any URL, and the API keys' hashes (their names and scopes stay)."""
    data: dict[str, Any] = settings.model_dump(mode="json")
    for section in data.values():
        if not isinstance(section, dict):
            continue
        for name in _URL_FIELDS:
            if isinstance(section.get(name), str):
                section[name] = _without_password(section[name])
    keys = settings.serving.key_entries() if settings.serving.api_keys_file is None else []
    data["serving"]["api_keys"] = [
        {"name": k.name, "scopes": k.scopes, "sha256": MASK} for k in keys
    ]
    return data


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, host = rest.split("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:{MASK}@{host}"


# Variables of ours that are not settings: the home itself and the tests' shared-data folder.
_NOT_SETTINGS = frozenset({HOME_ENV, "COLLECTWISE_SHARED_DIR", "COLLECTWISE_TEST_ARTIFACTS"})


def unknown_variables(names: Iterable[str]) -> dict[str, str | None]:
    """COLLECTWISE_ variables that set nothing, each with the setting it probably meant (a
    name from before the settings had sections, e.g. COLLECTWISE_MAX_BATCH), or None."""
    sections = {
        name: model.model_fields
        for name, model in (("paths", PathSettings), ("feast", FeastSettings),
                            ("ingestion", IngestionSettings), ("mlflow", MlflowSettings),
                            ("serving", ServingSettings),
                            ("monitoring", MonitoringSettings), ("admin", AdminSettings),
                            ("scheduler", SchedulerSettings))
    }  # fmt: skip
    found: dict[str, str | None] = {}
    for name in names:
        key = name.upper()
        if not key.startswith("COLLECTWISE_") or key in _NOT_SETTINGS:
            continue
        rest = key.removeprefix("COLLECTWISE_").lower()
        section, sep, field = rest.partition("__")
        if (sep and field in sections.get(section, {})) or (
            not sep and rest in Settings.model_fields
        ):
            continue
        tail = field if sep else rest
        guesses = [
            f"COLLECTWISE_{s.upper()}__{f.upper()}"
            for s, fields in sections.items()
            for f in fields
            if tail in (f, f"{s}_{f}", f"admin_{f}", f"monitor_{f}", f"mlflow_{f}")
        ]
        found[key] = guesses[0] if guesses else None
    return found


def _warn_unknown(env_file: Path) -> None:
    names = list(os.environ)
    if env_file.is_file():
        names += list(dotenv_values(env_file))
    for name, meant in unknown_variables(names).items():
        hint = f"; did you mean {meant}?" if meant else ""
        log.warning("%s is not a Collectwise setting and is ignored%s", name, hint)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and the home's `.env` (overrides win), uncached.

    Tests and tools that need settings of their own build them here; the platform reads
    get_settings(). A COLLECTWISE_ variable that sets nothing is logged, with the name it
    probably meant, since a misspelt setting otherwise silently keeps its default.
    """
    home = Path(overrides.get("home") or os.environ.get(HOME_ENV) or Path.cwd())
    _warn_unknown(home / ".env")
    try:
        return Settings(_env_file=home / ".env", **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise SettingsError(_one_line(exc)) from None


class SettingsError(InvalidInputError):
    """A setting that does not validate: the message names each variable and its problem."""


def _one_line(error: ValidationError) -> str:
    # COLLECTWISE_SERVING__MAX_BATCH: ... rather than pydantic's multi-line report, and never
    # the value itself, which may be a secret.
    problems = [
        "COLLECTWISE_" + "__".join(str(part).upper() for part in e["loc"]) + f": {e['msg']}"
        for e in error.errors()
    ]
    return "invalid settings: " + "; ".join(problems)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
