"""build_features against a floor of one hand-written DuckDB aggregation over the same data.

The floor reads the payments parquet once and writes net amounts per account and month:
the cheapest query that still touches the largest raw table and writes parquet, so the
ratio says what the full feature SQL (population, windows, joins) costs on top of I/O.

    python -m benchmarks.bench_features --accounts 100000

Inputs: the cached generated data, prepared here when missing; no store, no service. The
JSON and tables are rewritten after each stage, and once more however the run ends.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import (
    COMPARISON_HEADER,
    Comparison,
    PreparedData,
    Timing,
    comparison_rows,
    log_table,
    parser,
    prepare_data,
    setup_logging,
    time_once,
)
from benchmarks.harness import Progress, Table, run_main

log = logging.getLogger(__name__)

NAME = "features"

FLOOR_SQL = """
COPY (
    SELECT account_id,
           date_trunc('month', paid_at) AS month,
           sum(CASE WHEN status = 'settled' THEN amount ELSE -amount END) AS net_amount
    FROM read_parquet('{glob}')
    GROUP BY account_id, date_trunc('month', paid_at)
) TO '{out}' (FORMAT PARQUET, COMPRESSION ZSTD)
"""


def raw_row_counts(raw_dir: Path) -> dict[str, int]:
    from ingestion.contract import REQUIRED_TABLES  # noqa: PLC0415
    from ingestion.features import connect  # noqa: PLC0415
    from ingestion.rawio import table_glob  # noqa: PLC0415

    con = connect()
    try:
        counts = {}
        for table in REQUIRED_TABLES:
            row = con.execute(
                f"SELECT count(*) FROM read_parquet('{table_glob(raw_dir, table.name)}')"
            ).fetchone()
            counts[table.name] = int(row[0]) if row else 0
        return counts
    finally:
        con.close()


def run_build(raw_dir: Path, work: Path) -> dict[str, int]:
    from ingestion.features import build_features  # noqa: PLC0415

    out = work / "features"
    summary = build_features(raw_dir, out)
    shutil.rmtree(out, ignore_errors=True)
    return summary.rows


def run_floor(raw_dir: Path, work: Path) -> None:
    from ingestion.features import connect  # noqa: PLC0415
    from ingestion.rawio import table_glob  # noqa: PLC0415

    out = work / "floor.parquet"
    # Same session settings as the builder (UTC, default threads), so only the SQL differs.
    con = connect()
    try:
        con.execute(FLOOR_SQL.format(glob=table_glob(raw_dir, "payments"), out=out))
    finally:
        con.close()
        out.unlink(missing_ok=True)


def breakdown(raw_dir: Path, work: Path) -> dict[str, float]:
    """Seconds per feature statement and for the parquet writes, in one extra build.

    Uses the builder's own steps in its order, so the parts add up to about one build.
    """
    from ingestion.features import (  # noqa: PLC0415
        compute_features,
        connect,
        read_cutoffs,
        register_raw,
        write_tables,
    )

    con = connect()
    try:
        observed = register_raw(con, raw_dir)
        as_of, labels_as_of = read_cutoffs(raw_dir)
        parts = compute_features(con, as_of, observed, labels_as_of=labels_as_of)
        out = work / "breakdown"
        out.mkdir()
        parts["write parquet (all tables)"] = time_once(lambda: write_tables(con, out))[0]
    finally:
        con.close()
    return parts


def time_paths(raw_dir: Path, repeats: int) -> tuple[Timing, Timing, dict[str, int]]:
    """Median-ready timings of build and floor, and the builder's output row counts."""
    work = Path(tempfile.mkdtemp(prefix="cwbench-features-"))
    build, floor = Timing(), Timing()
    output_rows: dict[str, int] = {}
    try:
        # Interleaved, so that drift in the machine (page cache, other load) hits both paths.
        for i in range(repeats):
            seconds, rows = time_once(lambda: run_build(raw_dir, work))
            build.samples.append(seconds)
            output_rows = rows if isinstance(rows, dict) else output_rows
            floor.samples.append(time_once(lambda: run_floor(raw_dir, work))[0])
            log.info(
                "run %d/%d: build %.2f s, floor %.2f s",
                i + 1,
                repeats,
                build.samples[-1],
                floor.samples[-1],
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return build, floor, output_rows


def measure(data: PreparedData, repeats: int) -> tuple[dict[str, Any], list[Comparison]]:
    counts = raw_row_counts(data.raw_dir)
    build, floor, output_rows = time_paths(data.raw_dir, repeats)
    raw_rows = sum(counts.values())
    feature_rows = sum(output_rows.values())
    comparison = Comparison(
        benchmark=NAME,
        case=f"build_features vs payments GROUP BY ({data.accounts:,} accounts)",
        real_seconds=build.median,
        floor_seconds=floor.median,
        real_rate=raw_rows / build.median,
        floor_rate=counts["payments"] / floor.median,
        rate_unit="raw rows/s",
        ratio=build.median / floor.median,
        ratio_kind="build/floor seconds",
    )
    payload = {
        "accounts": data.accounts,
        "repeats": repeats,
        "raw_rows": counts,
        "output_rows": output_rows,
        "build_seconds": build.samples,
        "floor_seconds": floor.samples,
        "build_raw_rows_per_s": raw_rows / build.median,
        "build_output_rows_per_s": feature_rows / build.median,
        "floor_payment_rows_per_s": counts["payments"] / floor.median,
    }
    return payload, [comparison]


def tables(payload: dict[str, Any], comparisons: list[Comparison]) -> list[Table]:
    out: list[Table] = []
    if payload.get("breakdown_seconds"):
        parts = payload["breakdown_seconds"]
        total = sum(parts.values())
        out.append(
            (
                "build_features by statement (one extra run)",
                ("statement", "seconds", "share %"),
                [
                    [k, v, 100.0 * v / total]
                    for k, v in sorted(parts.items(), key=lambda kv: -kv[1])
                ],
            )
        )
    if not comparisons:
        return out
    c = comparisons[0]
    out.append(
        (
            f"build_features, {payload['accounts']:,} accounts, median of {payload['repeats']}",
            ("path", "seconds", "rows", "rows/s"),
            [
                [
                    "build_features (all raw rows in)",
                    c.real_seconds,
                    sum(payload["raw_rows"].values()),
                    payload["build_raw_rows_per_s"],
                ],
                [
                    "build_features (feature + label rows out)",
                    c.real_seconds,
                    sum(payload["output_rows"].values()),
                    payload["build_output_rows_per_s"],
                ],
                [
                    "floor: payments GROUP BY",
                    c.floor_seconds,
                    payload["raw_rows"]["payments"],
                    payload["floor_payment_rows_per_s"],
                ],
            ],
        )
    )
    return out


def report(payload: dict[str, Any], comparisons: list[Comparison]) -> None:
    for table in tables(payload, comparisons):
        log_table(*table)
    log_table("ratio", COMPARISON_HEADER, comparison_rows(comparisons))


def run(args: argparse.Namespace) -> None:
    stages = ["data", "build vs floor", *([] if args.no_breakdown else ["breakdown"])]
    with Progress(NAME, stages) as progress:
        progress.tables = lambda: tables(progress.payload, progress.comparisons)
        with progress.stage("data"):
            data = prepare_data(args.accounts, rebuild=args.rebuild_cache)
        with progress.stage("build vs floor"):
            payload, comparisons = measure(data, args.repeats)
            progress.payload |= payload
            progress.comparisons[:] = comparisons
        if not args.no_breakdown:
            with (
                progress.stage("breakdown"),
                tempfile.TemporaryDirectory(prefix="cwbench-features-") as work,
            ):
                progress.payload["breakdown_seconds"] = breakdown(data.raw_dir, Path(work))
        report(progress.payload, progress.comparisons)


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__ or NAME)
    p.add_argument("--repeats", type=int, default=3, help="runs of each path; the median counts")
    p.add_argument("--no-breakdown", action="store_true", help="skip the per-statement run")
    args = p.parse_args(argv)
    setup_logging()
    run_main(lambda: run(args))


if __name__ == "__main__":
    main()
