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
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import (
    COMPARISON_HEADER,
    REDIS_URL,
    Comparison,
    comparison_rows,
    log_table,
    setup_logging,
    write_result,
)
from benchmarks.online_latency import (
    Server,
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

log = logging.getLogger(__name__)

NAME = "load_run"
ACCOUNTS = 2_000
WARM_UP_S = 15.0
RSS_EVERY_S = 5.0
STEADY_AIM = 2.0
RSS_AIM = 1.10


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


async def _one(client: httpx.AsyncClient, body: bytes, due_ns: int, start_ns: int) -> Sample:
    import httpx  # noqa: PLC0415

    try:
        response = await client.post("/v1/score", content=body)
        status = response.status_code
        if status != 200:
            log.warning("answer %d: %s", status, response.text[:200])
    except httpx.HTTPError as exc:
        status = -1
        log.warning("request failed: %s: %s", type(exc).__name__, exc)
    return Sample(
        at_s=(due_ns - start_ns) / 1e9,
        latency_ms=(time.perf_counter_ns() - due_ns) / 1e6,
        status=status,
    )


async def _fixed_rate(
    client: httpx.AsyncClient, bodies: list[bytes], rate: float, seconds: float
) -> list[Sample]:
    """Send rate x seconds requests, each at its scheduled moment, without waiting for any."""
    start_ns = time.perf_counter_ns()
    tasks = []
    for i in range(int(rate * seconds)):
        due_ns = start_ns + int(i * 1e9 / rate)
        delay = (due_ns - time.perf_counter_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(client, bodies[i % len(bodies)], due_ns, start_ns)))
    return list(await asyncio.gather(*tasks))


async def _watch_memory(pid: int, memory: Memory, stop_event: asyncio.Event) -> None:
    started = time.monotonic()
    while True:
        memory.at_s.append(time.monotonic() - started)
        memory.rss_mb.append(rss_mb(pid))
        memory.load_1m.append(os.getloadavg()[0])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), RSS_EVERY_S)
            return


async def _load(
    server: Server, key: str, bodies: list[bytes], rate: float, seconds: float
) -> tuple[list[Sample], Memory]:
    import httpx  # noqa: PLC0415

    headers = {"content-type": "application/json", "x-api-key": key}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=server.url, headers=headers, limits=limits, timeout=30.0
    ) as client:
        log.info("warm-up: %.0f s at %.0f requests/s", WARM_UP_S, rate)
        warm = await _fixed_rate(client, bodies, rate, WARM_UP_S)
        if any(s.status != 200 for s in warm):
            log.warning("%d errors during the warm-up", sum(s.status != 200 for s in warm))
        memory, done = Memory(), asyncio.Event()
        watcher = asyncio.create_task(_watch_memory(server.process.pid, memory, done))
        log.info("measuring: %.0f s at %.0f requests/s", seconds, rate)
        samples = await _fixed_rate(client, bodies, rate, seconds)
        done.set()
        await watcher
    return samples, memory


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


def report(result: dict[str, Any], items: list[Comparison]) -> None:
    v = result["verdicts"]
    log_table(
        f"load run: {result['rate']:.0f} requests/s for {result['minutes']:g} min, "
        f"POST /v1/score on Redis, {result['workers']} worker(s)",
        ("window from s", "requests", "errors", "p50 ms", "p99 ms", "max ms", "load 1m"),
        [
            [w["from_s"], w["requests"], w["errors"], w["p50_ms"], w["p99_ms"], w["max_ms"],
             w["load_1m"]]
            for w in result["windows"]
        ],
    )  # fmt: skip
    m = result["memory"]
    step = max(1, len(m["at_s"]) // 12)
    log_table(
        "scorer RSS (MB)",
        ("at s", "RSS MB", "load 1m"),
        [[m["at_s"][i], m["rss_mb"][i], m["load_1m"][i]] for i in range(0, len(m["at_s"]), step)],
    )
    log_table(
        "verdicts",
        ("check", "figure", "met"),
        [
            ["errors (must be 0)", v["errors"], "yes" if v["errors"] == 0 else "no"],
            [
                f"p99 steady: worst / median {result['window_s']:g} s window <= {STEADY_AIM:g}",
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
    )
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
        )
    ]


def measure(rate: float, minutes: float, workers: int, window_s: float) -> dict[str, Any]:
    import json  # noqa: PLC0415

    accounts = online_accounts(ACCOUNTS)
    bodies = [json.dumps({"account_id": a}).encode() for a in accounts.ids]
    key, keys_env = new_api_key()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cwload-")))
        port = free_port()
        env = scorer_env("redis", keys_env, workdir / "scorer")
        server = spawn("scorer", scorer_command(port, workers), env, workdir, "/readyz", port)
        stack.callback(stop, server)
        wait_ready(server)
        samples, memory = asyncio.run(_load(server, key, bodies, rate, minutes * 60))
        written_mb = sum(f.stat().st_size for f in (workdir / "scorer").rglob("*") if f.is_file())
    rows = windows(samples, memory, window_s)
    return {
        "rate": rate,
        "minutes": minutes,
        "workers": workers,
        "window_s": window_s,
        "verdicts": verdicts(samples, rows, memory),
        "windows": rows,
        "memory": asdict(memory),
        "logs_written_mb": written_mb / 2**20,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=3.0, help="measured minutes (default 3)")
    p.add_argument("--rate", type=float, default=50.0, help="requests per second (default 50)")
    p.add_argument("--workers", type=int, default=1, help="uvicorn workers (default 1)")
    p.add_argument("--window", type=float, default=30.0, help="seconds per window (default 30)")
    args = p.parse_args(argv)
    setup_logging()
    quiet_http_logs()
    os.environ.setdefault("REDIS_CONNECTION_STRING", REDIS_URL)
    result = measure(args.rate, args.minutes, args.workers, args.window)
    items = comparisons(result)
    report(result, items)
    write_result(NAME, result, items)
    if result["verdicts"]["errors"]:
        log.error("%d requests failed", result["verdicts"]["errors"])
        sys.exit(1)


if __name__ == "__main__":
    main()
