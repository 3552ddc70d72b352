"""Materialising the newest snapshot into SQLite and Redis, against raw bulk writes of the
same bytes.

Each backend is loaded twice, into fresh stores: by `materialize_latest` as the platform runs
it (the direct write path, ingestion.online_write) and by Feast's own `store.materialize`
(shown beside it, with its time split into read, proto conversion and write). The floor
writes exactly what was written: the rows are read back (untimed) and written again in the
cheapest way the store allows, into the same table shape (SQLite: one executemany
transaction of the same upsert) or the same hash layout (Redis: one pipelined HSET per
entity and view, under a second project name of the same length). The ratio real/floor
says how much of the store's write speed the load keeps; the aim is >= 0.5x.

    python -m benchmarks.bench_materialize --accounts 100000

Inputs: the cached generated data (prepared here if missing) and, for the Redis backends,
Redis, checked first. Each backend loads a Feast project of its own (cwbench_<random>, and
cwfloor_<random> for the floor's keys), deleted afterwards, so runs never share keys. The
JSON and tables are rewritten after each backend, and once more however the run ends.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import (
    COMPARISON_HEADER,
    Comparison,
    PreparedData,
    comparison_rows,
    log_table,
    parser,
    prepare_data,
    setup_logging,
    temp_feast_store,
)
from benchmarks.harness import Progress, Table, redis_url, require_redis, run_main

if TYPE_CHECKING:
    import redis
    from feast import FeatureStore, FeatureView

    from ingestion.retrieval import ScratchRepo

log = logging.getLogger(__name__)

NAME = "materialize"
BACKENDS = ("sqlite", "redis")
AIM = ">= 0.5x"
DESIGN_NOTE = (
    "DESIGN.md saw Feast at 3.6-4.8k accounts/s into Redis and 2.4-2.8k/s into SQLite, "
    "raw bulk writes of the same bytes at 36-42k/s and 6.1-7.3k/s"
)
# Columns Feast's SQLite store writes when neither vectors nor value_num are enabled.
SQLITE_COLUMNS = ("entity_key", "feature_name", "value", "value_text", "event_ts", "created_ts")
REDIS_SCAN_COUNT = 10_000


# --- instrumentation -----------------------------------------------------------------------


@dataclass
class Clock:
    seconds: float = 0.0
    calls: int = 0
    rows: int = 0
    rows_by_view: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@contextmanager
def clocked(owner: object, attribute: str, clock: Clock) -> Iterator[Clock]:
    """Time every call of owner.attribute; restored on exit.

    Feast offers no hook for this. Wrapping one attribute costs a function call per batch,
    which is nothing next to the batch, and splits materialisation into its parts.
    """
    original: Callable[..., Any] | None = getattr(owner, attribute, None)
    if original is None:
        log.warning("cannot time %s.%s: not found in this Feast version", owner, attribute)
        yield clock
        return

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            clock.seconds += time.perf_counter() - started
            clock.calls += 1
            data = kwargs.get("data")
            table = kwargs.get("table")
            if data is not None and table is not None:
                clock.rows += len(data)
                clock.rows_by_view[table.name] += len(data)

    setattr(owner, attribute, timed)
    try:
        yield clock
    finally:
        setattr(owner, attribute, original)


@dataclass
class FeastRun:
    """One load: its wall time and the time and rows of its parts."""

    seconds: float
    write: Clock
    convert: Clock
    read: Clock = field(default_factory=Clock)

    @property
    def rows(self) -> int:
        return self.write.rows


def warm_up(temp: ScratchRepo, data: PreparedData) -> None:
    """An empty window (mid-month, no snapshot in it) loads Feast's lazy imports and DuckDB
    untimed, so the first load measured does not pay for them."""
    quiet = data.as_of - timedelta(days=20)
    temp.store.materialize(start_date=quiet, end_date=quiet + timedelta(days=1))


def materialise_feast(temp: ScratchRepo, data: PreparedData) -> FeastRun:
    """Feast's own write path, as materialize_latest(direct=False) runs it."""
    from feast.infra.compute_engines.local import nodes  # noqa: PLC0415

    from ingestion.feast_store import materialize_latest  # noqa: PLC0415

    warm_up(temp, data)
    online = temp.store._get_provider().online_store
    write, convert = Clock(), Clock()
    with (
        clocked(online, "online_write_batch", write),
        clocked(nodes, "_convert_arrow_to_proto", convert),
    ):
        started = time.perf_counter()
        materialize_latest(temp.store, data.as_of, direct=False)
        seconds = time.perf_counter() - started
    return FeastRun(seconds, write, convert)


