"""Platform settings shared by every layer: where the data lives and which Feast profile.

Read once through the cached get_settings(); never instantiate at module level. Values come
from the environment (prefix COLLECTWISE_) or a git-ignored `.env`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from feature_repo.paths import REPO_ROOT, data_dir

FEAST_YAML_ENV = "FEAST_FS_YAML_FILE_PATH"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COLLECTWISE_", env_file=".env", extra="ignore")

    repo_root: Path = REPO_ROOT
    data_dir: Path = Field(default_factory=data_dir)
    log_level: str = "INFO"

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
    def feature_store_yaml(self) -> Path:
        """The Feast profile: FEAST_FS_YAML_FILE_PATH as Feast's own CLI reads it."""
        value = os.environ.get(FEAST_YAML_ENV)
        path = Path(value) if value else self.repo_root / "feature_store.yaml"
        return path if path.is_absolute() else self.repo_root / path


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
