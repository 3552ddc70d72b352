"""Hostile-input probe against a running scorer: the figures the hardening issue asked for.

Runs against a scorer that is already up (`make demo` leaves one on :8000) and compares each
hostile case with its floor measured in the same run:

- an oversized body (29 MB) to /v1/score/batch: its status and time to answer, and /healthz
  timed from a second thread while that body is sent, against /healthz alone;
- a batch of 1,000 distinct accounts with reasons: status and time, against one account.

    python -m benchmarks.hostile_probe --url http://127.0.0.1:8000 --key-file .run/demo.key

Inputs, checked first (a missing one ends the run with a line saying what to run): the
API key file, a scorer answering at --url, and accounts of --features-dir that it knows.
It only reads through the scorer's API, so it shares no Feast project or Redis key with
anything. Writes benchmarks/results/hostile_probe_<label>.{json,md} after each case, and
once more however the run ends, with the cases not run marked.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import pandas as pd

from benchmarks.common import render_table, setup_logging
from benchmarks.harness import (
    DEMO_HINT,
    BenchmarkInputError,
    Progress,
    Table,
    require_file,
    require_scorer,
    run_main,
)

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
    path = require_file(
        features_dir / "account_profile.parquet",
        f"no feature tables there: {DEMO_HINT}, or pass --features-dir",
    )
    profile = pd.read_parquet(path, columns=["account_id", "event_timestamp"])
    newest = profile[profile["event_timestamp"] == profile["event_timestamp"].max()]
    return sorted(newest["account_id"].astype(str))[:n]


def require_known(url: str, key: str, accounts: list[str], features_dir: Path) -> None:
    """The scorer knows these accounts and takes this key: else every figure would be of
    an error answer."""
    answer = httpx.post(
        f"{url}/v1/score", json={"account_id": accounts[0]}, headers={"X-API-Key": key}, timeout=30
    )
    if answer.status_code in (401, 403):
        raise BenchmarkInputError(
            f"the scorer at {url} refuses the key ({answer.status_code}): pass the key file of a "
            "key with the score scope (`make demo` writes .run/demo.key)"
        )
    if answer.status_code != 200:
        raise BenchmarkInputError(
            f"the scorer at {url} answered {answer.status_code} for account {accounts[0]} of "
            f"{features_dir}: point --features-dir at the data it serves, or {DEMO_HINT}"
        )


def tables(label: str, cases: list[dict[str, object]]) -> list[Table]:
    if not cases:
        return []
    return [(f"hostile probe ({label})", list(cases[0]), [list(c.values()) for c in cases])]


def run(args: argparse.Namespace) -> None:
    from collectwise.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    key_file = args.key_file or settings.paths.run_dir / "demo.key"
    features_dir = args.features_dir or settings.paths.features_dir
    hint = f"{DEMO_HINT} (it starts the scorer and writes the key), or pass --key-file"
    key = require_file(key_file, hint).read_text().strip()
    require_scorer(args.url)
    accounts = newest_accounts(features_dir, BATCH_SIZE)
    require_known(args.url, key, accounts, features_dir)
    name = f"hostile_probe_{args.label}"
    with Progress(name, ["oversized body", "batch"]) as progress:
        cases: list[dict[str, object]] = []
        progress.payload |= {"url": args.url, "label": args.label, "cases": cases}
        progress.tables = lambda: tables(args.label, cases)
        with progress.stage("oversized body"):
            with httpx.Client(timeout=30) as client:
                floor = _healthz_times(client, args.url, 50)
            cases += [asdict(c) for c in _oversized(args.url, key, floor)]
        with progress.stage("batch"):
            cases += [asdict(c) for c in _batch(args.url, key, accounts)]
    for table in tables(args.label, cases):
        log.info("\n%s", render_table(*table))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--key-file", type=Path, help="default: <home>/.run/demo.key")
    p.add_argument("--features-dir", type=Path, help="default: <home>/data/features")
    p.add_argument("--label", default="sqlite", help="names the result files (the store)")
    args = p.parse_args(argv)
    setup_logging()
    run_main(lambda: run(args))


if __name__ == "__main__":
    main()
