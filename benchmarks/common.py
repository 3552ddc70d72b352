"""Shared pieces of the benchmarks: cached data, a temporary Feast repo, timing and reports.

Every benchmark runs the real path and its floor in one process and reports the ratio
(DESIGN.md, "Measuring"). Data are generated once per size with a fixed seed into
benchmarks/.cache/<accounts>/ and reused, so a benchmark times only what it names.

Feast is imported inside functions: importing it costs seconds, and nothing here may do
work at import time.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import platform
import resource
import shutil
import signal
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingestion.retrieval import ScratchRepo

log = logging.getLogger(__name__)

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
CACHE_ROOT = BENCH_DIR / ".cache"
RESULTS_DIR = BENCH_DIR / "results"

DEFAULT_ACCOUNTS = 100_000
QUICK_ACCOUNTS = 20_000
MONTHS = 24
SEED = 20_251_124
REDIS_URL = "127.0.0.1:6379"
# Columns of words rather than figures: left-aligned in tables.
TEXT_COLUMNS = frozenset({"case", "aim", "met"})


# --- logging and reports -------------------------------------------------------------------


def setup_logging(level: int = logging.INFO) -> None:
    """Logging to stderr, and a SIGTERM that unwinds (see _exit_on_term)."""
    signal.signal(signal.SIGTERM, _exit_on_term)
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    quiet_warnings()
    for noisy in ("feast", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def quiet_warnings() -> None:
    """Deprecation chatter from Feast, ibis and DuckDB would bury the tables.

    Called again after importing Feast, whose modules push their own filters on import.
    """
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="On demand feature view is an experimental")


def _exit_on_term(signum: int, _frame: object) -> None:
    # Python's default SIGTERM skips finally blocks; raising instead lets temporary
    # directories, Feast teardown and Redis key deletion run when a benchmark is stopped.
    raise SystemExit(128 + signum)


def render_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A rich table rendered to text, so it can go through logging like everything else."""
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=title)
    for name in header:
        text = name == header[0] or name in TEXT_COLUMNS
        table.add_column(name, justify="left" if text else "right")
    for row in rows:
        table.add_row(*(fmt(v) for v in row))
    buffer = io.StringIO()
    Console(file=buffer, width=140, color_system=None).print(table)
    return buffer.getvalue()


def log_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    log.info("\n%s", render_table(title, header, rows))


def fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@dataclass
class Comparison:
    """One real-versus-floor line of a report; run_all turns these into the summary table."""

    benchmark: str
    case: str
    real_seconds: float
    floor_seconds: float
    real_rate: float | None = None
    floor_rate: float | None = None
    rate_unit: str = ""
    # ratio is oriented so that the aim reads naturally, e.g. "real/floor >= 0.3".
    ratio: float = 0.0
    ratio_kind: str = "real/floor seconds"
    aim: str = ""
    # For an aim not met, the summary shows where the real path's time goes (profile_top's
    # rows, with "what" saying what ran, and optionally "stages": [[stage, ms], ...]) and
    # what has been tried so far (the benchmark's TRIED lines).
    profile: dict[str, Any] | None = None
    tried: tuple[str, ...] = ()

    @property
    def meets_aim(self) -> bool | None:
        if not self.aim:
            return None
        op, _, bound = self.aim.partition(" ")
        value = float(bound.rstrip("x"))
        return self.ratio >= value if op == ">=" else self.ratio <= value


def comparison_rows(items: Sequence[Comparison]) -> list[list[object]]:
    return [
        [
            f"{c.benchmark}: {c.case}",
            c.real_seconds,
            c.floor_seconds,
            f"{c.ratio:.2f}x ({c.ratio_kind})",
            c.aim or "-",
            {True: "yes", False: "no", None: "-"}[c.meets_aim],
        ]
        for c in items
    ]


COMPARISON_HEADER = ("benchmark", "real s", "floor s", "ratio", "aim", "met")


