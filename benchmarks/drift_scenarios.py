"""Does the drift monitor see the generator's drift scenarios, and stay quiet without one?

For every (scenario, seed) the real path runs end to end on a small portfolio: generate
(ingestion.synthetic), validate, build the feature tables, join them the way the feature
service joins them, then monitoring.drift.compute_drift + drift_metrics and the drift rules
of monitoring.alerts.DEFAULT_RULES, with monitoring's default thresholds.

The comparison is calendar-matched: the reference is the `reference_months` snapshots up to
the start of the drift window (they see no drifted event), the current side is the last
snapshot (as_of), which sees the whole window. The "none" control runs the same calendar
without a scenario, so anything it raises is a false alarm as far as the generator goes.

Two populations are compared on each run:
- "all": every account scored at those snapshots, what the monitor would see;
- "seasoned": only accounts scored for at least SEASONED_MONTHS months. The generator
  places no account in the last two months of a run, so the as_of snapshot lacks the
  fresh intake the reference months have; new accounts (no contacts yet, few days
  overdue) then look like drift in every scenario, the control included. Comparing
  seasoned books on both sides removes that edge and leaves the scenario's own footprint.

"alert" means a rule of severity warning or above fired (what monitoring pushes with the
default notify_min_severity); "any rule" also counts the info-level per-feature rule.
Score drift is not measured: it needs a model's probability on both sides, and training one
per run would measure the model more than the monitor.

    .venv/bin/python -m benchmarks.drift_scenarios                    # 5 seeds, 2,000 accounts
    .venv/bin/python -m benchmarks.drift_scenarios --seeds 10 --accounts 4000

Inputs: none beyond the package (each run generates its own data in a temporary folder;
no Feast store, no Redis). The JSON and tables are rewritten after each seed, and once more
however the run ends, with the seeds not run marked.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd

from benchmarks.common import Comparison, log_table, setup_logging
from benchmarks.harness import Progress, Table, run_main

if TYPE_CHECKING:
    from ingestion.synthetic import Scenario
    from monitoring.alerts import Rule
    from monitoring.drift import DriftConfig, FeatureSpec

log = logging.getLogger(__name__)

NAME = "drift_scenarios"
ACCOUNTS = 2_000
MONTHS = 12
DRIFT_MONTHS = 3
REFERENCE_MONTHS = 3
FIRST_SEED = 1
Population = Literal["all", "seasoned"]
POPULATIONS: tuple[Population, ...] = ("all", "seasoned")
# The generator's placements end two months before as_of (ingestion.synthetic).
SEASONED_MONTHS = 2
# Alerts at or above this severity are pushed (monitoring's default notify_min_severity).
ALERT_SEVERITIES = frozenset({"warning", "critical"})
# The ingestion and drift modules log every step and every skipped column; the per-run
# line below says what matters, and the skipped columns are in the JSON.
QUIET_LOGGERS = ("ingestion", "monitoring.drift", "evidently")


@dataclass(frozen=True)
class ScenarioRun:
    """One run: a scenario of the generator on one seed and portfolio size."""

    scenario: Scenario
    seed: int
    accounts: int = ACCOUNTS
    months: int = MONTHS
    drift_months: int = DRIFT_MONTHS
    reference_months: int = REFERENCE_MONTHS


@dataclass
class ScenarioOutcome:
    """What the monitor made of one run on one population."""

    scenario: str
    seed: int
    population: str
    alert: bool
    any_rule: bool
    firings: list[str]
    share_drifted: float
    n_drifted: int
    n_features: int
    drifted: list[str]
    scores: dict[str, float]
    n_reference: int
    n_current: int
    reference_snapshots: list[str]
    current_snapshot: str
    skipped: dict[str, str] = field(default_factory=dict)
    drift_seconds: float = 0.0
    data_seconds: float = 0.0


# --------------------------------------------------------------------------- features


VIEW_KEYS = {
    "account_payment_velocity": "account_id",
    "account_contact_behavior": "account_id",
    "customer_financial_ratios": "customer_id",
}
TIMESTAMP = "event_timestamp"
# When the account was first scored; used to pick the population, never compared.
FIRST_SCORED = "first_scored"
_META = {TIMESTAMP, "created_timestamp", "account_id", "customer_id"}


def service_frame(features_dir: Path, snapshots: Sequence[pd.Timestamp]) -> pd.DataFrame:
    """One row per (account, snapshot), columns named `<view>__<feature>` as Feast names them.

    Rows come from account_profile, which links each account to its customer at the
    snapshot; the account views join on account_id, the customer view on customer_id. At a
    snapshot time every view has a row stamped exactly then, so an equality join gives what
    Feast's point-in-time join gives. The request-time features are computed as training
    computes them: scoring time = the snapshot, no income reported.
    """
    wanted = pd.DatetimeIndex(list(snapshots))
    profile = pd.read_parquet(Path(features_dir) / "account_profile.parquet")
    first = profile.groupby("account_id")[TIMESTAMP].min().rename(FIRST_SCORED)
    frame = profile.loc[profile[TIMESTAMP].isin(wanted), ["account_id", "customer_id", TIMESTAMP]]
    frame = frame.join(first, on="account_id")
    for view, key in VIEW_KEYS.items():
        table = pd.read_parquet(Path(features_dir) / f"{view}.parquet")
        features = [c for c in table.columns if c not in _META]
        table = table.loc[table[TIMESTAMP].isin(wanted), [key, TIMESTAMP, *features]]
        table = table.rename(columns={c: f"{view}__{c}" for c in features})
        frame = frame.merge(table, on=[key, TIMESTAMP], how="left", validate="m:1")
    return _with_request_features(frame.reset_index(drop=True))


def _with_request_features(frame: pd.DataFrame) -> pd.DataFrame:
    # Imported here: the feature repo imports Feast, which costs seconds.
    from feature_repo.request_features import request_time_features  # noqa: PLC0415

    velocity, ratios = "account_payment_velocity__", "customer_financial_ratios__"
    inputs = pd.DataFrame(
        {
            "overdue_since": frame[f"{velocity}overdue_since"],
            "debt_amount": frame[f"{velocity}debt_amount"],
            "debt_to_income_ratio": frame[f"{ratios}debt_to_income_ratio"],
            "scoring_time": frame[TIMESTAMP],
            "reported_monthly_income": 0.0,
        },
        index=frame.index,
    )
    extra = request_time_features(inputs).add_prefix("request_time_features__")
    return pd.concat([frame, extra], axis=1)


def select_population(frame: pd.DataFrame, population: Population) -> pd.DataFrame:
    """All rows, or those of accounts first scored SEASONED_MONTHS or more before the row."""
    if population == "all":
        return frame
    cutoffs = {t: t - pd.DateOffset(months=SEASONED_MONTHS) for t in frame[TIMESTAMP].unique()}
    return frame[frame[FIRST_SCORED] <= frame[TIMESTAMP].map(cutoffs)]


# --------------------------------------------------------------------------- one run


def snapshot_windows(run: ScenarioRun) -> tuple[list[pd.Timestamp], pd.Timestamp]:
    """Reference snapshots (up to the drift window's start) and the current one (as_of).

    A snapshot at t sees only events recorded by t, so the one at the window's first
    instant still shows the undrifted population; the snapshot at as_of has seen every
    month of the window.
    """
    if run.drift_months < 1 or run.reference_months < 1:
        raise ValueError("drift_months and reference_months must be at least 1")
    if run.drift_months >= run.months:
        raise ValueError("the drift window must leave months before it for the reference")
    from ingestion.synthetic import DEFAULT_START  # noqa: PLC0415

    start = pd.Timestamp(DEFAULT_START)
    drift_start = start + pd.DateOffset(months=run.months - run.drift_months)
    reference = [
        drift_start - pd.DateOffset(months=k) for k in reversed(range(run.reference_months))
    ]
    return reference, start + pd.DateOffset(months=run.months)


def build_feature_tables(run: ScenarioRun, workdir: Path) -> Path:
    """Generate, validate and build features for one run under workdir; the features dir."""
    from ingestion.features import build_features  # noqa: PLC0415
    from ingestion.synthetic import SyntheticConfig, generate  # noqa: PLC0415
    from ingestion.validate import validate_raw  # noqa: PLC0415

    config = SyntheticConfig(
        accounts=run.accounts,
        months=run.months,
        seed=run.seed,
        scenario=run.scenario,
        drift_months=run.drift_months,
    )
    generate(config, workdir / "raw", progress=False)
    validate_raw(workdir / "raw", workdir / "validated", workdir / "quarantine", workdir / "qa")
    build_features(workdir / "validated", workdir / "features")
    return workdir / "features"


def drift_rules() -> list[Rule]:
    """The default rules that read drift metrics (score drift included, though unmeasured)."""
    from monitoring.alerts import DEFAULT_RULES  # noqa: PLC0415

    return [r for r in DEFAULT_RULES if r.enabled and r.metric.startswith("drift.")]


def check_drift(
    run: ScenarioRun,
    frame: pd.DataFrame,
    specs: Sequence[FeatureSpec],
    population: Population = "all",
    config: DriftConfig | None = None,
    rules: Sequence[Rule] | None = None,
) -> ScenarioOutcome:
    """compute_drift + drift_metrics + the drift rules on one run's joined feature frame."""
    from monitoring.alerts import evaluate  # noqa: PLC0415
    from monitoring.drift import compute_drift, drift_metrics  # noqa: PLC0415

    reference_at, current_at = snapshot_windows(run)
    rows = select_population(frame, population)
    reference = rows[rows[TIMESTAMP].isin(pd.DatetimeIndex(reference_at))]
    current = rows[rows[TIMESTAMP] == current_at]
    started = time.perf_counter()
    outcome = compute_drift(reference, current, tuple(specs), config)
    drift_seconds = time.perf_counter() - started
    firings = evaluate(drift_rules() if rules is None else rules, drift_metrics(outcome))
    features = outcome.features
    return ScenarioOutcome(
        scenario=run.scenario,
        seed=run.seed,
        population=population,
        alert=any(f.rule.severity in ALERT_SEVERITIES for f in firings),
        any_rule=bool(firings),
        firings=[f.condition_key for f in firings],
        share_drifted=outcome.share_drifted,
        n_drifted=outcome.n_drifted,
        n_features=len(features),
        drifted=features.loc[features["drifted"], "column"].tolist(),
        scores=dict(zip(features["column"].map(str), features["score"].round(4), strict=True)),
        n_reference=outcome.n_reference,
        n_current=outcome.n_current,
        reference_snapshots=[t.date().isoformat() for t in reference_at],
        current_snapshot=current_at.date().isoformat(),
        skipped=dict(outcome.skipped),
        drift_seconds=drift_seconds,
    )


def scenario_frame(run: ScenarioRun, workdir: Path | None = None) -> pd.DataFrame:
    """The joined feature rows of the run's reference and current snapshots."""
    reference_at, current_at = snapshot_windows(run)
    with tempfile.TemporaryDirectory(prefix="cw-drift-", dir=workdir) as tmp:
        features_dir = build_feature_tables(run, Path(tmp))
        return service_frame(features_dir, [*reference_at, current_at])


def run_scenario(
    run: ScenarioRun,
    populations: Sequence[Population] = POPULATIONS,
    config: DriftConfig | None = None,
) -> list[ScenarioOutcome]:
    """The whole path for one (scenario, seed): data once, then drift on each population."""
    from monitoring.drift import service_features  # noqa: PLC0415

    started = time.perf_counter()
    frame = scenario_frame(run)
    data_seconds = time.perf_counter() - started
    outcomes = [check_drift(run, frame, service_features(), p, config) for p in populations]
    for outcome in outcomes:
        outcome.data_seconds = data_seconds
    return outcomes


# --------------------------------------------------------------------------- many runs


@dataclass
class ScenarioSummary:
    """One scenario on one population over all seeds.

    alert_rate is the detection rate, or for the control the false-alarm rate.
    beyond_control counts, per column, the seeds on which it drifted while the same seed's
    control did not: the scenario's own footprint.
    """

    population: str
    scenario: str
    seeds: int
    alert_rate: float
    any_rule_rate: float
    min_share_drifted: float
    mean_share_drifted: float
    max_share_drifted: float
    drifted_in: dict[str, int]
    beyond_control: dict[str, int]

    @property
    def rate_kind(self) -> str:
        return "false-alarm rate" if self.scenario == "none" else "detection rate"


def summarise(outcomes: Sequence[ScenarioOutcome]) -> list[ScenarioSummary]:
    controls = {(o.population, o.seed): set(o.drifted) for o in outcomes if o.scenario == "none"}
    groups = dict.fromkeys((o.population, o.scenario) for o in outcomes)
    summaries = []
    for population, scenario in groups:
        mine = [o for o in outcomes if (o.population, o.scenario) == (population, scenario)]
        beyond = Counter(
            column
            for o in mine
            if scenario != "none" and (population, o.seed) in controls
            for column in set(o.drifted) - controls[population, o.seed]
        )
        summaries.append(
            ScenarioSummary(
                population=population,
                scenario=scenario,
                seeds=len(mine),
                alert_rate=sum(o.alert for o in mine) / len(mine),
                any_rule_rate=sum(o.any_rule for o in mine) / len(mine),
                min_share_drifted=min(o.share_drifted for o in mine),
                mean_share_drifted=sum(o.share_drifted for o in mine) / len(mine),
                max_share_drifted=max(o.share_drifted for o in mine),
                drifted_in=dict(Counter(c for o in mine for c in o.drifted).most_common()),
                beyond_control=dict(beyond.most_common()),
            )
        )
    return summaries


def _short(column: str) -> str:
    return column.split("__", 1)[-1]


RATES_HEADER = ("population", "scenario", "alert rate", "any rule", "min share", "mean", "max")
FOOTPRINT_HEADER = ("population", "scenario", "columns drifted (seeds)")


def rate_rows(summaries: Sequence[ScenarioSummary]) -> list[list[object]]:
    return [
        [
            s.population,
            s.scenario,
            f"{s.alert_rate:.0%} {'false alarms' if s.scenario == 'none' else 'detected'}",
            f"{s.any_rule_rate:.0%}",
            s.min_share_drifted,
            s.mean_share_drifted,
            s.max_share_drifted,
        ]
        for s in summaries
    ]


def footprint_rows(summaries: Sequence[ScenarioSummary], top: int = 6) -> list[list[object]]:
    """The control's drifted columns; for a scenario, those beyond the same-seed control."""
    rows: list[list[object]] = []
    for s in summaries:
        counts = s.drifted_in if s.scenario == "none" else s.beyond_control
        shown = ", ".join(f"{_short(c)} {n}" for c, n in list(counts.items())[:top])
        more = f" (+{len(counts) - top} more)" if len(counts) > top else ""
        rows.append([s.population, s.scenario, (shown or "-") + more])
    return rows


def comparisons(
    summaries: Sequence[ScenarioSummary], outcomes: Sequence[ScenarioOutcome]
) -> list[Comparison]:
    """Rates in the common report shape, so run_all's summary shows them.

    There is no floor to time against: real_seconds is the mean run (data + drift check),
    floor_seconds the mean drift check alone, and the ratio is the rate.
    """
    out = []
    for s in summaries:
        mine = [o for o in outcomes if (o.population, o.scenario) == (s.population, s.scenario)]
        drift = sum(o.drift_seconds for o in mine) / len(mine)
        out.append(
            Comparison(
                benchmark=NAME,
                case=f"{s.scenario}, {s.population} accounts: {s.rate_kind}, {s.seeds} seeds",
                real_seconds=sum(o.data_seconds for o in mine) / len(mine) + drift,
                floor_seconds=drift,
                ratio=s.alert_rate,
                ratio_kind=s.rate_kind,
                aim="<= 0.2" if s.scenario == "none" else ">= 0.8",
            )
        )
    return out


def run_all(
    scenarios: Sequence[Scenario],
    seeds: Sequence[int],
    accounts: int,
    months: int,
    populations: Sequence[Population] = POPULATIONS,
) -> list[ScenarioOutcome]:
    total = len(scenarios) * len(seeds)
    outcomes: list[ScenarioOutcome] = []
    for done, (seed, scenario) in enumerate(
        ((seed, scenario) for seed in seeds for scenario in scenarios), start=1
    ):
        run = ScenarioRun(scenario, seed, accounts=accounts, months=months)
        for o in run_scenario(run, populations):
            outcomes.append(o)
            log.info(
                "[%d/%d] %s seed %d, %s accounts: alert %s, share %.2f (%d/%d); drifted: %s",
                done,
                total,
                scenario,
                seed,
                o.population,
                "yes" if o.alert else "no",
                o.share_drifted,
                o.n_drifted,
                o.n_features,
                ", ".join(_short(c) for c in o.drifted) or "-",
            )
    return outcomes


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, default=5, help="seeds per scenario (default 5)")
    p.add_argument("--first-seed", type=int, default=FIRST_SEED)
    p.add_argument("--accounts", type=int, default=ACCOUNTS, help=f"default {ACCOUNTS:,}")
    p.add_argument("--months", type=int, default=MONTHS, help=f"default {MONTHS}")
    p.add_argument(
        "--populations",
        default=",".join(POPULATIONS),
        help="comma-separated, of: " + ", ".join(POPULATIONS),
    )
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error("--seeds must be at least 1")
    args.populations = [x.strip() for x in args.populations.split(",") if x.strip()]
    if not args.populations or set(args.populations) - set(POPULATIONS):
        p.error(f"--populations takes a comma-separated subset of {POPULATIONS}")
    return args


