"""A temporary MLflow for the tests that register models: SQLite and local artifacts in the
test process, or a real `mlflow server` (the production shape) on a port of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest
import requests

from benchmarks.scorer_harness import free_port
from collectwise.settings import get_settings

SERVER_START_S = 90.0


@contextmanager
def temporary_mlflow(root: Path) -> Iterator[Path]:
    """Point the settings (and so the registry code) at an MLflow under `root`; restore the
    environment, the cached settings and MLflow's global URIs afterwards."""
    with mlflow_at(f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri()):
        yield root


@contextmanager
def mlflow_at(tracking_uri: str, artifact_location: str | None = None) -> Iterator[str]:
    """The settings pointed at an MLflow (artifacts where its server puts them when None);
    the environment, the cached settings and MLflow's global URIs restored afterwards."""
    patch = pytest.MonkeyPatch()
    patch.setenv("COLLECTWISE_MLFLOW__TRACKING_URI", tracking_uri)
    if artifact_location is None:
        patch.delenv("COLLECTWISE_MLFLOW__ARTIFACT_LOCATION", raising=False)
    else:
        patch.setenv("COLLECTWISE_MLFLOW__ARTIFACT_LOCATION", artifact_location)
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    get_settings.cache_clear()
    try:
        yield tracking_uri
    finally:
        patch.undo()
        get_settings.cache_clear()
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


@contextmanager
def running_mlflow_server(root: Path) -> Iterator[str]:
    """`mlflow server` on a free port (its own process group), SQLite backend and proxied
    artifacts under root; its URL. Stopped with SIGTERM when the block ends."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = root / "mlflow-server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1",
                "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                "--artifacts-destination", (root / "artifacts").as_uri(),
            ],
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("COLLECTWISE_")},
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, process, log_path)
            yield url
        finally:
            os.killpg(process.pid, 15)
            process.wait(timeout=30)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while True:
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"mlflow server did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)
