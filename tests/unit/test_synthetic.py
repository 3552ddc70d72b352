"""The synthetic generator: determinism, the raw contract, the label rule and the oracle."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ingestion import contract, rawio
from ingestion.features import build_features
from ingestion.synthetic import (
    GenerationSummary,
    SyntheticConfig,
    SyntheticConfigError,
    generate,
    month_start,
)
from tests.rawdata import assert_meets_contract

pytestmark = pytest.mark.unit

ACCOUNTS = 2_000
MONTHS = 12
SEED = 7
LABEL_WINDOW = pd.Timedelta(days=30)
LABEL_HORIZON = pd.Timedelta(days=30 + 21)
KEYS = ["account_id", "snapshot_at"]

Tables = dict[str, pd.DataFrame]


def _config(**overrides: object) -> SyntheticConfig:
    settings: dict[str, object] = {
        "accounts": ACCOUNTS,
        "months": MONTHS,
        "seed": SEED,
        "chunk_accounts": 1_000,
    }
    settings.update(overrides)
    return SyntheticConfig(**settings)  # type: ignore[arg-type]


def _read(out: Path) -> Tables:
    tables = {t.name: rawio.read_table(out, t.name) for t in contract.REQUIRED_TABLES}
    oracle_parts = sorted(str(p) for p in (out / "_oracle").glob("*.parquet"))
    tables["_oracle"] = pq.ParquetDataset(oracle_parts).read().to_pandas()
    return tables


def _run(root: Path, name: str, **overrides: object) -> tuple[GenerationSummary, Tables]:
    out = root / name
    summary = generate(_config(**overrides), out, progress=False)
    return summary, _read(out)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


@pytest.fixture(scope="module")
def base(root: Path) -> tuple[GenerationSummary, Tables]:
    return _run(root, "base")


@pytest.fixture(scope="module")
def tables(base: tuple[GenerationSummary, Tables]) -> Tables:
    return base[1]


@pytest.fixture(scope="module")
def as_of() -> pd.Timestamp:
    return pd.Timestamp(_config().as_of)


@pytest.fixture(scope="module")
def drift_start() -> pd.Timestamp:
    cfg = _config()
    return pd.Timestamp(cfg.start) + pd.DateOffset(months=cfg.months - cfg.drift_months)


def _labels(tables: Tables, as_of: pd.Timestamp) -> pd.DataFrame:
    """default_30d as the platform defines it, on matured snapshots, next to the oracle."""
    oracle = tables["_oracle"]
    matured = oracle[oracle["snapshot_at"] + LABEL_HORIZON <= as_of].set_index(KEYS)
    pays = matured.reset_index()[KEYS].merge(tables["payments"], on="account_id")
    in_window = (
        (pays["paid_at"] > pays["snapshot_at"])
        & (pays["paid_at"] <= pays["snapshot_at"] + LABEL_WINDOW)
        & (pays["recorded_at"] <= pays["snapshot_at"] + LABEL_HORIZON)
    )
    sign = np.where(pays["status"] == "settled", 1.0, -1.0)
    pays = pays.assign(net=sign * pays["amount"])[in_window]
    net = pays.groupby(KEYS)["net"].sum().reindex(matured.index, fill_value=0.0)
    return matured.assign(net=net, default_30d=(net < 1.0).astype(int)).reset_index()


def _before(df: pd.DataFrame, column: str, when: pd.Timestamp) -> pd.DataFrame:
    return df[df[column] < when].reset_index(drop=True)


# --- determinism -------------------------------------------------------------------------


def test_same_seed_gives_identical_tables(root: Path, tables: Tables) -> None:
    _, again = _run(root, "again")
    for name, frame in tables.items():
        pd.testing.assert_frame_equal(frame, again[name], obj=name)


def test_different_seed_gives_different_tables(root: Path, tables: Tables) -> None:
    _, other = _run(root, "other_seed", seed=SEED + 1)
    assert not tables["payments"].equals(other["payments"])
    assert not tables["customers"]["monthly_income"].equals(other["customers"]["monthly_income"])


# --- the raw contract --------------------------------------------------------------------


@pytest.mark.parametrize("spec", contract.REQUIRED_TABLES, ids=lambda t: t.name)
def test_tables_follow_the_contract(tables: Tables, spec: contract.Table) -> None:
    df = tables[spec.name]
    assert len(df) > 0
    assert_meets_contract(df, spec)


def test_oracle_columns(tables: Tables) -> None:
    oracle = tables["_oracle"]
    assert list(oracle.columns) == ["account_id", "snapshot_at", "p_default"]
    assert str(oracle["snapshot_at"].dtype) == "datetime64[us, UTC]"
    assert oracle["p_default"].dtype == np.float64
    assert oracle["p_default"].between(0.0, 1.0).all()
    assert not oracle.duplicated(KEYS).any()


def test_ids_have_their_format(tables: Tables) -> None:
    patterns = {
        ("accounts", "account_id"): r"A\d{8}",
        ("customers", "customer_id"): r"C\d{8}",
        ("payments", "payment_id"): r"P\d{10}",
        ("contacts", "contact_id"): r"K\d{10}",
        ("promises", "promise_id"): r"R\d{10}",
    }
    for (table, column), pattern in patterns.items():
        assert tables[table][column].str.fullmatch(pattern).all(), column


def test_foreign_keys_resolve(tables: Tables) -> None:
    for spec in contract.REQUIRED_TABLES:
        for column, parent in spec.foreign_keys.items():
            known = set(tables[parent][contract.TABLES_BY_NAME[parent].key])
            assert set(tables[spec.name][column]) <= known, f"{spec.name}.{column}"
    assert set(tables["_oracle"]["account_id"]) <= set(tables["accounts"]["account_id"])


def test_customers_hold_about_one_and_a_quarter_accounts(tables: Tables) -> None:
    ratio = len(tables["accounts"]) / len(tables["customers"])
    assert 1.1 < ratio < 1.4
    assert set(tables["customers"]["customer_id"]) == set(tables["accounts"]["customer_id"])


def test_recorded_after_event_and_nothing_after_as_of(tables: Tables, as_of: pd.Timestamp) -> None:
    for spec in contract.REQUIRED_TABLES:
        df = tables[spec.name]
        if spec.recorded_time is not None:
            assert (df[spec.recorded_time] >= df[spec.event_time]).all(), spec.name
            assert (df[spec.recorded_time] <= as_of).all(), spec.name
        elif spec.event_time is not None:
            assert (df[spec.event_time] <= as_of).all(), spec.name
    assert tables["statements"]["statement_date"].max() <= as_of
    assert tables["_oracle"]["snapshot_at"].max() == as_of


def test_account_dates_and_limits(tables: Tables, as_of: pd.Timestamp) -> None:
    acc = tables["accounts"]
    assert (acc["opened_at"] < acc["delinquent_since"]).all()
    assert (acc["delinquent_since"] <= acc["placed_at"]).all()
    loans = acc["product"].isin(["personal_loan", "auto_loan"])
    assert acc.loc[loans, "credit_limit"].isna().all()
    assert acc.loc[~loans, "credit_limit"].notna().all()
    # New accounts are placed in every month up to two months before as_of.
    placed_months = acc["placed_at"].dt.tz_localize(None).dt.to_period("M").nunique()
    assert placed_months >= MONTHS + 4
    assert acc["placed_at"].max() < as_of - pd.DateOffset(months=2)


def test_statements_are_monthly_and_track_days_past_due(tables: Tables) -> None:
    st = tables["statements"].sort_values(["account_id", "statement_date"])
    assert (st["statement_date"].dt.day == 25).all()
    assert not st.duplicated(["account_id", "statement_date"]).any()
    assert (st["minimum_due"] <= st["balance"] + 0.01).all()
    step = st.groupby("account_id")["days_past_due"].diff().dropna()
    # Either caught up (reset to 0) or about one month more overdue.
    grew = step.between(28, 31)
    reset = st.loc[step.index, "days_past_due"] == 0
    assert (grew | reset).all()
    assert reset.mean() > 0.2 and grew.mean() > 0.1


# --- the label rule and the oracle -----------------------------------------------------------


def test_population_is_what_the_oracle_scores(tables: Tables, as_of: pd.Timestamp) -> None:
    """Scored: placed before t with a statement within the 45 days before t."""
    st, acc = tables["statements"], tables["accounts"]
    placed = acc.set_index("account_id")["placed_at"]
    rows = []
    start = tables["_oracle"]["snapshot_at"].min()
    for t in pd.date_range(start, as_of, freq="MS"):
        recent = st[
            (st["statement_date"] < t) & (st["statement_date"] >= t - pd.Timedelta(days=45))
        ]
        ids = pd.Index(recent["account_id"].unique())
        ids = ids[(placed.reindex(ids) < t).to_numpy()]
        rows.append(pd.DataFrame({"account_id": ids, "snapshot_at": t}))
    population = pd.concat(rows).sort_values(KEYS).reset_index(drop=True)
    oracle = tables["_oracle"][KEYS].sort_values(KEYS).reset_index(drop=True)
    pd.testing.assert_frame_equal(population, oracle, check_dtype=False)


def test_label_rule_hits_the_target_and_agrees_with_the_oracle(
    tables: Tables, as_of: pd.Timestamp
) -> None:
    labels = _labels(tables, as_of)
    assert len(labels) > 5_000
    share = labels["default_30d"].mean()
    assert abs(share - _config().default_rate) < 0.04
    assert abs(share - labels["p_default"].mean()) < 0.03
    deciles = pd.qcut(labels["p_default"].rank(method="first"), 10, labels=False)
    rate = labels.groupby(deciles)["default_30d"].mean().to_numpy()
    assert (np.diff(rate) > -0.02).all(), rate
    assert rate[-1] - rate[0] > 0.5, rate
    quintiles = pd.qcut(labels["p_default"].rank(method="first"), 5, labels=False)
    assert labels.groupby(quintiles)["default_30d"].mean().is_monotonic_increasing


def test_summary_matches_the_platform_labels(
    base: tuple[GenerationSummary, Tables], tmp_path: Path
) -> None:
    """The generator's own tally agrees with the labels the feature SQL derives."""
    summary, tables = base
    build_features(summary.out_dir, tmp_path / "features")
    labels = pd.read_parquet(tmp_path / "features" / "labels.parquet")
    labels = labels.rename(columns={"event_timestamp": "snapshot_at"})
    # snapshots before start + 1 month (the warm-up history) have no oracle row
    merged = labels.merge(tables["_oracle"], on=KEYS)
    assert len(merged) == pytest.approx(summary.labelled_snapshots, rel=0.01)
    assert summary.default_share == pytest.approx(merged["default_30d"].mean(), abs=0.01)
    assert summary.oracle_mean == pytest.approx(merged["p_default"].mean(), abs=0.01)
    assert 0.75 < summary.oracle_auc < 0.92


