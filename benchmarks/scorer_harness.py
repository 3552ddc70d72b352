"""The scorer and its peers as the online benchmarks run them: accounts the run's own stores
hold, those stores (a Feast project of the run's own), an API key without a rate limit, and
HTTP servers in subprocesses (start, wait for readiness, stop, read their logs).

benchmarks.online_latency and benchmarks.load_run drive these servers; nothing here times
anything.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.common import (
    REPO_ROOT,
    temp_feast_store,
)
from benchmarks.harness import (
    BenchmarkInputError,
    redis_url,
)

if TYPE_CHECKING:
    from fastapi import FastAPI
    from feast import FeatureStore


log = logging.getLogger(__name__)

BATCH = 100
SAMPLE_SEED = 11
BACKENDS = ("sqlite", "redis")
# The run's own Feast project: its Redis keys end with it, its SQLite tables start with it.
PROJECT_PREFIX = "cwbench_online"
VENV_BIN = Path(sys.executable).parent
START_TIMEOUT_S = 300.0


# --- accounts and keys ------------------------------------------------------------------------


@dataclass(frozen=True)
class Accounts:
    """Accounts of the newest snapshot (hence online), with their customers."""

    ids: list[str]
    customers: dict[str, str]

    @cached_property
    def batches(self) -> list[list[str]]:
        return [self.ids[i : i + BATCH] for i in range(0, len(self.ids) - BATCH + 1, BATCH)]


def online_accounts(
    count: int, features_dir: Path, stores: Sequence[FeatureStore], seed: int = SAMPLE_SEED
) -> Accounts:
    """A seeded sample of the newest snapshot's accounts, kept only where every store
    resolves them to a customer, with the customer the store names.

    The sample comes from the feature tables, but the figures come from the stores: an
    account a store does not hold would be timed as a 404, and its customer (None) once
    reached Feast's entity-key serialisation in the in-process stage.
    """
    import pandas as pd  # noqa: PLC0415

    from ingestion.feast_store import resolve_customers  # noqa: PLC0415

    path = features_dir / "account_profile.parquet"
    profile = pd.read_parquet(path, columns=["account_id", "event_timestamp"])
    newest = profile[profile["event_timestamp"] == profile["event_timestamp"].max()]
    sample = [
        str(a) for a in newest.sample(n=min(count, len(newest)), random_state=seed)["account_id"]
    ]
    customers: dict[str, str] = {}
    known = set(sample)
    for store in stores:
        found = resolve_customers(store, sample)
        known &= {a for a, c in found.items() if c}
        customers |= {a: c for a, c in found.items() if c}
    ids = [a for a in sample if a in known]
    if len(ids) < BATCH:
        raise BenchmarkInputError(
            f"the benchmark's stores resolve {len(ids)} of {len(sample)} sampled accounts "
            f"of {features_dir}: rebuild the demo data with `make demo`"
        )
    if len(ids) < len(sample):
        log.warning("%d sampled accounts have no customer online: left out", len(sample) - len(ids))
    return Accounts(ids, {a: customers[a] for a in ids})


# --- the run's own stores ---------------------------------------------------------------------


@dataclass(frozen=True)
class BenchStores:
    """The run's own Feast stores, one per backend, all under one project of its own."""

    project: str
    profiles: dict[str, Path]  # backend -> its feature_store.yaml
    stores: dict[str, FeatureStore]
    sqlite_path: Path | None


@contextmanager
def bench_stores(features_dir: Path, backends: Sequence[str] = BACKENDS) -> Iterator[BenchStores]:
    """The definitions applied over features_dir in temporary repos, the newest snapshot
    materialised into each backend, under a project no other run uses; torn down (its
    Redis keys deleted) and removed afterwards, however the run ends."""
    from ingestion.feast_store import features_as_of, materialize_latest  # noqa: PLC0415

    project = f"{PROJECT_PREFIX}_{uuid.uuid4().hex[:8]}"
    as_of = features_as_of(features_dir)
    profiles: dict[str, Path] = {}
    stores: dict[str, FeatureStore] = {}
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"{project}-")))
        sqlite_path = folder / "online.db" if "sqlite" in backends else None
        for backend in backends:
            online = (
                {"type": "sqlite", "path": str(sqlite_path)}
                if backend == "sqlite"
                else {"type": "redis", "connection_string": redis_url()}
            )
            scratch = stack.enter_context(temp_feast_store(features_dir, online, project))
            log.info(
                "materialising the snapshot of %s into %s, project %s", as_of, backend, project
            )
            materialize_latest(scratch.store, as_of)
            profiles[backend], stores[backend] = scratch.profile, scratch.store
        yield BenchStores(project, profiles, stores, sqlite_path)


# Requests per minute for the benchmark's caller: the default 6,000 would answer 429 within
# seconds (a batch of 100 costs 100), over HTTP and in process alike.
NO_LIMIT = 100_000_000


