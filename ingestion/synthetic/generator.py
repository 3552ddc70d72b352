"""The entry point: calibrate, simulate chunk after chunk, write, and sum up."""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from rich.progress import Progress

from ingestion.synthetic.calibration import calibrate_intercept
from ingestion.synthetic.oracle import Stats
from ingestion.synthetic.population import Accounts, Customers, draw_population
from ingestion.synthetic.simulation import simulate
from ingestion.synthetic.state import Run, Sink, State
from ingestion.synthetic.timeline import Calendar
from ingestion.synthetic.world import SyntheticConfig, id_stride
from ingestion.synthetic.writer import (
    ORACLE_DIR,
    TABLE_NAMES,
    ChunkWriter,
    clear,
    write_chunk,
    write_manifest,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationSummary:
    """What generate() wrote.

    Default share (realised labels), oracle mean and AUC cover the matured population
    snapshots (t + 51 days <= as_of), or all of them when the run is too short for any.
    """

    out_dir: Path
    as_of: datetime
    row_counts: dict[str, int]
    seconds: float
    accounts_per_second: float
    intercept: float
    labelled_snapshots: int
    default_share: float
    oracle_mean: float
    oracle_auc: float


@dataclass(frozen=True)
class _SimulatedChunk:
    writer: ChunkWriter
    cust: Customers
    acc: Accounts
    sink: Sink
    stats: Stats

    def write(self) -> dict[str, int]:
        return write_chunk(self.writer, self.cust, self.acc, self.sink)


def _simulate_chunk(
    config: SyntheticConfig, cal: Calendar, alpha: float, chunk: int, out_dir: Path
) -> _SimulatedChunk:
    base = chunk * config.chunk_accounts
    n = min(config.chunk_accounts, config.accounts - base)
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(0, chunk)))
    cust, acc = draw_population(rng, n, cal, config.scenario)
    run = Run(acc, State.empty(n), cal, rng, Sink(), alpha, config.scenario)
    stats = Stats()
    simulate(run, stats)
    writer = ChunkWriter(out_dir, chunk, base, id_stride(config.months))
    return _SimulatedChunk(writer, cust, acc, run.sink, stats)


def _generate_chunks(
    config: SyntheticConfig, cal: Calendar, alpha: float, out_dir: Path, progress: bool
) -> tuple[dict[str, int], Stats]:
    """Simulate chunk c + 1 while a worker thread writes chunk c.

    Parquet encoding releases the GIL, so the write uses the second core; at most one
    chunk waits to be written, which keeps memory at about two chunks.
    """
    counts = dict.fromkeys((*TABLE_NAMES, ORACLE_DIR), 0)
    stats = Stats()
    with Progress(disable=not progress) as bar, ThreadPoolExecutor(max_workers=1) as pool:
        task = bar.add_task("generating accounts", total=config.accounts)

        def collect(pending: Future[dict[str, int]], accounts: int) -> None:
            for table, rows in pending.result().items():
                counts[table] += rows
            bar.advance(task, accounts)

        pending: tuple[Future[dict[str, int]], int] | None = None
        for chunk in range(-(-config.accounts // config.chunk_accounts)):
            simulated = _simulate_chunk(config, cal, alpha, chunk, out_dir)
            stats.merge(simulated.stats)
            if pending is not None:
                collect(*pending)
            pending = (pool.submit(simulated.write), simulated.acc.n)
            del simulated
        if pending is not None:
            collect(*pending)
    return counts, stats


def generate(config: SyntheticConfig, out_dir: Path, *, progress: bool = True) -> GenerationSummary:
    """Write every raw table, the oracle and a manifest under out_dir (see ingestion.synthetic)."""
    began = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clear(out_dir)
    cal = Calendar.build(config)
    alpha = calibrate_intercept(config)
    log.info("calibrated intercept %.4f for a default share of %.3f", alpha, config.default_rate)
    counts, stats = _generate_chunks(config, cal, alpha, out_dir, progress)
    write_manifest(config, out_dir, counts, alpha)
    seconds = time.perf_counter() - began
    summary = GenerationSummary(
        out_dir=out_dir,
        as_of=config.as_of,
        row_counts=counts,
        seconds=seconds,
        accounts_per_second=config.accounts / seconds,
        intercept=alpha,
        labelled_snapshots=stats.rows,
        default_share=stats.default_share,
        oracle_mean=stats.mean_p,
        oracle_auc=stats.auc,
    )
    _log_summary(summary)
    return summary


def _log_summary(s: GenerationSummary) -> None:
    rows = ", ".join(f"{table} {n:,}" for table, n in s.row_counts.items())
    log.info("wrote %s to %s", rows, s.out_dir)
    log.info(
        "%.1f s, %.0f accounts/s; %s labelled snapshots: default share %.3f, oracle mean %.3f,"
        " oracle AUC %.3f",
        s.seconds,
        s.accounts_per_second,
        f"{s.labelled_snapshots:,}",
        s.default_share,
        s.oracle_mean,
        s.oracle_auc,
    )
