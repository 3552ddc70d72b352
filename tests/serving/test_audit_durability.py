"""No scored decision without its audit record.

A real scorer (`collectwise serve`, uvicorn in a subprocess of its own) is driven by eight
concurrent clients and killed with SIGKILL mid-burst: every request that was answered 200 has
its audit record, the chain verifies, and once a scorer runs again on the same files the
served-feature log holds every answered score exactly once. A scorer whose audit log cannot
take a record answers 503, never a score without one.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from benchmarks.scorer_harness import (
    Server,
    free_port,
    scorer_command,
    spawn,
    stop,
    wait_ready,
)
from collectwise.cli import app as cli
from serving.audit import AuditLog
from serving.main import create_app
from serving.servedlog import read_served
from tests.serving.conftest import SCORE_KEY, ScorerWorld, key_entries, scorer_settings, serve
from tests.serving.test_scorer import known_accounts

pytestmark = [pytest.mark.integration, pytest.mark.slow]
log = logging.getLogger(__name__)

AUTH = {"X-API-Key": SCORE_KEY}
CLIENTS = 8
# Answers to collect before the kill: enough that the served log was flushed at least once
# (every second here) and that commits are under way when the signal lands.
BEFORE_KILL = 400


@dataclass
class Home:
    root: Path
    audit_db: Path = field(init=False)
    served_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.audit_db = self.root / "audit.db"
        self.served_dir = self.root / "served"


def _env(world: ScorerWorld, home: Home) -> dict[str, str]:
    """The scorer's environment: the world's Feast repo and MLflow (the tests' temporary
    one, set in this process's environment), logs and home of the test's own."""
    profile = world.root / "repo" / "feature_store.yaml"
    assert profile.is_file()
    return os.environ | {
        "COLLECTWISE_HOME": str(home.root),
        "FEAST_FS_YAML_FILE_PATH": str(profile),
        "COLLECTWISE_SERVING__API_KEYS": key_entries(),
        "COLLECTWISE_PATHS__AUDIT_DB": str(home.audit_db),
        "COLLECTWISE_PATHS__SERVED_DIR": str(home.served_dir),
        "COLLECTWISE_SERVING__SERVED_FLUSH_SECONDS": "1",
    }


@contextmanager
def scorer(world: ScorerWorld, home: Home, name: str) -> Iterator[Server]:
    port = free_port()
    server = spawn(name, scorer_command(port), _env(world, home), home.root, "/readyz", port)
    try:
        wait_ready(server, timeout=180)
        yield server
    finally:
        stop(server)


@dataclass
class Burst:
    """What the clients saw: (request id, account) of every account answered 200."""

    answered: set[tuple[str, str]] = field(default_factory=set)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.answered)


def _client(server: Server, accounts: list[str], offset: int, burst: Burst) -> None:
    """Score until the scorer stops answering: singles, and every fifth request a batch."""
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        for i in range(offset, offset + 1_000_000):
            account = accounts[i % len(accounts)]
            try:
                if i % 5:
                    response = client.post("/v1/score", json={"account_id": account})
                else:
                    batch = [{"account_id": a} for a in accounts[i % 7 : i % 7 + 3]]
                    response = client.post("/v1/score/batch", json={"accounts": batch})
            except httpx.TransportError:
                return  # killed
            _note(response, burst)


def _note(response: httpx.Response, burst: Burst) -> None:
    if response.status_code != 200:
        with burst.lock:
            burst.refused += 1
        return
    body = response.json()
    results = body.get("results", [body])
    with burst.lock:
        burst.answered.update((body["request_id"], r["account_id"]) for r in results)


def _outbox(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM served_outbox").fetchone()[0])
    finally:
        conn.close()


def _until(check: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_every_answered_score_survives_a_sigkill(world: ScorerWorld, tmp_path: Path) -> None:
    home = Home(tmp_path)
    accounts = known_accounts(world, 20)
    burst = Burst()
    with scorer(world, home, "scorer") as server:
        clients = [
            threading.Thread(target=_client, args=(server, accounts, n * 1000, burst))
            for n in range(CLIENTS)
        ]
        for client in clients:
            client.start()
        assert _until(lambda: burst.count() >= BEFORE_KILL, 120), server.log_tail()
        os.killpg(server.process.pid, signal.SIGKILL)  # mid-burst: the clients are sending
        server.process.wait(30)
        for client in clients:
            client.join(60)
    assert server.process.returncode == -signal.SIGKILL
    assert burst.refused == 0, server.log_tail()

    audit = AuditLog(home.audit_db)
    recorded = {(r.request_id, r.account_id): r.seq for r in audit.recent(10**7)}
    assert burst.answered <= recorded.keys(), f"{len(burst.answered - recorded.keys())} lost"
    assert audit.verify().ok
    # The killed scorer left rows that were answered but not yet in the served log.
    left = _outbox(home.audit_db)
    assert left > 0
    log.info(
        "SIGKILL after %d accounts answered 200 (%d recorded): none lost; %d not yet in the "
        "served log",
        len(burst.answered),
        len(recorded),
        left,
    )

    with scorer(world, home, "scorer-after") as restarted:
        # The restarted scorer takes over the dead one's rows and writes them.
        assert _until(lambda: _outbox(home.audit_db) == 0, 60), restarted.log_tail()
    served = read_served(home.served_dir)
    assert served["audit_seq"].is_unique  # nothing written twice
    keys = zip(served["request_id"], served["account_id"], strict=True)
    logged = dict(zip(keys, served["audit_seq"], strict=True))
    assert logged == recorded  # every recorded score once, under its own audit seq
    verified = CliRunner().invoke(cli, ["audit", "verify", "--db", str(home.audit_db)])
    assert verified.exit_code == 0 and f"holds: {len(recorded)} rows" in verified.output


@contextmanager
def write_locked(path: Path) -> Iterator[None]:
    """Another process's writer holding the audit log's lock (a stuck worker, a backup)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def test_a_score_that_cannot_be_recorded_is_not_answered(
    world: ScorerWorld, tmp_path: Path
) -> None:
    account = known_accounts(world, 1)[0]
    body = {"account_id": account, "as_of": world.data.as_of.isoformat()}
    settings = scorer_settings(tmp_path, audit_timeout_seconds=0.3)
    audit = AuditLog(tmp_path / "audit.db")
    with serve(create_app(settings, store=world.store)) as client:
        first = client.post("/v1/score", json=body, headers=AUTH)
        assert first.status_code == 200, first.text
        with write_locked(tmp_path / "audit.db"):
            locked = client.post("/v1/score", json=body, headers=AUTH)
        assert locked.status_code == 503 and locked.headers["Retry-After"]
        assert locked.json()["error"] == "audit_unavailable"
        assert "database is locked" in locked.json()["detail"]
        assert "probability" not in locked.json()
        again = client.post("/v1/score", json=body, headers=AUTH)
        assert again.status_code == 200  # the lock is gone: it records again
        assert len(audit.recent()) == 2

        # The log removed from under the running scorer: refused until it is back.
        for suffix in ("", "-wal", "-shm"):
            Path(f"{tmp_path / 'audit.db'}{suffix}").unlink(missing_ok=True)
        gone = client.post(
            "/v1/score/batch", json={"accounts": [{"account_id": account}]}, headers=AUTH
        )
        assert gone.status_code == 503 and gone.json()["error"] == "audit_unavailable"
        assert "no audit log at" in gone.json()["detail"]
        metrics = client.get("/metrics").text
    scored = [line for line in metrics.splitlines() if line.startswith("collectwise_scores_total")]
    assert sum(float(line.split()[-1]) for line in scored) == 2  # refused ones not counted