def environment() -> dict[str, Any]:
    """What the figures depend on: machine and library versions."""
    versions: dict[str, str | None] = {}
    for package in ("feast", "duckdb", "pyarrow", "pandas", "redis", "protobuf"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        # Other work on the machine moves absolute figures; ratios hold better. Say which.
        "load_average_1_5_15m": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_result(name: str, payload: dict[str, Any], comparisons: Sequence[Comparison]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "environment": environment(),
        "comparisons": [{**asdict(c), "meets_aim": c.meets_aim} for c in comparisons],
        **payload,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    log.info("wrote %s", path)
    return path


# --- timing ------------------------------------------------------------------------------


@dataclass
class Timing:
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def peak_rss_mib() -> float:
    """This process's peak RSS since it started its own interpreter (or since the last
    reset_peak_rss).

    Not ru_maxrss: Linux carries the high-water mark of the forked copy of the parent
    across exec, so a spawned child would report at least the parent's size. VmHWM
    belongs to the memory map exec created.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_peak_rss() -> bool:
    """Start VmHWM again from the current RSS (Linux: "5" into /proc/self/clear_refs), so
    the next peak_rss_mib is the peak of what runs in between; False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def time_once(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def profile_top(fn: Callable[[], object], limit: int = 10) -> dict[str, list[dict[str, Any]]]:
    """cProfile's top functions by own time and by cumulative time, as JSON-ready rows.

    The benchmark's own frames are left out: they wrap everything and say nothing.
    """
    import cProfile  # noqa: PLC0415

    profiler = cProfile.Profile()
    profiler.runcall(fn)
    return stats_top(profiler, limit)


WRAPPER_SHARE = 0.95


def stats_top(source: Any, limit: int = 10) -> dict[str, list[dict[str, Any]]]:
    """profile_top's rows from a profiler or a saved profile file (`python -m cProfile -o`)."""
    import pstats  # noqa: PLC0415

    stats = pstats.Stats(str(source) if isinstance(source, Path) else source)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]

    ours = str(BENCH_DIR)
    theirs = [kv for kv in raw.items() if not str(kv[0][0]).startswith(ours)]
    whole = max((kv[1][3] for kv in theirs), default=0.0)
    # Frames that wrap (nearly) the whole run and do little themselves (the CLI's entry,
    # click, the route handler) fill the cumulative ranking and say nothing; the own-time
    # ranking still shows what they do.
    telling = [kv for kv in theirs if kv[1][3] < WRAPPER_SHARE * whole or kv[1][2] > 0.1 * whole]

    def top(rows: list[Any], index: int) -> list[dict[str, Any]]:
        ranked = sorted(rows, key=lambda kv: kv[1][index], reverse=True)[:limit]
        return [
            {
                "function": f"{Path(file).name}:{line}({name})",
                "calls": calls,
                "own_s": round(own, 3),
                "cumulative_s": round(cum, 3),
            }
            for (file, line, name), (_, calls, own, cum, _) in ranked
        ]

    return {"by_own_time": top(theirs, 2), "by_cumulative_time": top(telling, 3)}


# --- cached data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedData:
    accounts: int
    raw_dir: Path
    features_dir: Path
    as_of: datetime


def cache_dir(accounts: int) -> Path:
    return CACHE_ROOT / str(accounts)


def prepare_data(accounts: int, *, rebuild: bool = False) -> PreparedData:
    """Raw data and feature tables for `accounts` x 24 months, generated once and reused.

    Validation is skipped: the generator writes the contract's layout, so its output is a
    valid raw directory, and validating 100,000 accounts would only slow every first run.
    """
    from ingestion.feast_store import features_as_of  # noqa: PLC0415

    root = cache_dir(accounts)
    raw_dir, features_dir = root / "raw", root / "features"
    if rebuild or not _raw_is_current(raw_dir, accounts):
        _generate(accounts, raw_dir)
        shutil.rmtree(features_dir, ignore_errors=True)
    stamp = root / "features.stamp"
    if rebuild or not _features_are_current(features_dir, stamp, raw_dir):
        _build(raw_dir, features_dir, stamp)
    return PreparedData(accounts, raw_dir, features_dir, features_as_of(features_dir))


def prepare_raw(accounts: int, *, rebuild: bool = False) -> Path:
    """Only the generated raw directory of prepare_data, for benchmarks that run their own
    validation and feature build over it (same cache, so generation happens once)."""
    raw_dir = cache_dir(accounts) / "raw"
    if rebuild or not _raw_is_current(raw_dir, accounts):
        _generate(accounts, raw_dir)
    return raw_dir


def _raw_is_current(raw_dir: Path, accounts: int) -> bool:
    from ingestion.synthetic import GENERATOR_VERSION  # noqa: PLC0415

    manifest = raw_dir / "_manifest.json"
    if not manifest.exists():
        return False
    m = json.loads(manifest.read_text())
    wanted = (accounts, MONTHS, SEED, GENERATOR_VERSION)
    return (m.get("accounts"), m.get("months"), m.get("seed"), m.get("generator_version")) == wanted


def _generate(accounts: int, raw_dir: Path) -> None:
    from ingestion.synthetic import SyntheticConfig, generate  # noqa: PLC0415

    log.info("generating %s accounts x %d months into %s", f"{accounts:,}", MONTHS, raw_dir)
    # Without the manifest a run stopped halfway is never mistaken for a finished cache.
    (raw_dir / "_manifest.json").unlink(missing_ok=True)
    generate(SyntheticConfig(accounts=accounts, months=MONTHS, seed=SEED), raw_dir)


def _feature_fingerprint(raw_dir: Path) -> str:
    """Changes when the feature SQL or the raw data change, so stale tables are rebuilt."""
    from feature_repo import transformations as tx  # noqa: PLC0415

    digest = hashlib.sha256()
    for sql in (*tx.FEATURE_STATEMENTS, tx.DERIVED_LABELS_SQL, tx.OBSERVED_LABELS_SQL):
        digest.update(sql.encode())
    digest.update((raw_dir / "_manifest.json").read_bytes())
    return digest.hexdigest()


def _features_are_current(features_dir: Path, stamp: Path, raw_dir: Path) -> bool:
    if not (features_dir / "_manifest.json").exists() or not stamp.exists():
        return False
    return stamp.read_text().strip() == _feature_fingerprint(raw_dir)


def _build(raw_dir: Path, features_dir: Path, stamp: Path) -> None:
    from ingestion.features import build_features  # noqa: PLC0415

    log.info("building feature tables into %s", features_dir)
    stamp.unlink(missing_ok=True)
    build_features(raw_dir, features_dir)
    stamp.write_text(_feature_fingerprint(raw_dir) + "\n")


# --- a temporary Feast repo ----------------------------------------------------------------


@contextmanager
def temp_feast_store(
    features_dir: Path, online: Mapping[str, object], project: str
) -> Iterator[ScratchRepo]:
    """The feature repo applied in a throw-away directory, quietly; torn down and deleted
    afterwards (ingestion.retrieval.scratch_repo)."""
    from ingestion.retrieval import scratch_repo  # noqa: PLC0415

    quiet_warnings()
    with scratch_repo(features_dir, project, online=online) as scratch:
        yield scratch


# --- command line --------------------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--accounts",
        type=int,
        default=DEFAULT_ACCOUNTS,
        help=f"accounts to generate (default {DEFAULT_ACCOUNTS:,}; {QUICK_ACCOUNTS:,} is quick)",
    )
    p.add_argument(
        "--rebuild-cache",
        action="store_true",
        help="regenerate the cached raw data and feature tables first",
    )
    return p
