"""The feature build under a memory cap: DuckDB spills instead of growing, and the tables
come out the same (money sums are rounded to the cent, so a changed summation order moves
nothing but the last bits of a float). A cap DuckDB cannot read, or one it runs out of,
is one clear line that leaves the previous tables in place."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from collectwise.cli import app as cli
from feature_repo.transformations import LABEL_TABLE
from ingestion.features import build_features
from ingestion.synthetic import SyntheticConfig, generate
from ingestion.validate import validate_raw
from tests.integration.conftest import FeatureData
from tests.small_disk import small_disk

pytestmark = pytest.mark.integration

TABLES = ("account_payment_velocity", "customer_financial_ratios", "account_contact_behavior",
          "account_profile", LABEL_TABLE)  # fmt: skip
KEYS = {"customer_financial_ratios": ["customer_id", "event_timestamp"]}


def _frame(features: Path, table: str) -> pd.DataFrame:
    keys = KEYS.get(table, ["account_id", "event_timestamp"])
    frame = pd.read_parquet(features / f"{table}.parquet")
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def test_a_capped_build_spills_and_gives_the_same_tables(
    feature_data: FeatureData, tmp_path: Path
) -> None:
    capped = tmp_path / "capped"
    summary = build_features(feature_data.root / "validated", capped, memory_limit="40MB")
    assert summary.rows["account_payment_velocity"] > 1000
    for table in TABLES:
        ours, reference = _frame(capped, table), _frame(feature_data.features_dir, table)
        # Exact for every count, id, time and label; floats to their last bits.
        pd.testing.assert_frame_equal(ours, reference, check_exact=False, rtol=1e-12, atol=1e-12)
    # The spill folder beside the output is gone, and nothing was written elsewhere.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["capped"]


@pytest.mark.parametrize(
    ("cap", "exit_code", "said"),
    [
        # DuckDB cannot read the cap.
        ("lots", 1, ["--memory-limit 'lots'", "Memory must have a number"]),
        # A real OutOfMemoryException: the build's first statements need more than 1MB.
        ("1MB", 1, ["DuckDB ran out of memory building the features", "memory limit 1MB",
                    "COLLECTWISE_INGESTION__DUCKDB_MEMORY_LIMIT"]),
    ],
)  # fmt: skip
def test_a_cap_that_fails_is_one_clear_line_and_keeps_the_tables(
    feature_data: FeatureData,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    cap: str,
    exit_code: int,
    said: list[str],
) -> None:
    out = tmp_path / "features"
    build_features(feature_data.root / "validated", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    args = ["build-features", "--raw", str(feature_data.root / "validated"), "--out", str(out),
            "--memory-limit", cap]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == exit_code and "Traceback" not in result.output
    for words in said:
        assert words in caplog.text
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # The spill and staging folders beside the output are gone.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features"]


def test_a_full_disk_is_one_clear_line_and_keeps_the_tables(
    feature_data: FeatureData, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tables = sum(p.stat().st_size for p in feature_data.features_dir.iterdir()) // 1024
    # Room for the previous tables and a little more: the new build's files do not fit.
    with small_disk(tmp_path / "disk", tables + 64) as disk:
        out = disk / "features"
        shutil.copytree(feature_data.features_dir, out)
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        args = ["build-features", "--raw", str(feature_data.root / "validated"),
                "--out", str(out)]  # fmt: skip
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "DuckDB could not read or write a file building the features" in caplog.text
        assert "No space left on device" in caplog.text
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
        assert sorted(p.name for p in disk.iterdir()) == ["features"]


def test_a_partitioned_build_gives_the_same_rows(
    feature_data: FeatureData, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Slices of the customers, built one at a time, add up to the whole build: customer
    features see every account of their customer, and the calendar is the whole book's."""
    out = tmp_path / "sliced"
    args = ["build-features", "--raw", str(feature_data.root / "validated"), "--out", str(out),
            "--partitions", "3"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "partition 3/3 built" in caplog.text
    for table in TABLES:
        ours, reference = _frame(out, table), _frame(feature_data.features_dir, table)
        pd.testing.assert_frame_equal(ours, reference, check_exact=False, rtol=1e-12, atol=1e-12)
    manifest = json.loads((out / "_manifest.json").read_text())
    whole = json.loads((feature_data.features_dir / "_manifest.json").read_text())
    assert manifest == whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sliced"]
    assert not (out / "_parts").exists() and not (out / "_split").exists()


def test_slices_with_no_rows_build_as_empty_slices(tmp_path: Path) -> None:
    """More slices than customers: most slices hold no rows of some table (or of any), and
    the build still adds up to the whole."""
    config = SyntheticConfig(accounts=6, months=6, seed=3, start=datetime(2025, 1, 1, tzinfo=UTC))
    generate(config, tmp_path / "raw")
    validate_raw(tmp_path / "raw", tmp_path / "validated", tmp_path / "quarantine",
                 tmp_path / "reports")  # fmt: skip
    whole = tmp_path / "whole"
    build_features(tmp_path / "validated", whole)
    sliced = tmp_path / "sliced"
    build_features(tmp_path / "validated", sliced, partitions=16)
    customers = str(tmp_path / "validated" / "customers" / "*.parquet")
    used = duckdb.execute(
        f"SELECT count(DISTINCT hash(customer_id) % 16) FROM '{customers}'"
    ).fetchone()
    assert used is not None and used < (16,), (
        "every slice has a customer: the test needs empty ones"
    )
    for table in TABLES:
        pd.testing.assert_frame_equal(_frame(sliced, table), _frame(whole, table),
                                      check_exact=False, rtol=1e-12, atol=1e-12)  # fmt: skip
    assert json.loads((sliced / "_manifest.json").read_text()) == json.loads(
        (whole / "_manifest.json").read_text()
    )
