"""Throughput: requests per second at saturation for `collectwise serve --workers 2`, beside a
FastAPI hello endpoint and `feast serve` at the same worker count, and the scorer's tail at
80% of its own saturation rate.

Floor: the hello endpoint of benchmarks.scorer_harness (the scorer's request body parsed by
FastAPI, a small answer, nothing else) under `uvicorn --workers 2`. Peer: `feast serve
--workers 2` (gunicorn with uvicorn workers) answering get-online-features for
collection_risk_v1 with the same entities and request data. Aim of the issue: the scorer's
saturation rate >= 0.5x the hello endpoint's.

Each server runs in its own subprocess with the same number of workers, on the run's own
store (SQLite by default, `--backend redis` for Redis). Every request is a POST of one
account: /v1/score with reason codes (the scorer's default), the same bodies
benchmarks.online_latency sends; the peer gets the equivalent get-online-features body.
The scorer runs with its production defaults (audit and served-feature logs on, into a
temporary directory; admission control at its default slots per worker) and one API key
whose rate limit is lifted, so the limiter never answers 429.

Two measurements per server, each for --seconds:

- saturation, closed loop: --concurrency requests always in flight (default 16: enough to
  keep 2 workers busy on a 2-core machine), after a short warm-up at the same concurrency;
  rate = answers with 200 / wall seconds. Answers other than 200 are counted as errors.
- 80%, open loop (scorer and peer): request i leaves at start + i / rate whatever became of
  the ones before, rate = 80% of the server's own saturation rate, and its latency counts
  from that scheduled moment (as benchmarks.load_run: no coordinated omission); p50, p99
  and max are reported with the errors.

The driver (one httpx.AsyncClient) runs in this process and needs CPU too: on a 2-core
machine it competes with the server's workers, so every figure comes with the CPU seconds
of the server (its processes and workers) and of this process over the same window. A
server that cannot take more than the cores the driver leaves it is reported as such.

Inputs: the demo's feature tables and champion model (`make demo`), `feast` in the venv,
and Redis with `--backend redis`; each is checked first, and a missing one ends the run
with a line saying what to run. The features are materialised into the run's own Feast
project (benchmarks.scorer_harness.bench_stores), removed afterwards. The JSON and tables
(benchmarks/results/throughput.{json,md}) are rewritten after every stage.

    python -m benchmarks.throughput                 # 20 s per stage, concurrency 16
    python -m benchmarks.throughput --quick         # 5 s per stage
    python -m benchmarks.throughput --backend redis --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import (
    COMPARISON_HEADER,
    Comparison,
    comparison_rows,
    log_table,
    setup_logging,
)
from benchmarks.harness import (
    Progress,
    Table,
    redis_url,
    require_champion,
    require_demo_features,
    require_executable,
    require_redis,
    run_main,
)
from benchmarks.online_latency import (
    TRIED,
    Driven,
    ServerSpec,
    Target,
    bench_client,
    check_answer,
    server_cpu_seconds,
    start_servers,
    stats,
    targets,
)
from benchmarks.scorer_harness import (
    BACKENDS,
    VENV_BIN,
    Server,
    bench_stores,
    hello_command,
    new_api_key,
    online_accounts,
    peer_command,
    quiet_http_logs,
    scorer_command,
    scorer_env,
)

if TYPE_CHECKING:
    import httpx

    from benchmarks.scorer_harness import BenchStores
    from collectwise.settings import Settings

log = logging.getLogger(__name__)

NAME = "throughput"
ACCOUNTS = 2_000
WORKERS = 2
CONCURRENCY = 16
OPEN_LOOP_SHARE = 0.8
# Connections the open-loop driver may hold: enough for the queue of a server at 80% of its
# rate, as benchmarks.load_run.
OPEN_LOOP_CONNECTIONS = 64
HELLO_AIM = 0.5
# The driver is one asyncio loop, so at most one core: from this share of a core on, the
# rate it measured is the driver's as much as the server's.
DRIVER_BOUND = 0.8
# How the tables name each server.
WHO = {"hello": "FastAPI hello", "peer": "feast serve", "scorer": "collectwise serve"}
OPEN_LOOP = ("peer", "scorer")


@dataclass(frozen=True)
class Plan:
    seconds: float
    warm_seconds: float
    concurrency: int
    workers: int
    backend: str


FULL_SECONDS, FULL_WARM = 20.0, 3.0
QUICK_SECONDS, QUICK_WARM = 5.0, 1.0


# --- driving ----------------------------------------------------------------------------------


async def _post(
    http: httpx.AsyncClient, target: Target, body: bytes, since_ns: int, out: Driven
) -> None:
    """One request, its latency counted from `since_ns`; a failure without an answer is
    counted under status -1."""
    import httpx  # noqa: PLC0415

    try:
        response = await http.post(target.path, content=body)
    except httpx.HTTPError as exc:
        out.errors[-1] = out.errors.get(-1, 0) + 1
        if out.first_error is None:
            out.first_error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("request failed: %s", out.first_error)
    else:
        if response.status_code != 200:
            out.error(response)
    out.samples.append(time.perf_counter_ns() - since_ns)


async def _closed_loop(
    http: httpx.AsyncClient, target: Target, concurrency: int, seconds: float, out: Driven
) -> None:
    """`concurrency` requests in flight until `seconds` have passed; the last ones finish."""
    counter = itertools.count()
    bodies = target.bodies
    deadline = time.perf_counter_ns() + int(seconds * 1e9)

    async def worker() -> None:
        while time.perf_counter_ns() < deadline:
            body = bodies[next(counter) % len(bodies)]
            await _post(http, target, body, time.perf_counter_ns(), out)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _open_loop(
    http: httpx.AsyncClient, target: Target, rate: float, seconds: float, out: Driven
) -> None:
    """rate x seconds requests, each sent at its scheduled moment without waiting for the
    ones before (benchmarks.load_run's driver, for any path)."""
    start_ns = time.perf_counter_ns()
    tasks = []
    for i in range(int(rate * seconds)):
        due_ns = start_ns + int(i * 1e9 / rate)
        delay = (due_ns - time.perf_counter_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        body = target.bodies[i % len(target.bodies)]
        tasks.append(asyncio.create_task(_post(http, target, body, due_ns, out)))
    await asyncio.gather(*tasks)


async def _timed(server: Server, run: Callable[[Driven], Awaitable[None]]) -> dict[str, Any]:
    """`run` timed: wall seconds, the answers, and the CPU of the server and of this process."""
    out = Driven()
    server_cpu, driver_cpu = server_cpu_seconds(server), time.process_time()
    started = time.perf_counter()
    await run(out)
    wall = time.perf_counter() - started
    cpu = {
        "server": server_cpu_seconds(server) - server_cpu,
        "driver": time.process_time() - driver_cpu,
    }
    figures = summary(out, wall)
    for who, seconds in cpu.items():
        figures[f"{who}_cpu_s"] = seconds
        figures[f"{who}_cores"] = seconds / wall
        # Per request: unlike the rate, hardly moved by other work on the machine.
        figures[f"{who}_cpu_ms_per_request"] = seconds * 1000 / max(len(out.samples), 1)
    figures["driver_bound"] = figures["driver_cores"] >= DRIVER_BOUND
    figures["load_1m"] = os.getloadavg()[0]
    return figures


def summary(out: Driven, wall: float) -> dict[str, Any]:
    errors = sum(out.errors.values())
    ok = len(out.samples) - errors
    return {
        "wall_s": wall,
        "requests": len(out.samples),
        "ok": ok,
        "rate_per_s": ok / wall,
        "errors": errors,
        "errors_by_status": {str(k): v for k, v in out.errors.items()},
        "first_error": out.first_error,
        **(stats(out.samples) if out.samples else {}),
    }


async def _saturate(server: Server, key: str, target: Target, plan: Plan) -> dict[str, Any]:
    async with bench_client(server, key, plan.concurrency) as http:
        check_answer(target, await http.post(target.path, content=target.bodies[0]))
        await _closed_loop(http, target, plan.concurrency, plan.warm_seconds, Driven())
        loop = partial(_closed_loop, http, target, plan.concurrency, plan.seconds)
        return {"concurrency": plan.concurrency, **await _timed(server, loop)}


async def _at_rate(
    server: Server, key: str, target: Target, rate: float, seconds: float
) -> dict[str, Any]:
    async with bench_client(server, key, OPEN_LOOP_CONNECTIONS) as http:
        loop = partial(_open_loop, http, target, rate, seconds)
        return {"offered_per_s": rate, **await _timed(server, loop)}


def saturate(server: Server, key: str, target: Target, plan: Plan) -> dict[str, Any]:
    """The closed-loop rate at plan.concurrency, after a warm-up; the first answer must be
    right (else the configuration is broken and the run stops)."""
    return asyncio.run(_saturate(server, key, target, plan))


def at_rate(
    server: Server, key: str, target: Target, rate: float, seconds: float
) -> dict[str, Any]:
    return asyncio.run(_at_rate(server, key, target, rate, seconds))


# --- servers and targets ----------------------------------------------------------------------


def server_specs(
    plan: Plan, keys: str, workdir: Path, stores: BenchStores, home: Path
) -> dict[str, ServerSpec]:
    """The hello app, feast serve and the scorer, each with plan.workers workers, named as
    online_latency's targets name their servers."""
    env = dict(os.environ) | {"REDIS_CONNECTION_STRING": redis_url()}
    profile = stores.profiles[plan.backend]
    scorer = scorer_env(profile, keys, workdir / "scorer", home)
    return {
        "hello": ServerSpec(partial(hello_command, workers=plan.workers), env, "/healthz"),
        f"peer_{plan.backend}": ServerSpec(
            partial(peer_command, profile, workers=plan.workers), env, "/health"
        ),
        f"scorer_{plan.backend}": ServerSpec(
            partial(scorer_command, workers=plan.workers), scorer, "/readyz"
        ),
    }


def pick(configs: list[Target], backend: str) -> dict[str, Target]:
    """One account per request: hello, feast serve and /v1/score with reason codes."""
    wanted = {
        "hello": ("hello", "-", "-"),
        "peer": ("peer", backend, "-"),
        "scorer": ("scorer", backend, "reasons"),
    }
    single = {(t.who, t.backend, t.variant): t for t in configs if t.kind == "single"}
    return {name: single[spec] for name, spec in wanted.items()}


# --- the run ----------------------------------------------------------------------------------


def stage_names() -> list[str]:
    stages = ["stores", "servers", "saturation: hello"]
    for who in OPEN_LOOP:
        stages += [f"saturation: {who}", f"80%: {who}"]
    return stages


def measure(plan: Plan, progress: Progress, settings: Settings) -> None:
    """Stores, servers, then each server's stages in turn; every figure goes into
    progress.payload (and the comparisons into progress.comparisons) as soon as it exists."""
    result = progress.payload
    features = settings.paths.features_dir
    with ExitStack() as stack:
        with progress.stage("stores"):
            stores = stack.enter_context(bench_stores(features, (plan.backend,)))
            store = stores.stores[plan.backend]
            accounts = online_accounts(ACCOUNTS, features, [store])
            result |= {"feast_project": stores.project, "accounts_sampled": len(accounts.ids)}
        key, keys_env = new_api_key()
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cwthroughput-")))
        with progress.stage("servers"):
            specs = server_specs(plan, keys_env, workdir, stores, settings.home)
            servers = start_servers(stack, specs, workdir)
        chosen = pick(targets(accounts), plan.backend)
        gc.collect()
        gc.freeze()
        for who, target in chosen.items():
            drive_server(who, servers[target.server], key, target, plan, progress)


def drive_server(
    who: str, server: Server, key: str, target: Target, plan: Plan, progress: Progress
) -> None:
    result = progress.payload
    with progress.stage(f"saturation: {who}"):
        figures = saturate(server, key, target, plan)
        result["saturation"][who] = figures
        log_stage(f"{WHO[who]}, saturation at concurrency {plan.concurrency}", figures)
    progress.comparisons[:] = comparisons(result)
    if who not in OPEN_LOOP:
        return
    with progress.stage(f"80%: {who}"):
        rate = OPEN_LOOP_SHARE * figures["rate_per_s"]
        figures = at_rate(server, key, target, rate, plan.seconds)
        result["at_80"][who] = figures
        log_stage(f"{WHO[who]}, open loop at {rate:.0f}/s", figures)
    progress.comparisons[:] = comparisons(result)


def log_stage(what: str, f: dict[str, Any]) -> None:
    log.info(
        "%s: %.0f answers/s, p50 %.1f ms, p99 %.1f ms, errors %d; server %.2f cores, "
        "driver %.2f cores",
        what,
        f["rate_per_s"],
        f.get("p50_ms", float("nan")),
        f.get("p99_ms", float("nan")),
        f["errors"],
        f["server_cores"],
        f["driver_cores"],
    )
    if f["driver_bound"]:
        log.warning(
            "%s: the driver used %.2f of its one core: the rate is as much the driver's limit "
            "as the server's (server CPU %.2f ms per request)",
            what,
            f["driver_cores"],
            f["server_cpu_ms_per_request"],
        )


# --- report -----------------------------------------------------------------------------------


def comparisons(result: dict[str, Any]) -> list[Comparison]:
    """Scorer / hello and scorer / feast serve at saturation, and the p99 at 80% of each
    one's own rate, for whatever has been measured so far."""
    sat, at_80 = result["saturation"], result["at_80"]
    out = []
    scorer = sat.get("scorer")
    for who, aim in (("hello", f">= {HELLO_AIM:g}x"), ("peer", "")):
        if scorer and who in sat:
            out.append(rate_comparison(result, scorer, sat[who], who, aim))
    if scorer and "hello" in sat:
        out.append(cpu_comparison(scorer, sat["hello"]))
    if "scorer" in at_80 and "peer" in at_80:
        s, p = at_80["scorer"], at_80["peer"]
        out.append(
            Comparison(
                benchmark=NAME,
                case=f"p99 at 80% of own saturation rate, open loop: {WHO['scorer']} "
                f"({s['offered_per_s']:.0f}/s) / {WHO['peer']} ({p['offered_per_s']:.0f}/s)",
                real_seconds=s["p99_ms"] / 1000,
                floor_seconds=p["p99_ms"] / 1000,
                real_rate=s["offered_per_s"],
                floor_rate=p["offered_per_s"],
                rate_unit="requests/s offered",
                ratio=s["p99_ms"] / p["p99_ms"],
                ratio_kind="p99 ratio",
            )
        )
    return out


def rate_comparison(
    result: dict[str, Any], scorer: dict[str, Any], other: dict[str, Any], who: str, aim: str
) -> Comparison:
    return Comparison(
        benchmark=NAME,
        case=f"requests/s at saturation, {result['workers']} workers, concurrency "
        f"{result['concurrency']}, {result['backend']}: {WHO['scorer']} / {WHO[who]}",
        real_seconds=1 / scorer["rate_per_s"],
        floor_seconds=1 / other["rate_per_s"],
        real_rate=scorer["rate_per_s"],
        floor_rate=other["rate_per_s"],
        rate_unit="requests/s",
        ratio=scorer["rate_per_s"] / other["rate_per_s"],
        ratio_kind="real/floor requests/s",
        aim=aim,
        profile=cpu_split(result),
        tried=TRIED["single"],
    )


def cpu_split(result: dict[str, Any]) -> dict[str, Any]:
    """At saturation the rate is the cores over the CPU a request costs: each server's CPU
    per request (the scorer's handler profile is online_latency's, in its section)."""
    rows = []
    for who, figures in result["saturation"].items():
        rows += [
            [f"{WHO[who]}: server CPU ms/request", figures.get("server_cpu_ms_per_request")],
            [f"{WHO[who]}: requests/s", figures.get("rate_per_s")],
        ]
    what = "server CPU per request at saturation, and the rate it gave"
    return {"what": what, "stages": rows, "stage_unit": "value"}


# Columns of the tables: a header and the figure each shows.
COLUMNS = (
    ("answers/s", "rate_per_s"),
    ("requests", "requests"),
    ("errors", "errors"),
    ("p50 ms", "p50_ms"),
    ("p99 ms", "p99_ms"),
    ("max ms", "max_ms"),
    ("server cores", "server_cores"),
    ("server CPU ms/req", "server_cpu_ms_per_request"),
    ("driver cores", "driver_cores"),
    ("load 1m", "load_1m"),
)


def cpu_comparison(scorer: dict[str, Any], hello: dict[str, Any]) -> Comparison:
    """The rate ratio the two would reach with the cores to themselves: server CPU per
    request of the hello over the scorer's, at saturation (driver and other jobs aside)."""
    real, floor = scorer["server_cpu_ms_per_request"], hello["server_cpu_ms_per_request"]
    return Comparison(
        benchmark=NAME,
        case=f"server CPU per request at saturation: {WHO['hello']} / {WHO['scorer']} "
        "(the rate ratio with the cores to themselves)",
        real_seconds=real / 1000,
        floor_seconds=floor / 1000,
        ratio=floor / real,
        ratio_kind="floor/real CPU s per request",
    )


def tables(result: dict[str, Any]) -> list[Table]:
    """The stages measured so far: saturation and 80% rows."""
    header = ("server", *(name for name, _ in COLUMNS))
    out: list[Table] = []
    for title, key in (
        (f"saturation, closed loop at concurrency {result['concurrency']}", "saturation"),
        ("80% of each one's saturation rate, open loop", "at_80"),
    ):
        rows = [
            [row_name(who, f), *(f.get(k) for _, k in COLUMNS)] for who, f in result[key].items()
        ]
        if rows:
            suffix = f", {result['workers']} workers each, {result['backend']}"
            out.append((title + suffix, header, rows))
    return out


def row_name(who: str, figures: dict[str, Any]) -> str:
    offered = figures.get("offered_per_s")
    return WHO[who] + (f" at {offered:.0f}/s" if offered is not None else "")


def report(result: dict[str, Any], items: list[Comparison]) -> None:
    for table in tables(result):
        log_table(*table)
    log_table("ratios", COMPARISON_HEADER, comparison_rows(items))


NOTES = [
    "answers/s = answers with status 200 / wall seconds of the stage (in-flight requests "
    "at the end finish and count)",
    "one request = one account: /hello, get-online-features, /v1/score with reason codes",
    "the driver (httpx.AsyncClient, this process) shares the machine's cores with the server: "
    "driver cores and server cores are CPU seconds / wall seconds over the same window",
    "80%: open loop, latency from each request's scheduled moment (no coordinated omission)",
    "scorer: production defaults (audit + served logs on), admission control at its default "
    "slots per worker: excess requests queue (up to its wait) rather than fail",
]


def check_inputs(settings: Settings, backend: str) -> None:
    """Everything the run needs, before it starts anything."""
    require_demo_features(settings)
    require_champion(settings)
    if backend == "redis":
        require_redis(why=" (--backend redis reads it)")
    for name in ("collectwise", "feast"):
        require_executable(VENV_BIN / name)


def run(plan: Plan) -> None:
    from collectwise.settings import get_settings  # noqa: PLC0415

    settings = get_settings()
    check_inputs(settings, plan.backend)
    with Progress(NAME, stage_names()) as progress:
        progress.payload |= {
            **plan.__dict__,
            "open_loop_share": OPEN_LOOP_SHARE,
            "notes": NOTES,
            "saturation": {},
            "at_80": {},
        }
        progress.tables = lambda: tables(progress.payload)
        measure(plan, progress, settings)
        report(progress.payload, progress.comparisons)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS:g} s per stage")
    p.add_argument("--seconds", type=float, help=f"seconds per stage (default {FULL_SECONDS:g})")
    p.add_argument("--concurrency", type=int, default=CONCURRENCY, help="closed-loop requests")
    p.add_argument("--workers", type=int, default=WORKERS, help="workers of every server")
    p.add_argument("--backend", choices=BACKENDS, default="sqlite", help="online store")
    args = p.parse_args(argv)
    setup_logging()
    quiet_http_logs()
    seconds, warm = (QUICK_SECONDS, QUICK_WARM) if args.quick else (FULL_SECONDS, FULL_WARM)
    plan = Plan(args.seconds or seconds, warm, args.concurrency, args.workers, args.backend)
    run_main(lambda: run(plan))


if __name__ == "__main__":
    main()
