"""Point-in-time training retrieval: Feast get_historical_features against a hand-written
DuckDB ASOF JOIN of the same entity rows to the same three parquet feature tables.

Entity rows are drawn from the labels table (account, customer, snapshot time) with the
request columns training supplies (scoring_time = snapshot, no reported income). Feast runs
over the feature service collection_risk_v1 with full_feature_names and
filter_by_created_timestamp, as training does; the aim is Feast <= 1.5x the floor. Feast is
also timed with the three views' features listed explicitly and no on-demand view, which
isolates what the on-demand view costs, and profiled once to show where the time goes.

    python -m benchmarks.bench_historical --accounts 100000
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from benchmarks.common import (
    COMPARISON_HEADER,
    Comparison,
    PreparedData,
    Timing,
    comparison_rows,
    fmt,
    log_table,
    parser,
    peak_rss_mib,
    prepare_data,
    profile_top,
    reset_peak_rss,
    setup_logging,
    temp_feast_store,
    time_once,
    write_result,
)

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore, FeatureView

    from feature_repo.definitions import Definitions

log = logging.getLogger(__name__)

NAME = "historical"
AIM = "<= 1.5x"
DEFAULT_ROWS = 100_000
SAMPLE_SEED = 7
WARM_UP_ROWS = 2_000
LABELS = {
    "service": "feast service (with on-demand view)",
    "explicit": "feast explicit refs (no on-demand view)",
    "floor": "duckdb asof floor",
}
VIEW_KEYS = {
    "account_payment_velocity": "account_id",
    "customer_financial_ratios": "customer_id",
    "account_contact_behavior": "account_id",
}
# Columns compared between Feast and the floor: one per view, so a wrong join shows.
CHECK_COLUMNS = (
    "account_payment_velocity__debt_amount",
    "account_payment_velocity__days_overdue",
    "customer_financial_ratios__debt_to_income_ratio",
    "account_contact_behavior__contact_responsiveness",
)


def entity_rows(data: PreparedData, rows: int) -> pd.DataFrame:
    import pandas as pd  # noqa: PLC0415

    from ingestion import retrieval  # noqa: PLC0415

    labels = pd.read_parquet(
        data.features_dir / "labels.parquet",
        columns=["account_id", "customer_id", "event_timestamp"],
    )
    if len(labels) < rows:
        log.warning("only %s label rows: using all of them", f"{len(labels):,}")
    sample = labels.sample(n=min(rows, len(labels)), random_state=SAMPLE_SEED)
    # As training builds them: the scoring moment is the snapshot, no income reported.
    return retrieval.entity_rows(
        sample["account_id"], sample["customer_id"], sample["event_timestamp"]
    )


# --- the real path ---------------------------------------------------------------------------


def three_views(definitions: Definitions) -> list[FeatureView]:
    return [getattr(definitions.views, name) for name in VIEW_KEYS]


def explicit_refs(definitions: Definitions) -> list[str]:
    return [f"{v.name}:{f.name}" for v in three_views(definitions) for f in v.features]


def feast_retrieval(
    store: FeatureStore, entity_df: pd.DataFrame, features: Any, phases: dict[str, float]
) -> pd.DataFrame:
    """Training's Feast job (ingestion.retrieval.historical_job) then to_df, timing the two
    phases (plan, then execute). point_in_time_vectors adds only a sort into entity-row
    order on top, which the floor does not do either."""
    from ingestion.retrieval import historical_job  # noqa: PLC0415

    started = time.perf_counter()
    job = historical_job(store, entity_df, features)
    planned = time.perf_counter()
    frame = job.to_df()
    phases["plan"] = planned - started
    phases["execute_and_to_df"] = time.perf_counter() - planned
    return frame


# --- the floor -----------------------------------------------------------------------------


def floor_sql(data: PreparedData, definitions: Definitions) -> str:
    """Per view, an ASOF LEFT JOIN over keys and times only, then an equi-join for the values.

    An ASOF JOIN takes one inequality, so it matches on greatest(event, created): a row is
    usable exactly when both are <= the entity time. Among usable rows this prefers the
    latest known_at rather than the latest event time; the two differ only for a row
    recorded after a newer snapshot, which the builder never writes (created <= event).
    Matching on narrow rows first keeps the payload (lists, strings) out of the ASOF sort;
    the equi-join back is exact because the builder writes one row per entity and snapshot.
    The TTL is applied to the matched row, as Feast's window does.
    """
    selects, joins = ["e.*"], []
    for i, view in enumerate(three_views(definitions)):
        match, values, key = f"m{i}", f"v{i}", VIEW_KEYS[view.name]
        path = data.features_dir / f"{view.name}.parquet"
        fresh = _fresh(f"{match}.matched_ts", view)
        selects += [
            f'CASE WHEN {fresh} THEN {values}."{f.name}" END AS "{view.name}__{f.name}"'
            for f in view.features
        ]
        joins += [
            f"ASOF LEFT JOIN (SELECT {key}, event_timestamp AS matched_ts,"
            f" greatest(event_timestamp, created_timestamp) AS known_at"
            f" FROM read_parquet('{path}')) {match}"
            f" ON {match}.{key} = e.{key} AND e.event_timestamp >= {match}.known_at",
            f"LEFT JOIN read_parquet('{path}') {values}"
            f" ON {values}.{key} = {match}.{key} AND {values}.event_timestamp = {match}.matched_ts",
        ]
    return f"SELECT {', '.join(selects)} FROM entity_df e " + " ".join(joins)


def _fresh(matched_ts: str, view: FeatureView) -> str:
    # Feast treats a zero or missing TTL as "no limit".
    ttl_seconds = int(view.ttl.total_seconds()) if view.ttl else 0
    if not ttl_seconds:
        return "TRUE"
    return f"{matched_ts} >= e.event_timestamp - INTERVAL {ttl_seconds} SECOND"


def floor_retrieval(sql: str, entity_df: pd.DataFrame) -> pd.DataFrame:
    from ingestion.features import connect  # noqa: PLC0415

    con = connect()
    try:
        con.register("entity_df", entity_df)
        # Through Arrow to pandas, the same road Feast's to_df takes.
        return con.sql(sql).to_arrow_table().to_pandas()
    finally:
        con.close()


def agreement(feast: pd.DataFrame, floor: pd.DataFrame) -> dict[str, int]:
    """Rows where Feast and the floor disagree, per checked column (nulls equal nulls)."""
    import numpy as np  # noqa: PLC0415

    keys = ["account_id", "event_timestamp"]
    merged = feast.merge(floor, on=keys, suffixes=("_feast", "_floor"), validate="one_to_one")
    out = {"rows_feast": len(feast), "rows_floor": len(floor), "rows_matched": len(merged)}
    for column in CHECK_COLUMNS:
        a = merged[f"{column}_feast"].to_numpy(dtype="float64", na_value=np.nan)
        b = merged[f"{column}_floor"].to_numpy(dtype="float64", na_value=np.nan)
        same = np.isclose(a, b, equal_nan=True)
        out[f"mismatch_{column}"] = int((~same).sum())
    return out


# --- running -------------------------------------------------------------------------------


def measure(data: PreparedData, rows: int, repeats: int, profile: bool) -> dict[str, Any]:
    entity_df = entity_rows(data, rows)
    project = f"cwbench_{uuid.uuid4().hex[:10]}"
    with temp_feast_store(data.features_dir, {"type": "sqlite", "path": ":memory:"}, project) as t:
        paths = Paths(t.store, t.definitions, data)
        paths.run_all(entity_df.head(WARM_UP_ROWS))  # lazy imports, ibis and DuckDB start
        phases: dict[str, dict[str, float]] = {"service": {}, "explicit": {}}
        frames: dict[str, pd.DataFrame] = {}
        timings = {case: Timing() for case in LABELS}
        # Peak RSS while each path ran (its high-water mark restarted before each call),
        # the largest over its runs; the resident size before the calls is the baseline.
        peaks = dict.fromkeys(LABELS, 0.0)
        baseline = peak_rss_mib() if reset_peak_rss() else None
        # Interleaved rounds, so that load from elsewhere on the machine hits every path.
        for i in range(repeats):
            for case, label in LABELS.items():
                reset_peak_rss()
                seconds, _ = time_once(paths.runner(case, entity_df, frames, phases))
                peaks[case] = max(peaks[case], peak_rss_mib())
                timings[case].samples.append(seconds)
                log.info("%s run %d/%d: %.2f s", label, i + 1, repeats, seconds)
        top = None
        if profile:
            top = profile_top(paths.runner("service", entity_df, {}, {"service": {}}))
    return {
        "rows": len(entity_df),
        "feature_refs": len(paths.refs),
        "timings": {k: v.samples for k, v in timings.items()},
        "medians": {k: v.median for k, v in timings.items()},
        "phases_last_run": phases,
        "rss_before_mib": baseline,
        # None where the high-water mark cannot be restarted: the process's peak then.
        "peak_rss_mib": peaks if baseline is not None else dict.fromkeys(peaks),
        "agreement_service_vs_floor": agreement(frames["service"], frames["floor"]),
        "profile_service": top,
    }


class Paths:
    """The three ways of building the training frame, over one applied store."""

    def __init__(self, store: FeatureStore, definitions: Definitions, data: PreparedData):
        from feature_repo.feature_services import COLLECTION_RISK_V1  # noqa: PLC0415

        self.store = store
        # Fetched once: the registry lookup is not what this benchmark is about.
        self.service = store.get_feature_service(COLLECTION_RISK_V1)
        self.refs = explicit_refs(definitions)
        self.sql = floor_sql(data, definitions)

    def runner(
        self,
        case: str,
        entity_df: pd.DataFrame,
        frames: dict[str, pd.DataFrame],
        phases: dict[str, dict[str, float]],
    ) -> Callable[[], None]:
        def run() -> None:
            if case == "floor":
                frames[case] = floor_retrieval(self.sql, entity_df)
                return
            features = self.service if case == "service" else self.refs
            frames[case] = feast_retrieval(self.store, entity_df, features, phases[case])

        return run

    def run_all(self, entity_df: pd.DataFrame) -> None:
        phases: dict[str, dict[str, float]] = {"service": {}, "explicit": {}}
        for case in LABELS:
            self.runner(case, entity_df, {}, phases)()


def comparisons(result: dict[str, Any], accounts: int) -> list[Comparison]:
    m, rows = result["medians"], result["rows"]
    phases = result["phases_last_run"]
    return [
        Comparison(
            benchmark=NAME,
            case=f"{label} ({rows:,} rows, {accounts:,} accounts)",
            real_seconds=m[case],
            floor_seconds=m["floor"],
            real_rate=rows / m[case],
            floor_rate=rows / m["floor"],
            rate_unit="entity rows/s",
            ratio=m[case] / m["floor"],
            ratio_kind="real/floor seconds",
            aim=AIM,
            profile=where_time_goes(
                case, phases[case], result["profile_service"], rows, result["peak_rss_mib"]
            ),
            tried=TRIED,
        )
        for case, label in (("service", "feature service"), ("explicit", "explicit refs, no ODFV"))
    ]


def where_time_goes(
    case: str,
    phases: dict[str, float],
    top: dict[str, Any] | None,
    rows: int,
    peaks: dict[str, float | None],
) -> dict[str, Any]:
    """Feast's plan and execution split, and (the service path) the profiled extra run."""
    stages = [[phase, seconds] for phase, seconds in phases.items()]
    what = (
        f"get_historical_features over {rows:,} rows, its phases in the last timed run; "
        f"peak RSS {fmt(peaks[case])} MiB against the floor's {fmt(peaks['floor'])} MiB"
    )
    if case == "service" and top:
        return {"what": f"{what}; cProfile of one more run", "stage_unit": "s",
                "stages": stages, **top}  # fmt: skip
    return {"what": what, "stage_unit": "s", "stages": stages}


