"""`collectwise serve` run for real over the serving tests' world: its own process group,
port, home and logs, the world's Feast profile and MLflow, the tests' API keys."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from benchmarks.scorer_harness import Server, free_port, scorer_command, spawn, stop, wait_ready
from collectwise.settings import get_settings
from tests.serving.conftest import ScorerWorld, key_entries


def scorer_env(world: ScorerWorld, workdir: Path) -> dict[str, str]:
    """The world's Feast profile and MLflow, our keys, logs in workdir; nothing else of ours
    (nor a multiprocess folder another library set in this process)."""
    mlflow = get_settings().mlflow
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("COLLECTWISE_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    return env | {
        "COLLECTWISE_HOME": str(workdir),
        "FEAST_FS_YAML_FILE_PATH": str(world.root / "repo" / "feature_store.yaml"),
        "COLLECTWISE_MLFLOW__TRACKING_URI": str(mlflow.tracking_uri),
        "COLLECTWISE_MLFLOW__ARTIFACT_LOCATION": str(mlflow.artifact_location),
        "COLLECTWISE_SERVING__API_KEYS": key_entries(),
        # the registry is polled every second, not every 15 s: a new alias is served at once
        "COLLECTWISE_SERVING__MODEL_REFRESH_SECONDS": "1",
        "COLLECTWISE_PATHS__AUDIT_DB": str(workdir / "audit.db"),
        "COLLECTWISE_PATHS__SERVED_DIR": str(workdir / "served"),
    }


@contextmanager
def running_scorer(
    world: ScorerWorld, workdir: Path, workers: int, extra: Mapping[str, str] | None = None
) -> Iterator[Server]:
    """The scorer, ready; stopped (SIGTERM, then SIGKILL) when the block ends."""
    port = free_port()
    env = scorer_env(world, workdir) | dict(extra or {})
    server = spawn("scorer", scorer_command(port, workers), env, workdir, "/readyz", port)
    try:
        wait_ready(server)
        yield server
    finally:
        stop(server)
