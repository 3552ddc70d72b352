"""A book bigger than one machine's memory: generate, validate and build the features at
1,000,000 and 10,000,000 accounts x 24 months, on DuckDB and on Spark local mode.

Each stage is the real command a data engineer runs, in its own process:

    collectwise generate --accounts N --months 24 --out W/raw
    collectwise validate --raw W/raw --out W/validated ... --memory-limit 6GB
    collectwise build-features --raw W/validated --out W/duckdb --memory-limit 6GB \
        --partitions P   # 1 up to 1M accounts, then one per 500,000
    collectwise build-features --engine spark --raw W/validated --out W/spark \
        --spark-conf spark.driver.memory=6g

For each it reports the wall time, the peak resident memory of the whole process tree
(Spark's JVM included; sampled every 0.25 s) and what it wrote on disk. Bounded memory
means the peak stays flat while the size grows tenfold. The comparison is DuckDB against
Spark on the same validated tables, which must agree on every table's row count.

    python -m benchmarks.bench_scale                                  # 1,000,000, both engines
    python -m benchmarks.bench_scale --sizes 1000000 10000000         # and 10M on DuckDB
    python -m benchmarks.bench_scale --sizes 10000 --spark-sizes 10000 --work /tmp/w   # a try
    python -m benchmarks.bench_scale --sizes 10000000 --spark-sizes --work W --resume  # go on

The work folder (a temporary one by default, removed after) needs about 45 GB at 10M.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from benchmarks.common import environment, setup_logging
from benchmarks.harness import Progress, Table, run_main

log = logging.getLogger(__name__)

NAME = "scale"
MONTHS = 24
SAMPLE_S = 0.25
DUCKDB_MEMORY = "6GB"
SPARK_DRIVER_MEMORY = "6g"
PARTITION_ACCOUNTS = 500_000


@dataclass
class StageRun:
    size: int
    stage: str
    seconds: float
    peak_rss_mb: float
    disk_mb: float
    exit_code: int
    rows: dict[str, int] | None = None


def cli() -> str:
    return str(Path(sys.executable).parent / "collectwise")


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants (a JVM is a child of Python)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:  # gone between listing and reading
            continue
    return total


def measured(command: list[str], log_file: Path) -> tuple[float, float, int]:
    """Run a command to its end: (seconds, peak tree RSS in MB, exit code)."""
    started = time.perf_counter()
    with log_file.open("w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        peak = 0
        watched = psutil.Process(child.pid)
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                try:
                    peak = max(peak, tree_rss(watched))
                except psutil.Error:
                    return
                stop.wait(SAMPLE_S)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = child.wait()
        stop.set()
        sampler.join()
    return time.perf_counter() - started, peak / 2**20, code


def disk_mb(path: Path) -> float:
    if not path.exists():
        return 0.0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def partitions(size: int) -> int:
    """Slices of the book for the DuckDB build: one up to 1M accounts; beyond, slices of
    500,000 (at 10M the one-pass build's spill outgrew the 42 GB of free disk)."""
    return 1 if size <= 1_000_000 else -(-size // PARTITION_ACCOUNTS)


def stages(size: int, work: Path, spark: bool) -> list[tuple[str, list[str], Path]]:
    raw, validated = work / "raw", work / "validated"
    out = [
        ("generate", ["generate", "--accounts", str(size), "--months", str(MONTHS),
                      "--out", str(raw)], raw),
        ("validate", ["validate", "--raw", str(raw), "--out", str(validated),
                      "--quarantine", str(work / "quarantine"), "--reports", str(work / "reports"),
                      "--memory-limit", DUCKDB_MEMORY], validated),
        ("build duckdb", ["build-features", "--raw", str(validated), "--out", str(work / "duckdb"),
                          "--memory-limit", DUCKDB_MEMORY, "--partitions", str(partitions(size))],
         work / "duckdb"),
    ]  # fmt: skip
    if spark:
        out.append(
            ("build spark", ["build-features", "--engine", "spark", "--raw", str(validated),
                             "--out", str(work / "spark"),
                             "--spark-conf", f"spark.driver.memory={SPARK_DRIVER_MEMORY}"],
             work / "spark")
        )  # fmt: skip
    return out


def rows_of(features: Path) -> dict[str, int] | None:
    manifest = features / "_manifest.json"
    if not manifest.exists():
        return None
    rows: dict[str, int] = json.loads(manifest.read_text())["rows"]
    return rows


def run_size(
    size: int, work: Path, spark: bool, progress: Progress, resume: bool = False
) -> list[StageRun]:
    runs: list[StageRun] = []
    for stage, args, output in stages(size, work, spark):
        name, slug = f"{size:,} {stage}", stage.replace(" ", "_")
        record = work / f"{slug}.json"
        with progress.stage(name):
            if resume and record.exists():
                # A stage that finished in an earlier run of the same work folder (a 10M run
                # takes hours): its own measurement, not a new one.
                run = StageRun(**json.loads(record.read_text()))
                log.info("%s: measured earlier (%s), %.0f s", name, record, run.seconds)
            else:
                run = _measure_stage(size, stage, args, output, work / f"{slug}.log")
            runs.append(run)
            progress.payload.setdefault("runs", []).append(asdict(run))
            if run.exit_code != 0:
                raise RuntimeError(f"{name} exited {run.exit_code}; see {work}/{slug}.log")
            record.write_text(json.dumps(asdict(run)))
    _check_engines_agree(runs)
    return runs


def _measure_stage(
    size: int, stage: str, args: list[str], output: Path, log_file: Path
) -> StageRun:
    log.info("%s %s: collectwise %s", f"{size:,}", stage, " ".join(args))
    seconds, peak, code = measured([cli(), *args], log_file)
    rows = rows_of(output) if stage.startswith("build") else None
    run = StageRun(size, stage, round(seconds, 1), round(peak), round(disk_mb(output)), code, rows)
    log.info("%s %s: %.0f s, peak %.0f MB, %.0f MB on disk, exit %d",
             f"{size:,}", stage, seconds, peak, run.disk_mb, code)  # fmt: skip
    return run


def _check_engines_agree(runs: list[StageRun]) -> None:
    built = {r.stage: r.rows for r in runs if r.rows is not None}
    if len(built) == 2 and built["build duckdb"] != built["build spark"]:
        raise RuntimeError(f"DuckDB and Spark built different row counts: {built}")


def tables(progress: Progress) -> list[Table]:
    runs = progress.payload.get("runs", [])
    header = ("accounts", "stage", "seconds", "peak RSS MB", "on disk MB", "feature rows", "exit")
    rows = [
        [f"{r['size']:,}", r["stage"], r["seconds"], r["peak_rss_mb"], r["disk_mb"],
         f"{sum(v for k, v in (r['rows'] or {}).items() if k != 'labels'):,}" if r["rows"] else "",
         r["exit_code"]]
        for r in runs
    ]  # fmt: skip
    return [("scale: time and peak memory per stage", header, rows)]


def main() -> None:
    setup_logging()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    p.add_argument("--spark-sizes", type=int, nargs="*", default=[1_000_000])
    p.add_argument("--work", type=Path, help="work folder, kept (default: a temporary one)")
    p.add_argument("--resume", action="store_true",
                   help="with --work: keep the stages an earlier run there finished")  # fmt: skip
    args = p.parse_args()
    if args.resume and not args.work:
        p.error("--resume needs --work")
    progress = Progress(NAME, [], tables=None)
    progress.tables = lambda: tables(progress)
    progress.payload.update(
        {"environment": environment(), "months": MONTHS, "duckdb_memory_limit": DUCKDB_MEMORY,
         "spark_driver_memory": SPARK_DRIVER_MEMORY, "runs": []}
    )  # fmt: skip
    with progress:
        for size in args.sizes:
            work = args.work / str(size) if args.work else Path(tempfile.mkdtemp(prefix="cwscale-"))
            work.mkdir(parents=True, exist_ok=True)
            try:
                run_size(size, work, size in args.spark_sizes, progress, args.resume)
            finally:
                if not args.work:
                    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run_main(main)