def test_reversals_cancel_an_earlier_payment(tables: Tables) -> None:
    pay = tables["payments"]
    reversed_ = pay[pay["status"] == "reversed"]
    settled = pay[pay["status"] == "settled"]
    assert 0.01 < len(reversed_) / len(settled) < 0.06
    pairs = reversed_.merge(
        settled, on=["account_id", "paid_at", "amount"], suffixes=("", "_original")
    )
    assert pairs["payment_id"].nunique() == len(reversed_)
    assert (pairs["recorded_at"] > pairs["recorded_at_original"]).all()
    assert (pairs["recorded_at"] - pairs["paid_at"] <= pd.Timedelta(days=20)).all()


def test_payments_are_at_least_one_and_mostly_recorded_quickly(tables: Tables) -> None:
    pay = tables["payments"]
    assert (pay["amount"] >= 1.0).all()
    lag = (pay["recorded_at"] - pay["paid_at"])[pay["status"] == "settled"]
    assert (lag <= pd.Timedelta(days=3)).mean() > 0.85
    assert lag.max() > pd.Timedelta(days=5)
    assert lag.max() <= pd.Timedelta(days=20)


def test_low_risk_debtors_keep_promises_and_answer(tables: Tables) -> None:
    risk = tables["_oracle"].groupby("account_id")["p_default"].mean()
    risky = risk > risk.median()
    promises = tables["promises"]
    pays = promises.merge(tables["payments"], on="account_id")
    in_time = (pays["paid_at"] >= pays["made_at"]) & (pays["paid_at"] <= pays["due_date"])
    sign = np.where(pays["status"] == "settled", 1.0, -1.0)
    covered = pays.assign(net=sign * pays["amount"])[in_time].groupby("promise_id")["net"].sum()
    promises = promises.assign(
        covered=covered.reindex(promises["promise_id"], fill_value=0).to_numpy()
    )
    kept = promises["covered"] >= 0.9 * promises["promised_amount"]
    by_risk = kept.groupby(risky.reindex(promises["account_id"]).to_numpy()).mean()
    assert by_risk[False] > by_risk[True] + 0.2
    contacts = tables["contacts"]
    refused = (
        (contacts["outcome"] == "refused")
        .groupby(risky.reindex(contacts["account_id"]).to_numpy())
        .mean()
    )
    assert refused[True] > refused[False]


