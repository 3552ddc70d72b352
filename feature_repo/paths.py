"""Where the feature tables live.

Feast's DuckDB offline store reads a FileSource path relative to the process's working
directory, not the repo, so sources use absolute paths resolved here. The data directory is
chosen by environment (COLLECTWISE_DATA_DIR, e.g. `data_uci` for the UCI profile) and
defaults to `data/` beside this repo.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR_ENV = "COLLECTWISE_DATA_DIR"


def data_dir() -> Path:
    value = os.environ.get(DATA_DIR_ENV)
    path = Path(value) if value else REPO_ROOT / "data"
    return path if path.is_absolute() else (REPO_ROOT / path)


def features_dir() -> Path:
    return data_dir() / "features"
