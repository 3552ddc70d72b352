"""A steady load on `collectwise serve` with the Redis online store: a fixed request rate for
several minutes, to see that nothing fails, the tail stays put and memory does not grow.

Requests go out open-loop: request i leaves at start + i / rate whatever became of the ones
before, and its latency counts from that scheduled moment, so a slow answer cannot hide the
queue behind it (no coordinated omission). Each is a POST /v1/score for one account of the
newest snapshot (reason codes on, the endpoint's default), from one httpx.AsyncClient in
this process. The scorer runs as `collectwise serve` in a subprocess with its production
defaults (audit and served-feature logs on, into a temporary directory); its API key has
the rate limit lifted so the limiter never answers 429.

Reported per 30 s window: requests, errors, p50 / p99 / max latency and the load average;
the scorer's resident memory (its process and workers, psutil) every 5 s. Verdicts: no
errors (the run exits 1 otherwise), p99 steady (worst window <= 2x the median window) and
RSS flat (grows <= 10% from the first sample after warm-up to the last).

Inputs: the demo's feature tables and champion model (`make demo`) and Redis, checked
first; a missing one ends the run with a line saying what to run. The features are
materialised into Redis under the run's own Feast project (cwbench_online_<random>, keys
deleted afterwards), so the demo's store and other runs on the same Redis are never read or
written. The JSON and tables are rewritten after each stage, and the measured minutes are
written window by window, so a run stopped halfway leaves what it measured.

    python -m benchmarks.load_run                 # 50 requests/s for 3 minutes
    python -m benchmarks.load_run --minutes 1 --rate 100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import (
    COMPARISON_HEADER,
    Comparison,
    comparison_rows,
    fmt,
    log_table,
    setup_logging,
)
from benchmarks.harness import (
    Progress,
    Table,
    require_champion,
    require_demo_features,
    require_executable,
    require_redis,
    run_main,
)
from benchmarks.scorer_harness import (
    VENV_BIN,
    Server,
    bench_stores,
    free_port,
    new_api_key,
    online_accounts,
    quiet_http_logs,
    scorer_command,
    scorer_env,
    spawn,
    stop,
    wait_ready,
)

if TYPE_CHECKING:
    import httpx

    from collectwise.settings import Settings

log = logging.getLogger(__name__)

NAME = "load_run"
ACCOUNTS = 2_000
WARM_UP_S = 15.0
RSS_EVERY_S = 5.0
STEADY_AIM = 2.0
RSS_AIM = 1.10
# The partial results are rewritten this often during the measured minutes.
WINDOW_WRITE_S = 30.0


@dataclass(frozen=True)
class Sample:
    at_s: float  # scheduled send time, from the start of the measured run
    latency_ms: float  # from the scheduled send time to the whole answer read
    status: int  # HTTP status; -1 when the request failed without one


@dataclass
class Memory:
    at_s: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    load_1m: list[float] = field(default_factory=list)


def rss_mb(pid: int) -> float:
    import psutil  # noqa: PLC0415

    process = psutil.Process(pid)
    total = 0
    for proc in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total / 2**20


async def _one(
    client: httpx.AsyncClient, body: bytes, due_ns: int, start_ns: int, out: list[Sample]
) -> None:
    import httpx  # noqa: PLC0415

    try:
        response = await client.post("/v1/score", content=body)
        status = response.status_code
        if status != 200:
            log.warning("answer %d: %s", status, response.text[:200])
    except httpx.HTTPError as exc:
        status = -1
        log.warning("request failed: %s: %s", type(exc).__name__, exc)
    # Appended as each answer arrives, so a run stopped halfway keeps what it measured.
    out.append(
        Sample(
            at_s=(due_ns - start_ns) / 1e9,
            latency_ms=(time.perf_counter_ns() - due_ns) / 1e6,
            status=status,
        )
    )


async def _fixed_rate(
    client: httpx.AsyncClient, bodies: list[bytes], rate: float, seconds: float, out: list[Sample]
) -> None:
    """Send rate x seconds requests, each at its scheduled moment, without waiting for any;
    their samples go to `out` as they are answered."""
    start_ns = time.perf_counter_ns()
    tasks = []
    for i in range(int(rate * seconds)):
        due_ns = start_ns + int(i * 1e9 / rate)
        delay = (due_ns - time.perf_counter_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        body = bodies[i % len(bodies)]
        tasks.append(asyncio.create_task(_one(client, body, due_ns, start_ns, out)))
    await asyncio.gather(*tasks)


@dataclass
class Measured:
    """What the measured minutes produced so far, filled while they run."""

    samples: list[Sample] = field(default_factory=list)
    memory: Memory = field(default_factory=Memory)


async def _watch_memory(
    pid: int, memory: Memory, stop_event: asyncio.Event, every_window: Callable[[], None]
) -> None:
    """RSS every RSS_EVERY_S; `every_window` called after each window has passed."""
    started = time.monotonic()
    windows_done = 0
    while True:
        memory.at_s.append(time.monotonic() - started)
        memory.rss_mb.append(rss_mb(pid))
        memory.load_1m.append(os.getloadavg()[0])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), RSS_EVERY_S)
            return
        passed = int((time.monotonic() - started) // WINDOW_WRITE_S)
        if passed > windows_done:
            windows_done = passed
            every_window()


async def _load(
    server: Server,
    key: str,
    bodies: list[bytes],
    rate: float,
    seconds: float,
    measured: Measured,
    every_window: Callable[[], None],
) -> None:
    import httpx  # noqa: PLC0415

    headers = {"content-type": "application/json", "x-api-key": key}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=server.url, headers=headers, limits=limits, timeout=30.0
    ) as client:
        log.info("warm-up: %.0f s at %.0f requests/s", WARM_UP_S, rate)
        warm: list[Sample] = []
        await _fixed_rate(client, bodies, rate, WARM_UP_S, warm)
        if any(s.status != 200 for s in warm):
            log.warning("%d errors during the warm-up", sum(s.status != 200 for s in warm))
        done = asyncio.Event()
        watcher = asyncio.create_task(
            _watch_memory(server.process.pid, measured.memory, done, every_window)
        )
        log.info("measuring: %.0f s at %.0f requests/s", seconds, rate)
        try:
            await _fixed_rate(client, bodies, rate, seconds, measured.samples)
        finally:
            done.set()
            await watcher


# --- summary -------------------------------------------------------------------------------


def windows(samples: list[Sample], memory: Memory, window_s: float) -> list[dict[str, Any]]:
    import numpy as np  # noqa: PLC0415

    groups: dict[int, list[Sample]] = {}
    for s in samples:
        groups.setdefault(int(s.at_s // window_s), []).append(s)
    out = []
    for index in sorted(groups):
        group = groups[index]
        ms = np.asarray([s.latency_ms for s in group])
        end = (index + 1) * window_s
        loads = [la for t, la in zip(memory.at_s, memory.load_1m, strict=True) if t <= end]
        out.append(
            {
                "from_s": index * window_s,
                "requests": len(group),
                "errors": sum(s.status != 200 for s in group),
                "p50_ms": float(np.percentile(ms, 50)),
                "p99_ms": float(np.percentile(ms, 99)),
                "max_ms": float(ms.max()),
                "load_1m": loads[-1] if loads else None,
            }
        )
    return out


def verdicts(samples: list[Sample], rows: list[dict[str, Any]], memory: Memory) -> dict[str, Any]:
    import numpy as np  # noqa: PLC0415

    p99s = [w["p99_ms"] for w in rows if w["requests"] >= 0.5 * rows[0]["requests"]]
    worst, typical = max(p99s), statistics.median(p99s)
    start, end = memory.rss_mb[0], memory.rss_mb[-1]
    slope = (
        float(np.polyfit(memory.at_s, memory.rss_mb, 1)[0] * 60) if len(memory.at_s) > 2 else 0.0
    )
    ms = np.asarray([s.latency_ms for s in samples])
    statuses: dict[str, int] = {}
    for s in samples:
        if s.status != 200:
            statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    return {
        "requests": len(samples),
        "errors": sum(statuses.values()),
        "errors_by_status": statuses,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "worst_window_p99_ms": worst,
        "median_window_p99_ms": typical,
        "p99_steady": worst <= STEADY_AIM * typical,
        "rss_start_mb": start,
        "rss_end_mb": end,
        "rss_max_mb": max(memory.rss_mb),
        "rss_slope_mb_per_min": slope,
        "rss_flat": end <= RSS_AIM * start,
    }


def tables(result: dict[str, Any]) -> list[Table]:
    """The windows, RSS and verdicts measured so far (none before the measured minutes)."""
    if "verdicts" not in result:
        return []
    v = result["verdicts"]
    m = result["memory"]
    step = max(1, len(m["at_s"]) // 12)
    return [
        (
            f"load run: {result['rate']:.0f} requests/s for {result['minutes']:g} min, "
            f"POST /v1/score on Redis, {result['workers']} worker(s)",
            ("window from s", "requests", "errors", "p50 ms", "p99 ms", "max ms", "load 1m"),
            [
                [w["from_s"], w["requests"], w["errors"], w["p50_ms"], w["p99_ms"], w["max_ms"],
                 w["load_1m"]]
                for w in result["windows"]
            ],
        ),
        (
            "scorer RSS (MB)",
            ("at s", "RSS MB", "load 1m"),
            [[m["at_s"][i], m["rss_mb"][i], m["load_1m"][i]]
             for i in range(0, len(m["at_s"]), step)],
        ),
        (
            "verdicts",
            ("check", "figure", "met"),
            [
                ["errors (must be 0)", v["errors"], "yes" if v["errors"] == 0 else "no"],
                [
                    f"p99 steady: worst / median {result['window_s']:g} s window "
                    f"<= {STEADY_AIM:g}",
                    v["worst_window_p99_ms"] / v["median_window_p99_ms"],
                    "yes" if v["p99_steady"] else "no",
                ],
                [
                    f"RSS flat: end / start <= {RSS_AIM:g} ({v['rss_start_mb']:.0f} -> "
                    f"{v['rss_end_mb']:.0f} MB, {v['rss_slope_mb_per_min']:+.2f} MB/min)",
                    v["rss_end_mb"] / v["rss_start_mb"],
                    "yes" if v["rss_flat"] else "no",
                ],
            ],
        ),
    ]  # fmt: skip


def report(result: dict[str, Any], items: list[Comparison]) -> None:
    for table in tables(result):
        log_table(*table)
    log_table("ratio", COMPARISON_HEADER, comparison_rows(items))


def comparisons(result: dict[str, Any]) -> list[Comparison]:
    v = result["verdicts"]
    rss = f"RSS {v['rss_start_mb']:.0f}->{v['rss_end_mb']:.0f} MB"
    return [
        Comparison(
            benchmark=NAME,
            case=f"{result['rate']:.0f}/s x {result['minutes']:g} min: errors {v['errors']}, "
            f"{rss}; p99 worst / median {result['window_s']:g} s window",
            real_seconds=v["worst_window_p99_ms"] / 1000,
            floor_seconds=v["median_window_p99_ms"] / 1000,
            ratio=v["worst_window_p99_ms"] / v["median_window_p99_ms"],
            ratio_kind="worst/median window p99",
            aim=f"<= {STEADY_AIM:g}x",
            tried=TRIED,
            # A window's tail beside the machine's load then: a late rise with the load
            # flat points at the scorer (memory, queues), one with the load at others.
            profile={
                "what": "p99 ms per window, with the 1-minute load average then",
                "stage_unit": "p99 ms",
                "stages": [
                    [f"window from {w['from_s']:g} s (load {fmt(w['load_1m'])})", w["p99_ms"]]
                    for w in result["windows"]
                ],
            },
        )
    ]


TRIED = (
    "The scorer freezes what it built at start out of the garbage collector's way (gc.freeze "
    "after start-up), so no full collection walks Feast's and the model's objects.",
    "The served log converts events to Arrow as they arrive and flushes in cycles of at most "
    "250 events, with no GIL-holding burst every flush (4c2c43e).",
    "A warm-up at the same rate runs before the measured minutes; the first window can still "
    "carry what ran on the machine before the run (the load average beside each window).",
)

STAGES = ["store", "scorer", "measured run"]


def measure(progress: Progress, settings: Settings) -> None:
    """The run's own Redis store, the scorer on it, then the measured minutes; each result
    goes into progress.payload as soon as it exists."""
    import json  # noqa: PLC0415

    result = progress.payload
    features = settings.paths.features_dir
    with ExitStack() as stack:
        with progress.stage("store"):
            stores = stack.enter_context(bench_stores(features, ("redis",)))
            accounts = online_accounts(ACCOUNTS, features, [stores.stores["redis"]])
            result["feast_project"] = stores.project
        bodies = [json.dumps({"account_id": a}).encode() for a in accounts.ids]
        key, keys_env = new_api_key()
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cwload-")))
        with progress.stage("scorer"):
            port = free_port()
            env = scorer_env(stores.profiles["redis"], keys_env, workdir / "scorer", settings.home)
            command = scorer_command(port, result["workers"])
            server = spawn("scorer", command, env, workdir, "/readyz", port)
            stack.callback(stop, server)
            wait_ready(server)
        with progress.stage("measured run"):
            run_load(server, key, bodies, progress, workdir / "scorer")


def run_load(server: Server, key: str, bodies: list[bytes], progress: Progress, logs: Path) -> None:
    """The measured minutes; the summary of what was answered so far is rewritten every
    window and once more however they end."""
    result, measured = progress.payload, Measured()

    def every_window() -> None:
        summarise(progress, measured)
        progress.write()

    seconds = result["minutes"] * 60
    try:
        asyncio.run(_load(server, key, bodies, result["rate"], seconds, measured, every_window))
    finally:
        summarise(progress, measured)
        result["logs_written_mb"] = (
            sum(f.stat().st_size for f in logs.rglob("*") if f.is_file()) / 2**20
        )


def summarise(progress: Progress, measured: Measured) -> None:
    """Windows, memory and verdicts over the samples answered so far."""
    result = progress.payload
    samples = list(measured.samples)  # the event loop may append while this runs
    if not samples or not measured.memory.rss_mb:
        return
    rows = windows(samples, measured.memory, result["window_s"])
    result |= {
        "verdicts": verdicts(samples, rows, measured.memory),
        "windows": rows,
        "memory": asdict(measured.memory),
    }
    progress.comparisons[:] = comparisons(result)


def check_inputs(settings: Settings) -> None:
    require_demo_features(settings)
    require_champion(settings)
    require_redis(why=" (the scorer under load reads it)")
    require_executable(VENV_BIN / "collectwise")


def run(args: argparse.Namespace) -> None:
    from collectwise.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    check_inputs(settings)
    with Progress(NAME, list(STAGES)) as progress:
        progress.payload |= {
            "rate": args.rate,
            "minutes": args.minutes,
            "workers": args.workers,
            "window_s": args.window,
        }
        progress.tables = lambda: tables(progress.payload)
        measure(progress, settings)
        report(progress.payload, progress.comparisons)
    errors = progress.payload.get("verdicts", {}).get("errors", 0)
    if errors:
        log.error("%d requests failed", errors)
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=3.0, help="measured minutes (default 3)")
    p.add_argument("--rate", type=float, default=50.0, help="requests per second (default 50)")
    p.add_argument("--workers", type=int, default=1, help="uvicorn workers (default 1)")
    p.add_argument("--window", type=float, default=30.0, help="seconds per window (default 30)")
    args = p.parse_args(argv)
    setup_logging()
    quiet_http_logs()
    run_main(lambda: run(args))


if __name__ == "__main__":
    main()