# --- scenarios ---------------------------------------------------------------------------


EVENT_COLUMNS = {
    "statements": "statement_date",
    "payments": "paid_at",
    "contacts": "contacted_at",
    "promises": "made_at",
    "customers": "created_at",
    "_oracle": "snapshot_at",
}


def _assert_identical_before(a: Tables, b: Tables, when: pd.Timestamp) -> None:
    pd.testing.assert_frame_equal(a["accounts"], b["accounts"])
    for table, column in EVENT_COLUMNS.items():
        before_a, before_b = _before(a[table], column, when), _before(b[table], column, when)
        assert len(before_a) > 0, table
        pd.testing.assert_frame_equal(before_a, before_b, obj=table)


def test_income_shock_lowers_new_incomes_only_in_the_window(
    root: Path, tables: Tables, drift_start: pd.Timestamp
) -> None:
    _, shocked = _run(root, "income_shock", scenario="income_shock")
    _assert_identical_before(tables, shocked, drift_start)
    cust = tables["customers"].set_index("customer_id")
    new = shocked["customers"].set_index("customer_id")
    new = new[new["created_at"] >= drift_start]
    assert len(new) > 20
    ratio = new["monthly_income"] / cust.loc[new.index, "monthly_income"]
    assert ratio.dropna().between(0.55, 0.65).all()
    window = shocked["_oracle"]["snapshot_at"] >= drift_start
    base_window = tables["_oracle"]["snapshot_at"] >= drift_start
    shocked_mean = shocked["_oracle"].loc[window, "p_default"].mean()
    assert shocked_mean > tables["_oracle"].loc[base_window, "p_default"].mean() + 0.03