def tables(summaries: Sequence[ScenarioSummary], size: str) -> list[Table]:
    return [
        (f"drift alerts, {size}", RATES_HEADER, rate_rows(summaries)),
        (
            f"columns drifted on the control / beyond the same-seed control, {size}",
            FOOTPRINT_HEADER,
            footprint_rows(summaries),
        ),
    ]


def run(args: argparse.Namespace) -> None:
    from ingestion.synthetic import SCENARIOS  # noqa: PLC0415
    from monitoring.drift import DriftConfig  # noqa: PLC0415

    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    log.info(
        "%d scenarios x %d seeds, %s accounts x %d months, drift in the last %d",
        len(SCENARIOS),
        len(seeds),
        f"{args.accounts:,}",
        args.months,
        DRIFT_MONTHS,
    )
    started = time.perf_counter()
    outcomes: list[ScenarioOutcome] = []
    with Progress(NAME, [f"seed {seed}" for seed in seeds]) as progress:
        payload = progress.payload
        payload |= {
            "accounts": args.accounts,
            "months": args.months,
            "drift_months": DRIFT_MONTHS,
            "reference_months": REFERENCE_MONTHS,
            "seasoned_months": SEASONED_MONTHS,
            "seeds": seeds,
            "drift_config": asdict(DriftConfig()),
            "rules": [r.to_dict() for r in drift_rules()],
        }
        size = f"{len(seeds)} seeds, {args.accounts:,} accounts x {args.months} months"
        progress.tables = lambda: tables(summarise(outcomes), size) if outcomes else []
        for seed in seeds:
            with progress.stage(f"seed {seed}"):
                outcomes += run_all(SCENARIOS, [seed], args.accounts, args.months, args.populations)
                summaries = summarise(outcomes)
                payload |= {
                    "summaries": [asdict(s) | {"rate_kind": s.rate_kind} for s in summaries],
                    "runs": [asdict(o) for o in outcomes],
                    "seconds": round(time.perf_counter() - started, 1),
                }
                progress.comparisons[:] = comparisons(summaries, outcomes)
        for table in tables(summarise(outcomes), size):
            log_table(*table)
    log.info("%d runs in %.0fs", len(outcomes), time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging()
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    run_main(lambda: run(args))


if __name__ == "__main__":
    main()
