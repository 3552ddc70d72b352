"""Every command of the console script, each on a bad input, ends in one clear line and a
non-zero exit, never a traceback; and every command meets a bad setting the same way.

The table must name every command: one added without a case fails
test_the_table_covers_every_command.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from collectwise.cli import app
from tests.e2e.test_cli_errors import Case, assert_clear_line

pytestmark = pytest.mark.e2e

runner = CliRunner()


def _cases(tmp: Path) -> dict[str, Case]:
    (tmp / "bad.csv").write_text("not,a,uci\n1,2,3\n")
    (tmp / "ids.csv").write_text("account_id\n")
    (tmp / "notsqlite.db").write_text("plain text, not a database\n" * 10)
    # The home's schedule file, with an hour that does not exist.
    (tmp / "schedules.yaml").write_text("jobs:\n  drift:\n    cron: '0 25 * * *'\n")
    bad_cron = ("'drift'", "'cron'", "hour")
    nothing = str(tmp / "nothing")
    return {
        "serve": Case(["serve", "--workers", "0"], ("--workers",)),
        "demo-request": Case(["demo-request", "--port", "1", "--wait", "0"], ("not ready",)),
        "generate": Case(["generate", "--start", "notadate", "--out", nothing], ("notadate",)),
        "validate": Case(
            ["validate", "--raw", nothing, "--reports", str(tmp / "r")],
            ("missing required raw table",),
        ),
        "ingest-uci": Case(
            ["ingest-uci", "--csv", str(tmp / "bad.csv"), "--out", nothing],
            ("bad.csv", "lacks column"),
        ),
        "build-features": Case(["build-features", "--raw", nothing], ("nothing", "as_of")),
        "apply": Case(["apply", "--features", nothing], ("nothing", "build-features")),
        "materialize": Case(["materialize", "--features", nothing], ("nothing", "build-features")),
        "online-features": Case(["online-features", "--account", "A1"], ("collectwise init",)),
        "score-batch": Case(
            ["score-batch", "--in", str(tmp / "ids.csv"), "--out", str(tmp / "o.csv")],
            ("ids.csv", "no data rows"),
        ),
        "models show": Case(["models", "show", "99"], ("'99'",)),
        "models promote": Case(["models", "promote", "99"], ("'99'",)),
        "models rollback": Case(["models", "rollback", "--why", "x"], ("previous-champion",)),
        "models card": Case(["models", "card", "99"], ("'99'",)),
        "models report": Case(["models", "report", "99"], ("'99'",)),
        "train build-dataset": Case(["train", "build-dataset"], ("collectwise init",)),
        "train fit": Case(["train", "fit", "--dataset", str(tmp)], ("dataset.parquet",)),
        "train evaluate": Case(
            ["train", "evaluate", "--dataset", str(tmp), "--model", str(tmp)], ("dataset.parquet",)
        ),
        "train register": Case(
            ["train", "register", "--model", str(tmp), "--report", str(tmp)], ("model.pkl",)
        ),
        "train shuffled-check": Case(
            ["train", "shuffled-check", "--dataset", str(tmp)], ("dataset.parquet",)
        ),
        "train compare-baseline": Case(
            ["train", "compare-baseline", "--dataset", str(tmp), "--model", str(tmp)],
            ("dataset.parquet",),
        ),
        "keys new": Case(["keys", "new", "--name", "bad name!"], ("name", "pattern")),
        "audit verify": Case(
            ["audit", "verify", "--db", str(tmp / "notsqlite.db")],
            ("notsqlite.db", "not a database"),
        ),
        "audit replay": Case(["audit", "replay", "1", "--db", nothing], ("no audit log",)),
        "alerts list": Case(["alerts", "list", "--status", "bogus"], ("status", "bogus")),
        "alerts ack": Case(["alerts", "ack", "999"], ("999",)),
        "alerts resolve": Case(["alerts", "resolve", "999"], ("999",)),
        "alerts history": Case(["alerts", "history", "999"], ("999",)),
        "alerts runs": Case(["alerts", "runs", "--limit", "0"], ("--limit",)),
        "alerts rules add": Case(
            [
                "alerts",
                "rules",
                "add",
                "x",
                "--metric",
                "m",
                "--comparison",
                "=",
                "--threshold",
                "1",
            ],
            ("comparison", "'='"),
        ),
        "alerts rules update": Case(
            ["alerts", "rules", "update", "nope", "--threshold", "high"], ("threshold", "high")
        ),
        "alerts rules enable": Case(["alerts", "rules", "enable", "nope"], ("nope",)),
        "alerts rules disable": Case(["alerts", "rules", "disable", "nope"], ("nope",)),
        "alerts rules delete": Case(["alerts", "rules", "delete", "nope"], ("nope",)),
        "monitor drift": Case(["monitor", "drift", "--window", "3x"], ("3x",)),
        "monitor performance": Case(["monitor", "performance"], ("_manifest.json",)),
        "monitor fairness": Case(["monitor", "fairness"], ("_manifest.json",)),
        "monitor experiment": Case(["monitor", "experiment"], ("_manifest.json",)),
        "monitor skew": Case(["monitor", "skew", "--served-dir", nothing], ("no served rows",)),
        "monitor serving-health": Case(
            ["monitor", "serving-health", "--url", "http://127.0.0.1:9/metrics"],
            ("127.0.0.1:9",),
        ),
        "monitor probation": Case(
            ["monitor", "probation", "--url", "ftp://scorer/metrics"], ("ftp://scorer/metrics",)
        ),
        "admin serve": Case(["admin", "serve", "--port", "0"], ("--port",)),
        "admin ensure-demo-user": Case(["admin", "ensure-demo-user", "--port", "0"], ("--port",)),
        "admin users add": Case(
            ["admin", "users", "add", "x y", "--password-stdin"],
            ("user name",),
            stdin="a-long-enough-password\n",
        ),
        "admin users set-role": Case(
            ["admin", "users", "set-role", "nobody", "admin"], ("nobody",)
        ),
        "admin users set-password": Case(
            ["admin", "users", "set-password", "nobody", "--password-stdin"],
            ("password",),
            stdin="short\n",
        ),
        "admin users disable": Case(["admin", "users", "disable", "nobody"], ("nobody",)),
        "scheduler run": Case(["scheduler", "run"], bad_cron),
        "scheduler list": Case(["scheduler", "list"], bad_cron),
        "scheduler run-once": Case(["scheduler", "run-once", "drift"], bad_cron),
        "scheduler k8s": Case(["scheduler", "k8s", "--out", str(tmp)], ("is a directory",)),
        "backup create": Case(
            ["backup", "create", str(tmp / "backups"), "--exclude", "nosuch"],
            ("nosuch", "no such item"),
        ),
        "backup verify": Case(["backup", "verify", nothing], ("nothing", "no such backup")),
        "backup restore": Case(["backup", "restore", str(tmp)], ("not a backup", "manifest.json")),
        "rebuild-online": Case(
            ["rebuild-online", "--features", nothing], ("nothing", "build-features")
        ),
    }


# Commands that take no input that can be bad: a bad setting is their bad input (below).
NO_INPUT = {"init", "models list", "models importance", "alerts health", "alerts rules list",
            "admin users list", "config show"}  # fmt: skip


def _leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[str]:
    # typer's own (vendored) click: a group is what has sub-commands.
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _leaves(sub, (*path, name))
    else:
        yield " ".join(path)


COMMANDS = sorted(_leaves(typer.main.get_command(app)))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project home of its own: data, MLflow and the alert store under tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLLECTWISE_HOME", str(tmp_path))
    monkeypatch.setenv("COLLECTWISE_MLFLOW__TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("COLLECTWISE_MLFLOW__ARTIFACT_LOCATION", raising=False)
    monkeypatch.setenv("COLLECTWISE_MONITORING__DB_URL", f"sqlite:///{tmp_path / 'alerts.db'}")
    monkeypatch.delenv("FEAST_FS_YAML_FILE_PATH", raising=False)
    return tmp_path


def test_the_table_covers_every_command(tmp_path: Path) -> None:
    covered = set(_cases(tmp_path)) | NO_INPUT
    assert set(COMMANDS) == covered, set(COMMANDS) ^ covered


@pytest.mark.parametrize("name", sorted(set(COMMANDS) - NO_INPUT))
def test_a_bad_input_ends_in_one_clear_line(
    name: str, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    case = _cases(home)[name]
    result = runner.invoke(app, case.args, input=case.stdin)
    assert_clear_line(result, caplog, case.words)


@pytest.mark.parametrize("name", COMMANDS)
def test_a_bad_setting_ends_in_one_line_naming_the_variable(
    name: str, home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("COLLECTWISE_SERVING__MAX_BATCH", "lots")
    args = [*name.split(), *_REQUIRED.get(name, [])]
    result = runner.invoke(app, args)
    assert_clear_line(result, caplog, ("COLLECTWISE_SERVING__MAX_BATCH", "integer"))
    assert "lots" not in result.output  # a setting's value may be a secret: never echoed


# Arguments a command needs before it reads its settings (click checks them first).
_REQUIRED: dict[str, list[str]] = {
    "models show": ["1"], "models promote": ["1"], "models card": ["1"],
    "keys new": ["--name", "ok"], "audit replay": ["1"], "alerts ack": ["1"],
    "alerts resolve": ["1"], "alerts history": ["1"], "alerts rules add": ["x"],
    "alerts rules update": ["x"], "alerts rules enable": ["x"], "alerts rules disable": ["x"],
    "alerts rules delete": ["x"], "admin users add": ["x"], "admin users set-role": ["x", "admin"],
    "admin users set-password": ["x"], "admin users disable": ["x"], "scheduler run-once": ["x"],
    "score-batch": ["--in", __file__, "--out", "o.csv"], "ingest-uci": ["--csv", __file__],
    "backup create": ["x"], "backup verify": ["x"], "backup restore": ["x"],
}  # fmt: skip