def test_channel_shift_moves_payments_to_the_app(
    root: Path, tables: Tables, drift_start: pd.Timestamp
) -> None:
    _, shifted = _run(root, "channel_shift", scenario="channel_shift")
    _assert_identical_before(tables, shifted, drift_start)

    def mobile_share(pay: pd.DataFrame) -> float:
        window = pay[pay["paid_at"] >= drift_start]
        return float((window["channel"] == "mobile_app").mean())

    assert mobile_share(shifted["payments"]) > mobile_share(tables["payments"]) + 0.3
    contacts = shifted["contacts"]
    remote = contacts["channel"].isin(["sms", "email"])
    in_window = contacts["contacted_at"] >= drift_start
    assert remote[in_window].mean() > remote[~in_window].mean() + 0.2


# --- chunks, reruns and the manifest -------------------------------------------------------


def test_smaller_chunks_give_valid_data_and_replace_old_parts(root: Path) -> None:
    out = root / "chunks"
    generate(_config(chunk_accounts=500), out, progress=False)
    assert len(rawio.part_paths(out, "payments")) == 4
    small = _read(out)
    generate(_config(chunk_accounts=1_000), out, progress=False)
    assert len(rawio.part_paths(out, "payments")) == 2
    assert len(list((out / "_oracle").glob("*.parquet"))) == 2
    for tables in (small, _read(out)):
        assert len(tables["accounts"]) == ACCOUNTS
        for spec in contract.REQUIRED_TABLES:
            assert tables[spec.name][spec.key].is_unique or not spec.columns[0].unique
        assert set(tables["payments"]["account_id"]) <= set(tables["accounts"]["account_id"])
        assert set(tables["accounts"]["customer_id"]) <= set(tables["customers"]["customer_id"])


def test_manifest_describes_the_run(root: Path, tables: Tables) -> None:
    manifest = json.loads((root / "base" / "_manifest.json").read_text())
    assert manifest["source"] == "synthetic"
    assert datetime.fromisoformat(manifest["as_of"]) == _config().as_of
    assert datetime.fromisoformat(manifest["start"]) == datetime(2024, 11, 1, tzinfo=UTC)
    for key in ("months", "accounts", "seed", "scenario", "drift_months", "generator_version"):
        assert key in manifest
    assert manifest["default_rate_target"] == 0.25
    for name, frame in tables.items():
        assert manifest["row_counts"][name] == len(frame)


@pytest.mark.parametrize(
    "overrides",
    [
        {"start": datetime(2024, 11, 15, tzinfo=UTC)},
        {"start": datetime(2024, 11, 1)},
        {"scenario": "meteor"},
        {"drift_months": -1},
        # A drift window longer than the run would start before the first generated month.
        {"drift_months": MONTHS + 1},
        {"drift_months": 50, "scenario": "income_shock"},
        {"default_rate": 1.5},
        {"accounts": 0},
    ],
)
def test_bad_configs_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(SyntheticConfigError):
        _config(**overrides)


def test_drift_window_may_cover_the_whole_run() -> None:
    assert _config(drift_months=MONTHS, scenario="channel_shift").drift_months == MONTHS


def test_month_start_reads_a_date() -> None:
    assert month_start("2024-11-01") == datetime(2024, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("notadate", "not a date"), ("2024-13-01", "not a date"), ("2024-11-15", "first day")],
)
def test_month_start_names_the_bad_value(text: str, problem: str) -> None:
    with pytest.raises(SyntheticConfigError, match=rf"start '{text}': .*{problem}"):
        month_start(text)
