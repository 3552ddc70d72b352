"""What every benchmark's main needs around its measurement: inputs checked up front, a
one-line exit when one is missing, and results written as they are measured.

- The `require_*` checks raise BenchmarkInputError (or BenchmarkServiceError for a service
  that does not answer) whose message says what to run; `run_main` turns either, and any
  other domain error, into that one line and a non-zero exit, never a traceback.
- `Progress` writes benchmarks/results/<name>.json and <name>.md after every stage, and
  once more on the way out however the run ends, each stage marked done, failed or not
  run: a run stopped halfway still leaves what it measured.

Nothing here works at import time; Feast, MLflow and redis are imported where they are used.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from benchmarks.common import (
    COMPARISON_HEADER,
    REDIS_URL,
    RESULTS_DIR,
    Comparison,
    comparison_rows,
    render_table,
    write_result,
)
from collectwise.errors import EXIT_FAILED, CollectwiseError, UnavailableError

if TYPE_CHECKING:
    from collectwise.settings import Settings

log = logging.getLogger(__name__)

DEMO_HINT = "run `make demo` first"
# (title, header, rows): a table of what a benchmark has measured so far.
Table = tuple[str, Sequence[str], Sequence[Sequence[object]]]


class BenchmarkInputError(CollectwiseError):
    """An input the benchmark needs is missing; the message says what to run."""

    exit_code = EXIT_FAILED


class BenchmarkServiceError(UnavailableError):
    """A service the benchmark needs (Redis, a running scorer) does not answer."""


# --- checks -------------------------------------------------------------------------------


def redis_url() -> str:
    """host:port of the Redis the benchmarks use (REDIS_CONNECTION_STRING, as Feast reads)."""
    return os.environ.get("REDIS_CONNECTION_STRING") or REDIS_URL


def require_redis(url: str | None = None, why: str = "") -> None:
    import redis  # noqa: PLC0415

    where = url or redis_url()
    host, _, port = where.partition(":")
    client = redis.Redis(host=host, port=int(port or 6379), socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise BenchmarkServiceError(
            f"no Redis answers at {where} ({type(exc).__name__}): start it with "
            f"`make services` or point REDIS_CONNECTION_STRING at one{why}"
        ) from None
    finally:
        client.close()


def require_demo_features(settings: Settings) -> Path:
    """The demo's feature tables (data/features), with their manifest."""
    features = settings.paths.features_dir
    wanted = [features / "account_profile.parquet", features / "_manifest.json"]
    missing = [p for p in wanted if not p.is_file()]
    if missing:
        raise BenchmarkInputError(f"no demo data ({missing[0]} is missing): {DEMO_HINT}")
    return features


def require_champion(settings: Settings) -> int:
    """The registry's champion version: the scorer will not start without one."""
    from training.registry import resolve_alias  # noqa: PLC0415

    try:
        version = resolve_alias("champion", settings=settings.mlflow)
    except Exception as exc:  # any backend failure means the same thing here
        raise BenchmarkInputError(
            f"the model registry at {settings.mlflow.tracking} cannot be read "
            f"({type(exc).__name__}): {DEMO_HINT}"
        ) from None
    if version is None:
        raise BenchmarkInputError(f"no champion model in the registry: {DEMO_HINT}")
    return version


def require_executable(path: Path, hint: str = "run `make setup` first") -> Path:
    if not (path.is_file() and os.access(path, os.X_OK)) and shutil.which(str(path)) is None:
        raise BenchmarkInputError(f"{path} is not installed: {hint}")
    return path


def require_file(path: Path, hint: str) -> Path:
    if not path.is_file():
        raise BenchmarkInputError(f"{path} not found: {hint}")
    return path


