"""The console script: clear messages and non-zero exits on bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from collectwise.cli import app

pytestmark = pytest.mark.e2e

runner = CliRunner()


def test_help_lists_every_pipeline_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in (
        "generate",
        "validate",
        "ingest-uci",
        "build-features",
        "materialize",
        "online-features",
    ):
        assert command in result.output


def test_ingest_uci_with_a_missing_column_fails_naming_it(
    uci_csv: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frame = pd.read_csv(uci_csv, nrows=50).drop(columns=["PAY_AMT3"])
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    result = runner.invoke(
        app,
        [
            "ingest-uci",
            "--csv",
            str(bad),
            "--out",
            str(tmp_path / "raw"),
            "--quarantine",
            str(tmp_path / "q"),
        ],
    )
    assert result.exit_code == 1
    assert "PAY_AMT3" in caplog.text
    assert not (tmp_path / "raw").exists()


def test_ingest_uci_quarantines_an_implausible_age(uci_csv: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(uci_csv, nrows=40).astype({"LIMIT_BAL": float})
    frame.loc[7, "AGE"] = -5
    frame.loc[9, "LIMIT_BAL"] = 1e300
    path = tmp_path / "ages.csv"
    frame.to_csv(path, index=False)
    result = runner.invoke(
        app,
        [
            "ingest-uci",
            "--csv",
            str(path),
            "--out",
            str(tmp_path / "raw"),
            "--quarantine",
            str(tmp_path / "q"),
        ],
    )
    assert result.exit_code == 0, result.output
    quarantined = pd.read_parquet(tmp_path / "q" / "uci_input.parquet").set_index("row_number")
    assert quarantined["reason"].to_dict() == {
        8: "AGE: not a whole number of years 18..120",
        10: "LIMIT_BAL: above 1e+10",
    }
    accounts = pd.read_parquet(tmp_path / "raw" / "accounts")
    assert len(accounts) == 38
    assert f"UCI-{frame.loc[7, 'ID']}" not in set(accounts["account_id"])


def test_build_features_without_a_cutoff_fails_clearly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "raw").mkdir()
    result = runner.invoke(
        app, ["build-features", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "f")]
    )
    assert result.exit_code == 1
    assert "as_of" in caplog.text


def test_generate_rejects_an_unknown_scenario(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["generate", "--accounts", "10", "--scenario", "meteor", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert "meteor" in result.output
