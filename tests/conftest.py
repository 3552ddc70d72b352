"""Shared fixtures: paths to the repo and to the shared real data (never copied here)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# prometheus_client picks its value store once, when first imported: files per process if
# PROMETHEUS_MULTIPROC_DIR is set, and importing feast.metrics sets it. In-memory values are
# pinned here, not only imported first: a pytest-xdist worker can import feast before this
# file, and then every app a test process builds would add to the same files. Pinned, each
# app counts alone, as each process does in production.
import prometheus_client.values
import pytest

from collectwise import startup
from collectwise.settings import get_settings

# As the platform's own processes do (collectwise.startup): Feast loads without typeguard's
# instrumentation of its classes, 3 s less for every test process.
startup.prepare()

prometheus_client.values.ValueClass = prometheus_client.values.MutexValue

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("COLLECTWISE_SHARED_DIR", REPO_ROOT.parent / "shared"))
UCI_CSV = SHARED_DIR / "data" / "uci_credit_default" / "credit_default_dev.csv"


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Each test reads the settings its own environment makes: a variable a test sets (with
    monkeypatch) takes effect, and none outlives it in the cached settings."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def uci_csv() -> Path:
    if not UCI_CSV.exists():
        pytest.fail(f"the shared UCI file is missing: {UCI_CSV}")
    return UCI_CSV