def require_scorer(url: str) -> None:
    import httpx  # noqa: PLC0415

    try:
        httpx.get(f"{url}/healthz", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        raise BenchmarkServiceError(
            f"no scorer answers at {url}/healthz ({type(exc).__name__}): start one with "
            "`make demo` (or `make serve-bg`), or pass --url"
        ) from None


# --- the main -----------------------------------------------------------------------------


def run_main(main: Callable[[], None]) -> None:
    """Run a benchmark's main; a domain error (a missing input, a service down) ends it with
    its one-line message and exit code instead of a traceback."""
    try:
        main()
    except (BenchmarkInputError, BenchmarkServiceError) as exc:
        # Before setup_logging the root logger has no handler: Python's last-resort handler
        # still prints the message, alone on its line.
        log.error("%s", exc)
        sys.exit(exc.exit_code)
    except CollectwiseError as exc:
        # Another domain error (a missing feature table, a bad setting): its message names
        # the problem; the traceback is there for whoever turns on debug logging.
        log.error("%s: %s", type(exc).__name__, exc)
        log.debug("where it was raised", exc_info=True)
        sys.exit(exc.exit_code)


# --- partial results ----------------------------------------------------------------------


DONE, FAILED, NOT_RUN, RUNNING, SKIPPED = "done", "failed", "not run", "running", "skipped"


@dataclass
class Stage:
    state: str = NOT_RUN
    seconds: float | None = None
    error: str | None = None


@dataclass
class Progress:
    """A benchmark's stages and what they measured, written to disk after each stage.

    `payload` and `comparisons` are the benchmark's own, filled in as it goes; `tables`
    renders whatever part of them exists. On leaving the `with` block, however, the files
    are written once more with every stage that did not finish marked failed or not run.
    """

    name: str
    stages: list[str]
    payload: dict[str, Any] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    tables: Callable[[], list[Table]] | None = None
    # Writes the JSON document; default common.write_result (benchmarks/results/<name>.json).
    writer: Callable[[dict[str, Any]], Path] | None = None
    # Where the tables go; default benchmarks/results/<name>.md.
    tables_path: Path | None = None
    status: dict[str, Stage] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status = {s: Stage() for s in self.stages}

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            log.warning("%s stopped (%s): writing what was measured so far", self.name, _why(exc))
        self.write()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time one stage; record how it ended and write the files, then go on or re-raise."""
        record = self.status.setdefault(name, Stage())
        record.state, started = RUNNING, time.perf_counter()
        try:
            yield
        except BaseException as exc:
            record.state, record.error = FAILED, _why(exc)
            raise
        else:
            record.state = DONE
        finally:
            record.seconds = round(time.perf_counter() - started, 2)
            self.write()

    @property
    def complete(self) -> bool:
        return all(s.state in (DONE, SKIPPED) for s in self.status.values())

    def document(self) -> dict[str, Any]:
        stages = {k: {"state": v.state, "seconds": v.seconds, "error": v.error}
                  for k, v in self.status.items()}  # fmt: skip
        return {**self.payload, "complete": self.complete, "stages": stages}

    def write(self) -> None:
        """The JSON and the tables of everything measured so far; never raises, since it
        also runs while another error is on its way out."""
        try:
            document = self.document()
            if self.writer is not None:
                self.writer(document)
            else:
                write_result(self.name, document, self.comparisons)
            self._write_tables()
        except Exception:
            log.exception("could not write the partial results of %s", self.name)

    def stage_table(self) -> Table:
        rows = [[k, v.state, v.seconds, v.error or ""] for k, v in self.status.items()]
        return (f"{self.name}: stages", ("stage", "state", "seconds", "note"), rows)

    def _write_tables(self) -> None:
        tables = [self.stage_table()]
        if self.comparisons:
            tables.append(("ratios", COMPARISON_HEADER, comparison_rows(self.comparisons)))
        if self.tables is not None:
            try:
                tables += self.tables()
            except Exception as exc:  # half-filled figures: the stage table still goes out
                log.warning("%s: tables of the partial figures failed: %s", self.name, _why(exc))
        text = "\n".join(render_table(*t) for t in tables)
        path = self.tables_path or RESULTS_DIR / f"{self.name}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _why(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__
