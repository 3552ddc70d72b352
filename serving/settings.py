"""Scorer settings, read once through the cached get_serving_settings().

Values come from the environment (prefix COLLECTWISE_) or a git-ignored `.env`. API keys are
configured as hashes only (`collectwise keys new` prints a key once and the entry to add);
the plain keys never reach a file this service reads.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Scope = Literal["score", "admin"]
# The most accounts a batch may ever hold (the schema's bound); max_batch may lower it.
MAX_BATCH_CEILING = 10_000


def _score_only() -> list[Scope]:
    return ["score"]


class ApiKeyEntry(BaseModel):
    """One caller: a name for logs and limits, the key's sha256, what it may do."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[Scope] = Field(default_factory=_score_only)
    # Requests per minute; None takes the service default.
    rate_per_minute: int | None = Field(default=None, ge=1)


class ServingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COLLECTWISE_", env_file=".env", extra="ignore")

    # JSON list of ApiKeyEntry, or a YAML file of them (api_keys_file wins when both are set).
    api_keys: str = "[]"
    api_keys_file: Path | None = None
    rate_per_minute: int = Field(default=6000, ge=1)

    # Online reads: the Feast SDK has no deadline of its own.
    online_timeout_seconds: float = Field(default=0.5, gt=0)
    # A batch is read in chunks of this many accounts, each chunk under the deadline above.
    online_chunk_rows: int = Field(default=250, ge=1)
    # Readiness needs the store's snapshot marker (ingestion.snapshot_marker); turn off only
    # for a store loaded by other means than `collectwise materialize`.
    readiness_marker: bool = True
    # A materialisation pending for longer than this is taken for dead (not ready).
    materialize_grace_seconds: float = Field(default=1800.0, ge=0)
    # direct: feature views read through Feast's provider (online_read) and the on-demand
    # view's registered transformation called by the scorer (serving.direct, .ondemand);
    # sdk: everything through get_online_features (slower, same values).
    online_path: Literal["direct", "sdk"] = "direct"
    store_probe_seconds: float = Field(default=2.0, gt=0)
    retry_after_seconds: int = Field(default=5, ge=1)
    # Features older than their view's TTL: score and flag `degraded`, or refuse.
    stale_policy: Literal["degrade", "refuse"] = "degrade"

    # Champion / challenger: off, shadow (challenger scored and logged, not returned) or split
    # (a stable share of accounts, by hash of the id, get the challenger's answer).
    challenger_mode: Literal["off", "shadow", "split"] = "shadow"
    challenger_share: float = Field(default=0.1, ge=0.0, le=1.0)
    # How often the registry's aliases are checked for a promotion or rollback.
    model_refresh_seconds: float = Field(default=15.0, gt=0)

    reason_codes: int = Field(default=3, ge=0, le=10)
    max_batch: int = Field(default=1000, ge=1, le=MAX_BATCH_CEILING)
    # Request bodies above this get 413 (a full batch of 1,000 is about 70 kB).
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    audit_db: Path | None = None
    served_dir: Path | None = None
    record: bool = True

    @field_validator("api_keys")
    @classmethod
    def _json_list(cls, value: str) -> str:
        parsed = json.loads(value)
        if not isinstance(parsed, list):
            raise ValueError("COLLECTWISE_API_KEYS must be a JSON list of key entries")
        return value

    def key_entries(self) -> list[ApiKeyEntry]:
        if self.api_keys_file is not None:
            raw = yaml.safe_load(self.api_keys_file.read_text()) or []
        else:
            raw = json.loads(self.api_keys)
        return [ApiKeyEntry.model_validate(item) for item in raw]


@lru_cache(maxsize=1)
def get_serving_settings() -> ServingSettings:
    return ServingSettings()