def materialise_direct(temp: ScratchRepo, data: PreparedData) -> FeastRun:
    """materialize_latest as the platform runs it: the direct write path."""
    from ingestion import online_write  # noqa: PLC0415
    from ingestion.feast_store import materialize_latest  # noqa: PLC0415

    warm_up(temp, data)
    read, encode, write = Clock(), Clock(), Clock()
    writer_class = type(online_write._writer(temp.store))
    with (
        clocked(online_write, "_read_newest", read),
        clocked(online_write, "_encode", encode),
        clocked(writer_class, "write", write),
        captured(online_write, "write_views") as loads,
    ):
        started = time.perf_counter()
        materialize_latest(temp.store, data.as_of)
        seconds = time.perf_counter() - started
    if not loads:
        raise RuntimeError("materialize_latest did not take the direct write path")
    for load in loads[0]:
        write.rows_by_view[load.view] = load.entities
    write.rows = sum(write.rows_by_view.values())
    return FeastRun(seconds, write, encode, read)


@contextmanager
def captured(owner: object, attribute: str) -> Iterator[list[Any]]:
    """What every call of owner.attribute returns, in a list; restored on exit."""
    original: Callable[..., Any] = getattr(owner, attribute)
    results: list[Any] = []

    def keep(*args: Any, **kwargs: Any) -> Any:
        results.append(original(*args, **kwargs))
        return results[-1]

    setattr(owner, attribute, keep)
    try:
        yield results
    finally:
        setattr(owner, attribute, original)


def expected_rows(data: PreparedData, ttl: timedelta) -> dict[str, int]:
    """Entities in each online view's window: what Feast should write (newest per entity)."""
    from ingestion.feast_store import ONLINE_VIEWS  # noqa: PLC0415
    from ingestion.features import connect  # noqa: PLC0415

    con = connect()
    counts = {}
    try:
        for view in ONLINE_VIEWS:
            key = "customer_id" if view.startswith("customer_") else "account_id"
            row = con.execute(
                f"SELECT count(DISTINCT {key}) FROM read_parquet(?) "
                "WHERE event_timestamp >= ? AND event_timestamp <= ?",
                [str(data.features_dir / f"{view}.parquet"), data.as_of - ttl, data.as_of],
            ).fetchone()
            counts[view] = int(row[0]) if row else 0
    finally:
        con.close()
    return counts


def online_views(store: FeatureStore) -> list[FeatureView]:
    from ingestion.feast_store import ONLINE_VIEWS  # noqa: PLC0415

    return [store.get_feature_view(name) for name in ONLINE_VIEWS]


# --- SQLite --------------------------------------------------------------------------------


