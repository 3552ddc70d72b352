"""Where a model came from: git commit and dirtiness, the DVC data hash, and the lineage
tags register() writes on a version (and on its run, so the experiment view can filter)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from collectwise.settings import get_settings

if TYPE_CHECKING:
    from training.scoring_model import ScoringModel

UNKNOWN = "unknown"
# Version tags also set on the run, so the experiment view can filter runs by lineage.
LINEAGE_TAGS = frozenset(
    {
        "feature_service",
        "definitions_fingerprint",
        "data_fingerprint",
        "dvc_data_hash",
        "git_commit",
        "git_dirty",
        "test_set_fingerprint",
    }
)


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(  # nosec B603 B607  # fixed git argv; git from PATH, best effort (None on failure)
            ["git", *args],
            cwd=get_settings().home,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def git_commit() -> str:
    """HEAD of the repo, or "unknown" outside a git checkout."""
    return _git("rev-parse", "HEAD") or UNKNOWN


def git_dirty() -> str:
    """ "true" when tracked files differ from HEAD: the commit alone does not rebuild the model."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return UNKNOWN if status is None else str(bool(status)).lower()


def dvc_data_hash(lock_path: Path, out: str | None = None) -> str:
    """The DVC md5 of one output of dvc.lock, or one digest over all its outputs.

    Without `out` the digest changes when any data output of the pipeline changes, which is
    the honest answer to "which data did this model see" when the caller cannot name one.
    """
    if not lock_path.exists():
        return UNKNOWN
    stages = (yaml.safe_load(lock_path.read_text()) or {}).get("stages", {})
    outs = {
        o["path"]: str(o.get("md5", UNKNOWN))
        for stage in stages.values()
        for o in stage.get("outs", [])
    }
    if out is not None:
        return outs.get(out, UNKNOWN)
    if not outs:
        return UNKNOWN
    joined = "\n".join(f"{path}:{md5}" for path, md5 in sorted(outs.items()))
    return hashlib.sha256(joined.encode()).hexdigest()[:32]


def lineage_tags(model: ScoringModel, test_set_fingerprint: str) -> dict[str, str]:
    """The LINEAGE_TAGS of a model about to be registered, read from it and the checkout."""
    return {
        "feature_service": model.feature_service,
        "definitions_fingerprint": model.definitions_fingerprint,
        "data_fingerprint": str(model.metadata.get("data_fingerprint", UNKNOWN)),
        "dvc_data_hash": dvc_data_hash(get_settings().paths.dvc_lock),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "test_set_fingerprint": test_set_fingerprint,
    }
