"""Validation under a memory cap: the duplicate and orphan checks run in hash buckets of the
key, so a table bigger than the cap is checked a bucket at a time with the same verdicts;
DuckDB running out of memory anyway is one clear line and leaves the previous output.

(Measured on the 1,000,000-account book, 26,073,580 contacts: one pass needs more than
100MB and runs out of memory there; buckets of 5,000,000 rows pass under the same 100MB.)
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from collectwise.cli import app as cli
from collectwise.errors import InvalidInputError
from ingestion import rawio
from ingestion.synthetic import SyntheticConfig, generate
from ingestion.validate import ValidationSummary, validate_raw
from ingestion.validate.flags import FlagLimits
from tests.small_disk import small_disk

DUPLICATES, ORPHANS = 30, 20
TABLES = ("accounts", "contacts", "payments")


@pytest.fixture(scope="module")
def dirty_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated book with duplicate contacts and payments and contacts of no account,
    in an extra part so the duplicates cross parts."""
    raw = tmp_path_factory.mktemp("dirty") / "raw"
    config = SyntheticConfig(
        accounts=400, months=12, seed=11, start=datetime(2025, 1, 1, tzinfo=UTC)
    )
    generate(config, raw)
    contacts = rawio.read_table(raw, "contacts")
    orphans = contacts.head(ORPHANS).assign(
        contact_id=[f"orphan-{i}" for i in range(ORPHANS)], account_id="no-such-account"
    )
    rawio.write_part(pd.concat([contacts.tail(DUPLICATES), orphans]), raw, "contacts", 1)
    payments = rawio.read_table(raw, "payments")
    rawio.write_part(payments.sample(DUPLICATES, random_state=1), raw, "payments", 1)
    return raw


def _validate(raw: Path, out: Path, limits: FlagLimits) -> ValidationSummary:
    return validate_raw(raw, out / "good", out / "quarantine", out / "reports", limits=limits)


def _rows(directory: Path, table: str) -> pd.DataFrame:
    frame = pd.read_parquet(directory / table) if (directory / table).is_dir() else (
        pd.read_parquet(directory / f"{table}.parquet")
    )  # fmt: skip
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_bucketed_checks_flag_exactly_what_one_pass_flags(dirty_raw: Path, tmp_path: Path) -> None:
    one = _validate(dirty_raw, tmp_path / "one", FlagLimits("256MB", bucket_rows=10**9))
    # 500 rows a bucket: the contacts' ~10,000 rows are checked in 20 buckets or more.
    many = _validate(dirty_raw, tmp_path / "many", FlagLimits("256MB", bucket_rows=500))
    contacts = one.tables["contacts"]
    assert contacts.reasons == {
        "contact_id: duplicate": DUPLICATES, "account_id: unknown account": ORPHANS
    }  # fmt: skip
    assert one.tables["payments"].reasons == {"payment_id: duplicate": DUPLICATES}
    for table in TABLES:
        assert many.tables[table].reasons == one.tables[table].reasons
        pd.testing.assert_frame_equal(
            _rows(tmp_path / "many/good", table), _rows(tmp_path / "one/good", table)
        )
        pd.testing.assert_frame_equal(
            _rows(tmp_path / "many/quarantine", table), _rows(tmp_path / "one/quarantine", table)
        )


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*.parquet")}


def test_running_out_of_memory_is_one_clear_line_and_keeps_the_previous_output(
    dirty_raw: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _validate(dirty_raw, tmp_path, FlagLimits())
    before = {d: _snapshot(tmp_path / d) for d in ("good", "quarantine")}
    args = ["validate", "--raw", str(dirty_raw), "--out", str(tmp_path / "good"),
            "--quarantine", str(tmp_path / "quarantine"), "--reports", str(tmp_path / "reports"),
            "--memory-limit", "1MB"]  # fmt: skip
    # A real OutOfMemoryException: DuckDB cannot hold even the first table's keys in 1MB.
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "DuckDB ran out of memory finding duplicate keys and orphans" in caplog.text
    assert "memory limit 1MB" in caplog.text and "--memory-limit" in caplog.text
    assert "COLLECTWISE_INGESTION__FLAG_BUCKET_ROWS" in caplog.text
    assert {d: _snapshot(tmp_path / d) for d in ("good", "quarantine")} == before
    report = (tmp_path / "reports" / "quality.json").read_text()
    assert '"failed"' in report


def test_an_unreadable_memory_cap_is_refused(dirty_raw: Path, tmp_path: Path) -> None:
    with pytest.raises(
        InvalidInputError, match=r"memory limit 'lots': .*Memory must have a number"
    ):
        _validate(dirty_raw, tmp_path, FlagLimits("lots"))


def test_a_full_disk_is_one_clear_line_and_keeps_the_previous_output(
    dirty_raw: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with small_disk(tmp_path / "disk", 8192) as disk:
        _validate(dirty_raw, disk, FlagLimits())
        before = {d: _snapshot(disk / d) for d in ("good", "quarantine")}
        # Fill the disk but for a little: the new run's staged parts cannot be written.
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(bytes(max(0, free - 16 * 1024)))
        args = ["validate", "--raw", str(dirty_raw), "--out", str(disk / "good"),
                "--quarantine", str(disk / "quarantine"),
                "--reports", str(tmp_path / "reports")]  # fmt: skip
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "validation could not write beside" in caplog.text
        assert "No space left on device" in caplog.text
        assert {d: _snapshot(disk / d) for d in ("good", "quarantine")} == before