def sqlite_table_rows(db_path: Path, tables: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    # PARSE_DECLTYPES gives datetimes back, so the floor binds the same Python types as Feast.
    conn = sqlite3.connect(db_path, detect_types=sqlite3.PARSE_DECLTYPES)
    try:
        cols = ", ".join(SQLITE_COLUMNS)
        return {t: conn.execute(f'SELECT {cols} FROM "{t}"').fetchall() for t in tables}
    finally:
        conn.close()


def sqlite_floor(rows: dict[str, list[tuple[Any, ...]]], db_path: Path) -> float:
    """One executemany transaction of Feast's upsert into tables of Feast's shape."""
    conn = sqlite3.connect(db_path, detect_types=sqlite3.PARSE_DECLTYPES)
    try:
        for table in rows:
            conn.execute(
                f'CREATE TABLE "{table}" (entity_key BLOB, feature_name TEXT, value BLOB, '
                "value_text TEXT, vector_value BLOB, event_ts timestamp, created_ts timestamp, "
                "PRIMARY KEY(entity_key, feature_name))"
            )
            conn.execute(f'CREATE INDEX "{table}_ek" ON "{table}" (entity_key)')
        conn.commit()
        upsert = (
            'INSERT INTO "{t}" ({c}) VALUES ({p}) ON CONFLICT(entity_key, feature_name) '
            "DO UPDATE SET value = excluded.value, value_text = excluded.value_text, "
            "event_ts = excluded.event_ts, created_ts = excluded.created_ts"
        )
        started = time.perf_counter()
        with conn:
            for table, table_rows in rows.items():
                sql = upsert.format(
                    t=table, c=", ".join(SQLITE_COLUMNS), p=", ".join("?" * len(SQLITE_COLUMNS))
                )
                conn.executemany(sql, table_rows)
        return time.perf_counter() - started
    finally:
        conn.close()


def run_sqlite(data: PreparedData, work: Path) -> dict[str, Any]:
    from feast.infra.online_stores.helpers import compute_table_id  # noqa: PLC0415

    project = f"cwbench_{uuid.uuid4().hex[:10]}"
    feast_online = {"type": "sqlite", "path": str(work / "feast.db")}
    with temp_feast_store(data.features_dir, feast_online, project) as t:
        feast = materialise_feast(t, data)
    online_db = work / "online.db"
    online = {"type": "sqlite", "path": str(online_db)}
    with temp_feast_store(data.features_dir, online, project) as t:
        real = materialise_direct(t, data)
        tables = [compute_table_id(project, v) for v in online_views(t.store)]
        rows = sqlite_table_rows(online_db, tables)
    floor_seconds = sqlite_floor(rows, work / "floor.db")
    stored = {table: len(r) for table, r in rows.items()}
    return _result("sqlite", real, feast, floor_seconds, {"value_rows_by_table": stored})


# --- Redis ---------------------------------------------------------------------------------


def redis_client() -> redis.Redis:
    import redis  # noqa: PLC0415

    return redis.Redis.from_url(f"redis://{redis_url()}")


def project_keys(client: redis.Redis, project: str) -> list[bytes]:
    # Feast's key is the serialised entity key followed by the project name.
    return list(client.scan_iter(match=b"*" + project.encode(), count=REDIS_SCAN_COUNT))


def read_hashes(client: redis.Redis, keys: list[bytes]) -> list[tuple[bytes, dict[bytes, bytes]]]:
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        values = pipe.execute()
    return list(zip(keys, values, strict=True))


def field_views(views: list[FeatureView]) -> dict[bytes, str]:
    """Which view each hash field belongs to, as Feast names them (_ts:view, mmh3 of refs)."""
    from feast.infra.online_stores.helpers import _mmh3  # noqa: PLC0415

    owner: dict[bytes, str] = {}
    for view in views:
        owner[f"_ts:{view.name}".encode()] = view.name
        for feature in view.features:
            owner[_mmh3(f"{view.name}:{feature.name}")] = view.name
    return owner


def hset_commands(
    hashes: list[tuple[bytes, dict[bytes, bytes]]], owner: dict[bytes, str], old: str, new: str
) -> dict[str, list[tuple[bytes, dict[bytes, bytes]]]]:
    """One HSET per entity and view, as Feast issues them, keyed under the floor project."""
    by_view: dict[str, list[tuple[bytes, dict[bytes, bytes]]]] = defaultdict(list)
    suffix = len(old.encode())
    for key, fields in hashes:
        floor_key = key[:-suffix] + new.encode()
        split: dict[str, dict[bytes, bytes]] = defaultdict(dict)
        for name, value in fields.items():
            split[owner[name]][name] = value
        for view, mapping in split.items():
            by_view[view].append((floor_key, mapping))
    return by_view


def redis_floor(client: redis.Redis, commands: dict[str, list[tuple[bytes, dict]]]) -> float:
    """Pipelined HSETs, one pipeline per view as Feast sends them, without its read-back."""
    started = time.perf_counter()
    for view_commands in commands.values():
        with client.pipeline(transaction=False) as pipe:
            for key, mapping in view_commands:
                pipe.hset(key, mapping=mapping)
            pipe.execute()
    return time.perf_counter() - started


def delete_keys(client: redis.Redis, project: str) -> int:
    keys = project_keys(client, project)
    for start in range(0, len(keys), REDIS_SCAN_COUNT):
        client.delete(*keys[start : start + REDIS_SCAN_COUNT])
    return len(keys)


def run_redis(data: PreparedData) -> dict[str, Any]:
    token = uuid.uuid4().hex[:10]
    # Same length as the loaded project, so floor keys have exactly the same size.
    project, floor_project, feast_project = (
        f"cw{kind}_{token}" for kind in ("bnch", "flor", "fest")
    )
    online = {"type": "redis", "connection_string": redis_url()}
    client = redis_client()
    try:
        with temp_feast_store(data.features_dir, online, feast_project) as t:
            feast = materialise_feast(t, data)
        with temp_feast_store(data.features_dir, online, project) as t:
            real = materialise_direct(t, data)
            hashes = read_hashes(client, project_keys(client, project))
            commands = hset_commands(
                hashes, field_views(online_views(t.store)), project, floor_project
            )
        floor_seconds = redis_floor(client, commands)
        extra = {
            "redis_keys": len(hashes),
            "hset_commands": sum(len(c) for c in commands.values()),
            "value_bytes": sum(len(v) for _, f in hashes for v in f.values()),
            "keys_left_after_teardown": len(project_keys(client, project)),
        }
    finally:
        for name in (floor_project, project, feast_project):
            delete_keys(client, name)
        client.close()
    return _result("redis", real, feast, floor_seconds, extra)


# --- report --------------------------------------------------------------------------------


def _result(
    backend: str, real: FeastRun, feast: FeastRun, floor_seconds: float, extra: dict[str, Any]
) -> dict:
    accounts = real.write.rows_by_view.get("account_payment_velocity", 0)
    return {
        "backend": backend,
        "real_seconds": real.seconds,
        "feast_seconds": feast.seconds,
        "floor_seconds": floor_seconds,
        "entity_rows": real.rows,
        "entity_rows_by_view": dict(real.write.rows_by_view),
        "feast_entity_rows_by_view": dict(feast.write.rows_by_view),
        "accounts": accounts,
        "real_rows_per_s": real.rows / real.seconds,
        "feast_rows_per_s": feast.rows / feast.seconds,
        "floor_rows_per_s": real.rows / floor_seconds,
        "real_accounts_per_s": accounts / real.seconds,
        "floor_accounts_per_s": accounts / floor_seconds,
        "ratio_real_over_floor": floor_seconds / real.seconds,
        "ratio_feast_over_floor": floor_seconds / feast.seconds,
        "split_seconds": {
            "read": real.read.seconds,
            "encode": real.convert.seconds,
            "write": real.write.seconds,
            "rest": real.seconds - real.read.seconds - real.convert.seconds - real.write.seconds,
        },
        "feast_split_seconds": {
            "online_write_batch": feast.write.seconds,
            "arrow_to_proto": feast.convert.seconds,
            "offline_read_and_rest": feast.seconds - feast.write.seconds - feast.convert.seconds,
        },
        **extra,
    }


def to_comparison(r: dict[str, Any], accounts: int) -> Comparison:
    return Comparison(
        benchmark=NAME,
        case=f"{r['backend']} ({accounts:,} accounts)",
        real_seconds=r["real_seconds"],
        floor_seconds=r["floor_seconds"],
        real_rate=r["real_rows_per_s"],
        floor_rate=r["floor_rows_per_s"],
        rate_unit="entity rows/s",
        ratio=r["ratio_real_over_floor"],
        ratio_kind="real/floor rows/s",
        aim=AIM,
        profile={
            "what": f"materialize_latest into {r['backend']}: seconds inside each part, summed; "
            "the next chunk is read while one is written, so parts can add up to more than "
            "the whole",
            "stage_unit": "s",
            "stages": [
                ["whole load (wall)", r["real_seconds"]],
                *([part, r["split_seconds"][part]] for part in ("read", "encode", "write")),
                ["floor: raw bulk write of the same bytes", r["floor_seconds"]],
            ],
        },
        tried=TRIED,
    )


TRIED = (
    "Feast's online-store bytes for whole Arrow columns (ingestion.value_encoding, 11-35x "
    "faster than per-value protos, byte-identical; e0aef0b).",
    "A direct write path beside Feast's online_write_batch (ingestion.online_write): DuckDB "
    "reads the newest row per entity, SQLite rows and Redis hashes are written as Feast's "
    "stores write them; Redis stored stamps read by one Lua call per 10,000 keys, the next "
    "chunk read on a second thread (dba16fc).",
)


REPORT_HEADER = (
    "backend",
    "entity rows",
    "real s",
    "real rows/s",
    "floor s",
    "floor rows/s",
    "real/floor",
    "read/encode/write/rest s",
    "feast s",
    "feast/floor",
    "feast read/proto/write s",
)


def report_row(r: dict[str, Any]) -> list[object]:
    split, feast = r["split_seconds"], r["feast_split_seconds"]
    parts = (split["read"], split["encode"], split["write"], split["rest"])
    feast_parts = (
        feast["offline_read_and_rest"],
        feast["arrow_to_proto"],
        feast["online_write_batch"],
    )
    return [
        r["backend"],
        r["entity_rows"],
        r["real_seconds"],
        r["real_rows_per_s"],
        r["floor_seconds"],
        r["floor_rows_per_s"],
        f"{r['ratio_real_over_floor']:.2f}x",
        "/".join(f"{x:.2f}" for x in parts),
        r["feast_seconds"],
        f"{r['ratio_feast_over_floor']:.2f}x",
        "/".join(f"{x:.1f}" for x in feast_parts),
    ]


def tables(results: list[dict[str, Any]]) -> list[Table]:
    if not results:
        return []
    rows = [report_row(r) for r in results]
    title = "materialize_latest (direct) and Feast's own path vs a raw bulk write of the same bytes"
    return [(title, REPORT_HEADER, rows)]


def report(results: list[dict[str, Any]], comparisons: list[Comparison]) -> None:
    for table in tables(results):
        log_table(*table)
    log_table("ratio", COMPARISON_HEADER, comparison_rows(comparisons))
    log.info("%s", DESIGN_NOTE)


def run(args: argparse.Namespace) -> None:
    from feature_repo.views import SNAPSHOT_TTL  # noqa: PLC0415

    if any(b.startswith("redis") for b in args.backends):
        require_redis(why=", or run only --backends sqlite")
    with Progress(NAME, ["data", *args.backends]) as progress:
        results: list[dict[str, Any]] = []
        progress.tables = lambda: tables(results)
        with progress.stage("data"):
            data = prepare_data(args.accounts, rebuild=args.rebuild_cache)
            expected = expected_rows(data, SNAPSHOT_TTL)
        progress.payload |= {
            "accounts": data.accounts,
            "expected_entity_rows": expected,
            "design_note": DESIGN_NOTE,
            "accounts_note": (
                "acc/s counts the accounts in the newest snapshot (those still receiving "
                "statements), not every generated account; rows/s counts entity rows over all "
                "four online views"
            ),
            "results": results,
        }
        for backend in args.backends:
            with progress.stage(backend):
                results.append(run_backend(backend, data))
                _check_rows(results[-1], expected)
                progress.comparisons.append(to_comparison(results[-1], data.accounts))
        report(results, progress.comparisons)


def run_backend(backend: str, data: PreparedData) -> dict[str, Any]:
    log.info("materialising %s accounts into %s", f"{data.accounts:,}", backend)
    if backend != "sqlite":
        return run_redis(data)
    with tempfile.TemporaryDirectory(prefix="cwbench-sqlite-") as work:
        return run_sqlite(data, Path(work))


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__ or NAME)
    p.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    args = p.parse_args(argv)
    setup_logging()
    run_main(lambda: run(args))


def _check_rows(result: dict[str, Any], expected: dict[str, int]) -> None:
    # A floor over fewer rows than were written would flatter nobody; say so loudly.
    for key in ("entity_rows_by_view", "feast_entity_rows_by_view"):
        if result[key] != expected:
            log.warning("%s: %s %s, expected %s", result["backend"], key, result[key], expected)


if __name__ == "__main__":
    main()
