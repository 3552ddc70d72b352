"""Benchmark the synthetic generator against a pure parquet-writing floor.

The real path is ingestion.synthetic.generate(); the floor writes the same number of rows
per table (same column count and types, random values made with NumPy and Arrow, the same
number of parts) with pyarrow in the same process. The ratio says how much the simulation
and the pandas/contract layer cost on top of the unavoidable I/O.

    .venv/bin/python -m benchmarks.bench_generator              # 100,000 accounts x 24 months
    .venv/bin/python -m benchmarks.bench_generator --full       # and 1,000,000

Inputs: none beyond the package (it generates into a temporary directory). The JSON
(--out) and its table (the same name, .md) are rewritten after each size, and
once more however the run ends, with the sizes not run marked.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.harness import Progress, Table, run_main
from ingestion import contract
from ingestion.synthetic import SyntheticConfig, generate

log = logging.getLogger("bench_generator")

RESULTS = Path(__file__).resolve().parent / "results" / "generator.json"
MIB = 2**20


@dataclass(frozen=True)
class RunResult:
    accounts: int
    months: int
    chunk_accounts: int
    seconds: float
    accounts_per_second: float
    rows: int
    rows_per_second: float
    peak_rss_mib: float
    start_rss_mib: float
    disk_mib: float
    floor_seconds: float
    floor_rows_per_second: float
    ratio_to_floor: float
    default_share: float
    oracle_mean: float
    oracle_auc: float
    row_counts: dict[str, int]


class PeakRss:
    """Samples this process's resident memory in a thread and keeps the maximum."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def _timer() -> Iterator[list[float]]:
    out: list[float] = []
    began = time.perf_counter()
    yield out
    out.append(time.perf_counter() - began)


def _random_column(rng: np.random.Generator, dtype: str, n: int) -> pa.Array:
    if dtype == contract.STRING:
        return pc.cast(pa.array(rng.integers(0, 10**9, n)), pa.string())
    if dtype == contract.TIMESTAMP:
        micros = rng.integers(1_700_000_000_000_000, 1_800_000_000_000_000, n)
        return pa.array(micros, pa.timestamp("us", tz="UTC"))
    if dtype == contract.INT:
        return pa.array(rng.integers(0, 1000, n))
    return pa.array(rng.random(n))


def _floor_seconds(row_counts: dict[str, int], parts: int, out_dir: Path) -> float:
    """Write the same rows per table as random columns; only the writes are timed."""
    rng = np.random.default_rng(0)
    seconds = 0.0
    for name, rows in row_counts.items():
        columns = (
            contract.TABLES_BY_NAME[name].columns
            if name in contract.TABLES_BY_NAME
            else (
                contract.Column("account_id", contract.STRING),
                contract.Column("snapshot_at", contract.TIMESTAMP),
                contract.Column("p_default", contract.FLOAT),
            )
        )
        table_dir = out_dir / name
        table_dir.mkdir(parents=True, exist_ok=True)
        for part, n in enumerate(np.diff(np.linspace(0, rows, parts + 1).astype(int))):
            table = pa.table({c.name: _random_column(rng, c.dtype, int(n)) for c in columns})
            with _timer() as took:
                pq.write_table(table, table_dir / f"part-{part:05d}.parquet")
            seconds += took[0]
    return seconds


def _disk_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*.parquet")) / MIB


def run_once(accounts: int, months: int, chunk_accounts: int, seed: int) -> RunResult:
    config = SyntheticConfig(
        accounts=accounts, months=months, seed=seed, chunk_accounts=chunk_accounts
    )
    with tempfile.TemporaryDirectory(prefix="bench_generator_") as tmp:
        out = Path(tmp) / "raw"
        start_rss = psutil.Process().memory_info().rss
        with PeakRss() as rss:
            summary = generate(config, out, progress=False)
        disk = _disk_mib(out)
        parts = -(-accounts // chunk_accounts)
        floor = _floor_seconds(summary.row_counts, parts, Path(tmp) / "floor")
    rows = sum(summary.row_counts.values())
    return RunResult(
        accounts=accounts,
        months=months,
        chunk_accounts=chunk_accounts,
        seconds=summary.seconds,
        accounts_per_second=summary.accounts_per_second,
        rows=rows,
        rows_per_second=rows / summary.seconds,
        peak_rss_mib=rss.peak / MIB,
        start_rss_mib=start_rss / MIB,
        disk_mib=disk,
        floor_seconds=floor,
        floor_rows_per_second=rows / floor,
        ratio_to_floor=summary.seconds / floor,
        default_share=summary.default_share,
        oracle_mean=summary.oracle_mean,
        oracle_auc=summary.oracle_auc,
        row_counts=summary.row_counts,
    )


def _table(results: list[RunResult]) -> str:
    header = (
        f"{'accounts':>10} {'months':>6} {'seconds':>8} {'acc/s':>8} {'rows':>11} "
        f"{'rows/s':>10} {'peak MiB':>9} {'floor s':>8} {'x floor':>8} {'AUC':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.accounts:>10,} {r.months:>6} {r.seconds:>8.1f} {r.accounts_per_second:>8,.0f} "
            f"{r.rows:>11,} {r.rows_per_second:>10,.0f} {r.peak_rss_mib:>9,.0f} "
            f"{r.floor_seconds:>8.1f} {r.ratio_to_floor:>8.1f} {r.oracle_auc:>6.3f}"
        )
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--full", action="store_true", help="also run 1,000,000 accounts")
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--chunk-accounts", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def _json_writer(out: Path) -> Callable[[dict[str, Any]], Path]:
    def write(document: dict[str, Any]) -> Path:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(document, indent=2) + "\n")
        return out

    return write


def _runs_table(runs: list[dict[str, Any]]) -> list[Table]:
    header = ("accounts", "months", "seconds", "acc/s", "rows", "rows/s", "peak MiB",
              "floor s", "x floor", "AUC")  # fmt: skip
    keys = ("accounts", "months", "seconds", "accounts_per_second", "rows", "rows_per_second",
            "peak_rss_mib", "floor_seconds", "ratio_to_floor", "oracle_auc")  # fmt: skip
    return [("generator", header, [[r[k] for k in keys] for r in runs])] if runs else []


def run(args: argparse.Namespace) -> None:
    sizes = [args.accounts] + ([1_000_000] if args.full else [])
    runs: list[dict[str, Any]] = []
    stages = [f"{n:,} accounts" for n in sizes]
    writer, tables_path = _json_writer(args.out), args.out.with_suffix(".md")
    with Progress("generator", stages, writer=writer, tables_path=tables_path) as progress:
        progress.tables = lambda: _runs_table(runs)
        progress.payload |= {
            "benchmark": "generator",
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "numpy": np.__version__,
                "pyarrow": pa.__version__,
            },
            "floor": "pyarrow.parquet.write_table of random columns, same rows, columns and parts",
            "runs": runs,
        }
        for accounts, stage in zip(sizes, stages, strict=True):
            with progress.stage(stage):
                log.info("generating %s accounts x %s months ...", f"{accounts:,}", args.months)
                result = run_once(accounts, args.months, args.chunk_accounts, args.seed)
                runs.append(asdict(result))
    log.info("\n%s\nwrote %s", _table([RunResult(**r) for r in runs]), args.out)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("ingestion.synthetic").setLevel(logging.WARNING)
    args = _parse(argv)
    run_main(lambda: run(args))


if __name__ == "__main__":
    main()
