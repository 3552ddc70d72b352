"""Bad input to the console script ends in one clear line and a non-zero exit, never a
traceback: each case is a command a pen-tester ran against the real CLI."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from collectwise.cli import app
from ingestion.uci import UCI_COLUMNS

pytestmark = pytest.mark.e2e

runner = CliRunner()


@dataclass(frozen=True)
class Case:
    args: list[str]
    # Every word must appear on one error line (the input named, the problem said).
    words: tuple[str, ...]
    # Not touched by the command (a folder it must not create, ...).
    absent: Path | None = None
    # What the command reads on standard input (a password), if anything.
    stdin: str | None = None


def _binary(tmp: Path) -> Case:
    blob = tmp / "blob.bin"
    blob.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    return Case(_score(blob, tmp / "o.csv"), ("blob.bin", "UTF-8"))


def _uci_header_only(tmp: Path) -> Case:
    path = tmp / "uci_header.csv"
    path.write_text(",".join(UCI_COLUMNS) + "\n")
    return Case(_score(path, tmp / "o.csv"), ("uci_header.csv", "no data rows"))


def _ids_header_only(tmp: Path) -> Case:
    path = tmp / "ids_header.csv"
    path.write_text("account_id\n")
    return Case(_score(path, tmp / "o.csv"), ("ids_header.csv", "no data rows"))


def _corrupt_parquet(tmp: Path) -> Case:
    path = tmp / "ids.parquet"
    path.write_bytes(b"PAR1" + b"\x00garbage" * 16 + b"PAR1")
    return Case(_score(path, tmp / "o.csv"), ("ids.parquet", "cannot read"))


def _uci_missing_column(tmp: Path, uci_csv: Path) -> Case:
    path = tmp / "uci_short.csv"
    pd.read_csv(uci_csv, nrows=20).drop(columns=["PAY_AMT3"]).to_csv(path, index=False)
    return Case(_score(path, tmp / "o.csv"), ("uci_short.csv", "PAY_AMT3"))


def _audit_not_sqlite(tmp: Path) -> Case:
    path = tmp / "audit.db"
    path.write_text("this is not an SQLite database, just text\n" * 20)
    return Case(["audit", "verify", "--db", str(path)], ("audit.db", "not a database"))


def _start_not_a_date(tmp: Path) -> Case:
    args = ["generate", "--accounts", "10", "--months", "3", "--start", "notadate"]
    return Case([*args, "--out", str(tmp / "raw")], ("notadate", "not a date"), tmp / "raw")


def _drift_beyond_months(tmp: Path) -> Case:
    args = ["generate", "--accounts", "10", "--months", "3", "--drift-months", "50"]
    return Case([*args, "--out", str(tmp / "raw")], ("50", "months 3"), tmp / "raw")


def _drift_beyond_months_with_scenario(tmp: Path) -> Case:
    case = _drift_beyond_months(tmp)
    return Case([*case.args, "--scenario", "income_shock"], case.words, case.absent)


def _out_in_missing_folder(tmp: Path) -> Case:
    ids = _ids(tmp)
    out = tmp / "nowhere" / "deeper" / "o.csv"
    return Case(_score(ids, out), ("o.csv", "does not exist"), tmp / "nowhere")


def _out_unknown_format(tmp: Path) -> Case:
    out = tmp / "o.xlsx"
    return Case(_score(_ids(tmp), out), ("o.xlsx", "'.xlsx'"), out)


def _ids(tmp: Path) -> Path:
    path = tmp / "ids.csv"
    path.write_text("account_id\nA1\n")
    return path


def _score(in_file: Path, out: Path) -> list[str]:
    return ["score-batch", "--in", str(in_file), "--out", str(out)]


CASES: dict[str, Callable[[Path], Case]] = {
    "score-batch on a binary file": _binary,
    "score-batch on a header-only UCI file": _uci_header_only,
    "score-batch on a header-only id file": _ids_header_only,
    "score-batch on a corrupt parquet": _corrupt_parquet,
    "audit verify on a non-SQLite file": _audit_not_sqlite,
    "generate --start notadate": _start_not_a_date,
    "generate --drift-months 50 --months 3": _drift_beyond_months,
    "generate --drift-months 50 --months 3 --scenario": _drift_beyond_months_with_scenario,
    "score-batch --out in a missing folder": _out_in_missing_folder,
    "score-batch --out o.xlsx": _out_unknown_format,
}


def error_lines(result: Result, caplog: pytest.LogCaptureFixture) -> list[str]:
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    return logged + [line for line in result.output.splitlines() if line.strip()]


def assert_clear_line(
    result: Result, caplog: pytest.LogCaptureFixture, words: tuple[str, ...]
) -> None:
    """A non-zero exit, no traceback, and one line holding every word."""
    lines = error_lines(result, caplog)
    assert result.exit_code not in (0, None), lines
    # CliRunner catches what escapes a command: anything but an exit would be a traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert not any("Traceback" in line for line in lines), lines
    assert any(all(w in line for w in words) for line in lines), (words, lines)


def assert_one_clear_line(result: Result, caplog: pytest.LogCaptureFixture, case: Case) -> None:
    assert_clear_line(result, caplog, case.words)
    assert case.absent is None or not case.absent.exists()


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Data, monitoring and MLflow under tmp_path, so no command touches the repo's."""
    monkeypatch.setenv("COLLECTWISE_PATHS__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLLECTWISE_MONITORING__DB_URL", f"sqlite:///{tmp_path / 'monitoring.db'}")
    monkeypatch.setenv("COLLECTWISE_MLFLOW__TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    from collectwise.settings import get_settings

    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_ends_in_one_clear_line(
    name: str, isolated: Path, caplog: pytest.LogCaptureFixture
) -> None:
    case = CASES[name](isolated)
    result = runner.invoke(app, case.args)
    assert_one_clear_line(result, caplog, case)


def test_score_batch_on_a_uci_file_missing_a_column(
    isolated: Path, uci_csv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    case = _uci_missing_column(isolated, uci_csv)
    assert_one_clear_line(runner.invoke(app, case.args), caplog, case)


# ---------------------------------------------------------------------------- the real script


def run_script(args: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "COLLECTWISE_PATHS__DATA_DIR": str(root / "data"),
        "COLLECTWISE_MONITORING__DB_URL": f"sqlite:///{root / 'monitoring.db'}",
        "COLLECTWISE_MLFLOW__TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
    }
    command = [sys.executable, "-c", "from collectwise.cli import main; main()", *args]
    return subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "score-batch on a binary file",
        "audit verify on a non-SQLite file",
        "generate --start notadate",
    ],
)
def test_the_console_script_ends_with_the_clear_line(name: str, tmp_path: Path) -> None:
    case = CASES[name](tmp_path)
    done = run_script(case.args, tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    last = [line for line in done.stderr.splitlines() if line.strip()][-1]
    assert all(w in last for w in case.words), done.stderr
