"""Settings of the monitoring jobs (drift, performance, skew, fairness): where their inputs
and reports live and the thresholds that decide "drifted" or "skewed".

The alerting side (metric store, delivery, retraining) has its own settings in
monitoring.config; these are only what the jobs themselves compute with. Read through the
cached get_job_settings(); never instantiate at module level. Values come from the
environment with the prefix COLLECTWISE_MONITOR_ (e.g. COLLECTWISE_MONITOR_DRIFT_SHARE=0.3)
or a git-ignored `.env`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from feature_repo.paths import REPO_ROOT, data_dir
from feature_repo.transformations import DEFAULT_LABEL_GRACE_DAYS, LABEL_WINDOW_DAYS


def default_served_dir() -> Path:
    """Where the scorer writes its served-features log (date=YYYY-MM-DD partitions)."""
    return data_dir() / "serving" / "served"


class JobSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COLLECTWISE_MONITOR_", env_file=".env", extra="ignore"
    )

    reports_dir: Path = REPO_ROOT / "reports" / "monitoring"
    served_dir: Path = Field(default_factory=default_served_dir)

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

    # Outcomes: default_30d covers 30 days after the score and is final after the grace.
    label_window_days: int = Field(default=LABEL_WINDOW_DAYS, ge=1)
    label_grace_days: int = Field(default=DEFAULT_LABEL_GRACE_DAYS, ge=0)

    skew_rel_tolerance: float = Field(default=1e-9, ge=0)
    skew_sample: int = Field(default=500, ge=1)
    seed: int = 0

    fairness_min_ratio: float = Field(default=0.8, gt=0, le=1)
    fairness_min_group_size: int = Field(default=30, ge=1)


@lru_cache(maxsize=1)
def get_job_settings() -> JobSettings:
    return JobSettings()