TRIED = (
    "Retrieval goes through Feast's DuckDB offline store (ibis) as training does; the "
    "benchmark splits its plan from its execution and times the explicit refs without the "
    "on-demand view beside the feature service, so the view's own cost shows.",
)


def report(result: dict[str, Any], items: list[Comparison]) -> None:
    m, phases, rows = result["medians"], result["phases_last_run"], result["rows"]
    peak = result["peak_rss_mib"]
    log_table(
        f"get_historical_features, {rows:,} entity rows",
        ("path", "median s", "rows/s", "plan s", "execute + to_df s", "peak RSS MiB"),
        [
            [
                "feast: service collection_risk_v1",
                m["service"],
                rows / m["service"],
                phases["service"].get("plan"),
                phases["service"].get("execute_and_to_df"),
                peak["service"],
            ],
            [
                f"feast: {result['feature_refs']} explicit refs, no ODFV",
                m["explicit"],
                rows / m["explicit"],
                phases["explicit"].get("plan"),
                phases["explicit"].get("execute_and_to_df"),
                peak["explicit"],
            ],
            ["floor: DuckDB ASOF JOIN", m["floor"], rows / m["floor"], None, None, peak["floor"]],
        ],
    )
    log.info("resident before the timed runs: %s MiB", fmt(result["rss_before_mib"]))
    log_table("ratio", COMPARISON_HEADER, comparison_rows(items))
    log.info("agreement (service vs floor): %s", result["agreement_service_vs_floor"])
    if result["profile_service"]:
        log_profile(result["profile_service"])


def log_profile(profile: dict[str, list[dict[str, Any]]]) -> None:
    for key, order in (("by_own_time", "own"), ("by_cumulative_time", "cumulative")):
        log_table(
            f"cProfile of one service run, top 10 by {order} time",
            ("function", "calls", "own s", "cumulative s"),
            [[r["function"], r["calls"], r["own_s"], r["cumulative_s"]] for r in profile[key]],
        )


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__ or NAME)
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="entity rows to retrieve")
    p.add_argument("--repeats", type=int, default=3, help="runs of each path; the median counts")
    p.add_argument("--no-profile", action="store_true", help="skip the profiled extra run")
    args = p.parse_args(argv)
    setup_logging()
    data = prepare_data(args.accounts, rebuild=args.rebuild_cache)
    result = measure(data, args.rows, args.repeats, profile=not args.no_profile)
    items = comparisons(result, data.accounts)
    report(result, items)
    write_result(NAME, {"accounts": data.accounts, **result}, items)


if __name__ == "__main__":
    main()