def new_api_key() -> tuple[str, str]:
    """A score key and the COLLECTWISE_SERVING__API_KEYS value with its hash, no rate limit."""
    from serving.auth import hash_key, new_key  # noqa: PLC0415

    key = new_key()
    entry = {
        "name": "bench",
        "sha256": hash_key(key),
        "scopes": ["score"],
        "rate_per_minute": NO_LIMIT,
    }
    return key, json.dumps([entry])


# --- servers in subprocesses ------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    ready_path: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(
    name: str,
    command: Sequence[str],
    env: Mapping[str, str],
    log_dir: Path,
    ready_path: str,
    port: int,
) -> Server:
    """Start a server in its own session, so stop() can end it and every worker it forks."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            list(command),
            cwd=REPO_ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    log.info("started %s (pid %d) on port %d", name, process.pid, port)
    return Server(name, port, process, log_path, ready_path)


def wait_ready(server: Server, timeout: float = START_TIMEOUT_S) -> None:
    import httpx  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited early:\n{server.log_tail()}")
        try:
            if httpx.get(server.url + server.ready_path, timeout=2).status_code == 200:
                log.info("%s ready", server.name)
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{server.name} not ready within {timeout:.0f}s:\n{server.log_tail()}")


def stop(server: Server) -> None:
    """SIGTERM to the server's process group (ours: it was started in a new session)."""
    if server.process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(server.process.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop on %s", server.name, sig.name)


def scorer_command(port: int, workers: int = 1) -> list[str]:
    return [
        str(VENV_BIN / "collectwise"),
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def scorer_env(
    profile: Path, keys: str, workdir: Path, home: Path, *, record: bool = True
) -> dict[str, str]:
    """The scorer's production defaults, logs in `workdir`, the online store of `profile`
    (the run's own), the model registry of `home` (the one the checks looked at)."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTWISE_")}
    env |= {
        "COLLECTWISE_HOME": str(home),
        "FEAST_FS_YAML_FILE_PATH": str(profile),
        "REDIS_CONNECTION_STRING": redis_url(),
        "COLLECTWISE_SERVING__API_KEYS": keys,
        "COLLECTWISE_SERVING__RECORD": "true" if record else "false",
        "COLLECTWISE_PATHS__AUDIT_DB": str(workdir / "audit.db"),
        "COLLECTWISE_PATHS__SERVED_DIR": str(workdir / "served"),
    }
    return env


def peer_command(profile: Path, port: int, workers: int = 1) -> list[str]:
    # gunicorn's default --max-requests 1000 would restart the worker mid-measurement.
    return [
        *(str(VENV_BIN / "feast"), "-f", str(profile), "serve"),
        *("-p", str(port), "--no-access-log", "--max-requests", "0"),
        *(("--workers", str(workers)) if workers != 1 else ()),
    ]


def hello_command(port: int, workers: int = 1) -> list[str]:
    return [
        *(sys.executable, "-m", "uvicorn", "benchmarks.scorer_harness:hello_app", "--factory"),
        *("--port", str(port), "--log-level", "warning", "--no-access-log"),
        *(("--workers", str(workers)) if workers != 1 else ()),
    ]


def hello_app() -> FastAPI:
    """The HTTP floor: the scorer's request bodies parsed, a small answer, nothing else."""
    from fastapi import FastAPI  # noqa: PLC0415
    from pydantic import BaseModel  # noqa: PLC0415

    class One(BaseModel):
        account_id: str
        explain: bool = True

    class Many(BaseModel):
        accounts: list[One]
        explain: bool = False

    async def hello(body):
        return {"account_id": body.account_id, "hello": "world"}

    def hello_sync(body):
        # A def route runs on the thread pool, as the scorer's routes do.
        return {"account_id": body.account_id, "hello": "world"}

    async def hello_batch(body):
        return {"results": [{"account_id": a.account_id, "hello": "world"} for a in body.accounts]}

    async def healthz():
        return {"status": "ok"}

    # Annotations set as objects: under `from __future__ import annotations` FastAPI could
    # not resolve the names of these function-local models.
    for fn, model in ((hello, One), (hello_sync, One), (hello_batch, Many)):
        fn.__annotations__ = {"body": model, "return": dict}
    app = FastAPI()
    app.post("/hello")(hello)
    app.post("/hello/sync")(hello_sync)
    app.post("/hello/batch")(hello_batch)
    app.get("/healthz")(healthz)
    return app


def quiet_http_logs() -> None:
    """httpx logs every request at INFO: thousands of lines that would bury the tables."""
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# --- a Redis of one's own ---------------------------------------------------------------------


@contextmanager
def private_redis(workdir: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A redis-server on a free port, no persistence, for faults one may cause for real
    (SIGSTOP it, kill it, flush it) without touching the shared Redis; stopped afterwards."""
    import redis  # noqa: PLC0415

    if shutil.which("redis-server") is None:
        raise BenchmarkInputError("redis-server not found: run `make services`")
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield server, port
    finally:
        server.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
        server.terminate()
        server.wait(timeout=10)
