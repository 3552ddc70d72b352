"""The raw contract holds on what our own sources produce: generated and UCI-derived data."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingestion.contract import REQUIRED_TABLES
from ingestion.synthetic import SyntheticConfig, generate
from ingestion.uci import ingest_uci
from ingestion.validate import validate_raw

pytestmark = pytest.mark.data


@pytest.mark.parametrize("scenario", ["none", "income_shock", "channel_shift"])
def test_generated_data_meets_the_contract(tmp_path: Path, scenario: str) -> None:
    config = SyntheticConfig(
        accounts=600, months=8, seed=11, scenario=scenario, start=datetime(2025, 1, 1, tzinfo=UTC)
    )
    generate(config, tmp_path / "raw")
    summary = validate_raw(tmp_path / "raw", tmp_path / "ok", tmp_path / "q", tmp_path / "rep")
    for table in REQUIRED_TABLES:
        counts = summary.tables[table.name]
        assert counts.quarantined == 0, (table.name, counts)
        assert counts.good == counts.raw
    assert summary.tables["payments"].raw > 0


def test_uci_derived_data_meets_the_contract(uci_csv: Path, tmp_path: Path) -> None:
    ingest_uci(uci_csv, tmp_path / "raw", tmp_path / "qin")
    summary = validate_raw(tmp_path / "raw", tmp_path / "ok", tmp_path / "q", tmp_path / "rep")
    for name, counts in summary.tables.items():
        assert counts.quarantined == 0, (name, counts)
    assert summary.tables["statements"].good == 6 * summary.tables["accounts"].good
    assert summary.tables["outcomes"].good == summary.tables["accounts"].good
