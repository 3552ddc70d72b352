"""Online-store outage drill: a real scorer subprocess, its own redis-server frozen with
SIGSTOP and thawed with SIGCONT, timed from outside.

Figures, each beside its floor in the same run (a scorer answering normally):
- the 503s before the breaker opens (each waits out the online-read deadline), how many
  and how long until the first answer from the open circuit;
- answers while the circuit is open (refused without touching the store) against a 200;
- from SIGCONT to the circuit closed again (the store probe's successful read), and the
  first 200 after it.

    python -m benchmarks.outage_drill

Inputs, checked first: the demo's feature tables and champion (`make demo`), redis-server.
The run applies the features to a Feast project of its own on a redis-server of its own
(a free port), so it touches nothing else; results go to benchmarks/results/outage_drill.*.
"""

from __future__ import annotations

import argparse
import logging
import signal
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import render_table, setup_logging, temp_feast_store
from benchmarks.harness import (
    Progress,
    Table,
    require_champion,
    require_demo_features,
    run_main,
)
from benchmarks.scorer_harness import (
    free_port,
    new_api_key,
    online_accounts,
    private_redis,
    scorer_command,
    scorer_env,
    spawn,
    stop,
    wait_ready,
)

log = logging.getLogger(__name__)

NAME = "outage_drill"
FAILURES = 5  # the breaker's threshold for the drill (the default)
RESET_SECONDS = 30.0  # long: the probe, not the reset time, should close it
FLOOR_REQUESTS = 50


def timed_post(client: httpx.Client, body: dict[str, Any]) -> tuple[float, int, str]:
    started = time.perf_counter()
    answer = client.post("/v1/score", json=body)
    ms = (time.perf_counter() - started) * 1000
    kind = answer.json().get("error", "") if answer.status_code != 200 else ""
    return ms, answer.status_code, kind


def drill(client: httpx.Client, body: dict[str, Any], server: Any) -> dict[str, Any]:
    floor = [timed_post(client, body)[0] for _ in range(FLOOR_REQUESTS)]
    server.send_signal(signal.SIGSTOP)  # the store stops answering, connections hang
    frozen_at = time.perf_counter()
    before_open: list[float] = []
    while True:
        ms, status, kind = timed_post(client, body)
        if kind == "store_circuit_open":
            break
        if status != 503:
            raise RuntimeError(f"expected 503 while the store is frozen, got {status}")
        before_open.append(ms)
    opened_after = time.perf_counter() - frozen_at
    open_answers = [timed_post(client, body)[0] for _ in range(FLOOR_REQUESTS)]
    server.send_signal(signal.SIGCONT)
    thawed_at = time.perf_counter()
    while client.get("/readyz").json()["checks"].get("circuit") != "closed":
        time.sleep(0.01)
    closed_after = time.perf_counter() - thawed_at
    ms, status, _ = timed_post(client, body)
    return {
        "floor_p50_ms": statistics.median(floor),
        "failed_before_open": len(before_open),
        "failed_before_open_p50_ms": statistics.median(before_open),
        "seconds_to_open": opened_after,
        "open_p50_ms": statistics.median(open_answers),
        "seconds_to_close": closed_after,
        "first_after_close": {"status": status, "ms": ms},
    }


def tables(payload: dict[str, Any]) -> list[Table]:
    d = payload.get("drill")
    if not d:
        return []
    rows = [
        ["200 (floor), p50 ms", round(d["floor_p50_ms"], 2)],
        ["503 before the circuit opens: count", d["failed_before_open"]],
        ["503 before the circuit opens: p50 ms", round(d["failed_before_open_p50_ms"], 1)],
        ["freeze -> circuit open, s", round(d["seconds_to_open"], 2)],
        ["503 from the open circuit: p50 ms", round(d["open_p50_ms"], 2)],
        ["thaw -> circuit closed, s", round(d["seconds_to_close"], 2)],
        ["first request after close", d["first_after_close"]["status"]],
    ]
    return [("online-store outage", ["figure", "value"], rows)]


def run() -> None:
    from collectwise.settings import get_settings  # noqa: PLC0415
    from ingestion.feast_store import features_as_of, materialize_latest  # noqa: PLC0415

    settings = get_settings()
    features = require_demo_features(settings)
    require_champion(settings)
    payload: dict[str, Any] = {"breaker_failures": FAILURES, "reset_seconds": RESET_SECONDS}
    with (
        Progress(NAME, ["drill"], payload=payload, tables=lambda: tables(payload)) as progress,
        tempfile.TemporaryDirectory(prefix="cwdrill-") as tmp,
        private_redis(Path(tmp)) as (redis_server, port),
    ):
        online = {"type": "redis", "connection_string": f"127.0.0.1:{port}"}
        project = f"cwdrill_{uuid.uuid4().hex[:8]}"
        with temp_feast_store(features, online, project) as scratch, progress.stage("drill"):
            materialize_latest(scratch.store, features_as_of(features))
            account = online_accounts(100, features, [scratch.store]).ids[0]
            key, keys = new_api_key()
            env = scorer_env(scratch.profile, keys, Path(tmp) / "scorer", settings.home)
            env |= {
                "REDIS_CONNECTION_STRING": f"127.0.0.1:{port}",
                "COLLECTWISE_SERVING__BREAKER_FAILURES": str(FAILURES),
                "COLLECTWISE_SERVING__BREAKER_RESET_SECONDS": str(RESET_SECONDS),
            }
            scorer_port = free_port()
            server = spawn(
                "scorer", scorer_command(scorer_port), env, Path(tmp), "/readyz", scorer_port
            )
            try:
                wait_ready(server)
                base = f"http://127.0.0.1:{scorer_port}"
                with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as c:
                    payload["drill"] = drill(c, {"account_id": account}, redis_server)
            finally:
                stop(server)
    for title, header, rows in tables(payload):
        log.info("\n%s", render_table(title, header, rows))


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0]).parse_args(argv)
    setup_logging()
    run_main(run)


if __name__ == "__main__":
    main()
