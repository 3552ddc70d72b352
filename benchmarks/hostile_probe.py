"""Hostile-input probe against a running scorer: the figures the hardening issue asked for.

Runs against a scorer that is already up (`make demo` leaves one on :8000) and compares each
hostile case with its floor measured in the same run:

- an oversized body (29 MB) to /v1/score/batch: its status and time to answer, and /healthz
  timed from a second thread while that body is sent, against /healthz alone;
- a batch of 1,000 distinct accounts with reasons: status and time, against one account.

    python -m benchmarks.hostile_probe --url http://127.0.0.1:8000 --key-file .run/demo.key

Writes benchmarks/results/hostile_probe_<label>.{json,md}.
"""

from __future__ import annotations

import json
import logging
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import pandas as pd

from benchmarks.common import RESULTS_DIR, render_table, setup_logging

log = logging.getLogger(__name__)

OVERSIZED_BYTES = 29_000_000
BATCH_SIZE = 1000
ROUNDS = 5


@dataclass(frozen=True)
class Case:
    case: str
    status: int
    p50_ms: float
    max_ms: float
    floor: str
    floor_p50_ms: float


def _timed(call: Callable[[], httpx.Response]) -> tuple[int, float]:
    """Status and milliseconds of one request."""
    started = time.perf_counter()
    status = call().status_code
    return status, (time.perf_counter() - started) * 1000


def _healthz_times(client: httpx.Client, url: str, n: int) -> list[float]:
    return [_timed(lambda: client.get(f"{url}/healthz"))[1] for _ in range(n)]


def _oversized(url: str, key: str, floor: list[float]) -> list[Case]:
    """The big body on one connection, /healthz polled on another until it is answered."""
    body = b'{"accounts": [' + b'{"account_id": "A1"},' * (OVERSIZED_BYTES // 20) + b"]}"
    during: list[float] = []
    done = threading.Event()

    def poll() -> None:
        with httpx.Client(timeout=60) as side:
            while not done.is_set():
                during.append(_timed(lambda: side.get(f"{url}/healthz"))[1])

    poller = threading.Thread(target=poll)
    poller.start()
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    with httpx.Client(timeout=120) as big:
        answers = [
            _timed(lambda: big.post(f"{url}/v1/score/batch", content=body, headers=headers))
            for _ in range(ROUNDS)
        ]
    done.set()
    poller.join()
    times = [t for _, t in answers]
    healthz_floor = statistics.median(floor)
    return [
        Case(
            "29 MB batch body",
            answers[-1][0],
            statistics.median(times),
            max(times),
            "/healthz alone",
            healthz_floor,
        ),
        Case(
            "/healthz during it",
            200,
            statistics.median(during),
            max(during),
            "/healthz alone",
            healthz_floor,
        ),
    ]


def _batch(url: str, key: str, accounts: list[str]) -> list[Case]:
    headers = {"X-API-Key": key}
    body = {"accounts": [{"account_id": a} for a in accounts[:BATCH_SIZE]], "explain": True}
    with httpx.Client(timeout=120) as client:
        single = [
            _timed(
                lambda: client.post(
                    f"{url}/v1/score", json={"account_id": accounts[0]}, headers=headers
                )
            )
            for _ in range(20)
        ]
        batch = [
            _timed(lambda: client.post(f"{url}/v1/score/batch", json=body, headers=headers))
            for _ in range(ROUNDS)
        ]
    times = [t for _, t in batch]
    statuses = {s for s, _ in batch}
    single_p50 = statistics.median(t for _, t in single)
    return [
        Case(
            f"batch of {BATCH_SIZE} with reasons",
            max(statuses),
            statistics.median(times),
            max(times),
            "one account",
            single_p50,
        ),
    ]


def newest_accounts(features_dir: Path, n: int) -> list[str]:
    """Accounts of the newest snapshot, i.e. those the online store holds."""
    profile = pd.read_parquet(features_dir / "account_profile.parquet")
    newest = profile[profile["event_timestamp"] == profile["event_timestamp"].max()]
    return sorted(newest["account_id"].astype(str))[:n]


def main() -> None:
    import argparse  # noqa: PLC0415

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--key-file", type=Path, default=Path(".run/demo.key"))
    p.add_argument("--features-dir", type=Path, default=Path("data/features"))
    p.add_argument("--label", default="sqlite", help="names the result files (the store)")
    args = p.parse_args()
    setup_logging()
    key = args.key_file.read_text().strip()
    with httpx.Client(timeout=30) as client:
        floor = _healthz_times(client, args.url, 50)
    cases = _oversized(args.url, key, floor)
    cases += _batch(args.url, key, newest_accounts(args.features_dir, BATCH_SIZE))
    rows = [asdict(c) for c in cases]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stem = RESULTS_DIR / f"hostile_probe_{args.label}"
    stem.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    table = render_table(
        f"hostile probe ({args.label})", list(rows[0]), [list(r.values()) for r in rows]
    )
    stem.with_suffix(".md").write_text(table + "\n")
    log.info("\n%s", table)


if __name__ == "__main__":
    main()
