"""The monitoring store and the alert lifecycle on SQLite and on the real PostgreSQL
(db_url, tests/integration/conftest.py: a database of its own per PostgreSQL test)."""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from collectwise.alerts_cli import app as alerts_app
from collectwise.settings import MonitoringSettings, get_settings
from monitoring import job_finish
from monitoring.alerts import DEFAULT_RULES, Alert, Firing, Rule
from monitoring.job_finish import finish_job
from monitoring.job_result import JobResult
from monitoring.monitor_db import (
    AlertNotFound,
    AlertTransitionError,
    DuplicateRule,
    MonitoringStore,
    RuleNotFound,
)
from monitoring.pipeline_runs import recorded_run

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def store(db_url: str) -> Iterator[MonitoringStore]:
    opened = MonitoringStore(db_url)
    yield opened
    opened.dispose()


@pytest.fixture
def settings(db_url: str) -> MonitoringSettings:
    return MonitoringSettings(db_url=db_url)


@pytest.fixture
def delivered(monkeypatch: pytest.MonkeyPatch) -> list[Alert]:
    """Every alert finish_job hands to delivery (the real delivery still runs)."""
    seen: list[Alert] = []
    real = job_finish.deliver

    def spy(alerts: Any, settings: Any, store: Any = None) -> Any:
        seen.extend(alerts)
        return real(alerts, settings, store)

    monkeypatch.setattr(job_finish, "deliver", spy)
    return seen


def _result(job: str, at: datetime, **metrics: float) -> JobResult:
    names = {k.replace("__", "."): v for k, v in metrics.items()}
    return JobResult(job, at - timedelta(days=7), at, names, labels={"model_version": "3"})


def test_schema_seed_and_metric_history(store: MonitoringStore, db_url: str) -> None:
    assert store.seeded
    assert {r.name for r in store.list_rules()} == {r.name for r in DEFAULT_RULES}
    store.delete_rule("serving errors", "ops")
    again = MonitoringStore(db_url)  # tables exist now: no reseeding of deleted rules
    assert not again.seeded and "serving errors" not in {r.name for r in again.list_rules()}
    again.dispose()

    for day, value in enumerate([0.1, math.nan, 0.3]):
        at = T0 + timedelta(days=day)
        store.record_metrics(_result("drift", at, drift__share_drifted=value), at=at)
    series = store.metric_series("drift.share_drifted")
    assert list(series["window_end"]) == [T0, T0 + timedelta(days=1), T0 + timedelta(days=2)]
    assert series["window_end"].iloc[0].tzinfo is not None
    assert series["value"].iloc[0] == 0.1 and math.isnan(series["value"].iloc[1])
    assert series["labels"].iloc[0] == {"model_version": "3"}
    assert list(store.metric_series("drift.share_drifted", T0 + timedelta(days=1))["value"])[
        1:
    ] == [0.3]
    assert list(store.metric_series("drift.share_drifted", limit=1)["value"]) == [0.3]
    assert store.metric_series("nope").empty
    assert store.metric_names() == ["drift.share_drifted"]


def _open_at_once(url: str, start: Any, seeded: Any) -> None:
    start.wait()
    opened = MonitoringStore(url)
    seeded.put(opened.seeded)
    opened.dispose()


def test_processes_opening_a_new_database_at_once_all_open_it(db_url: str) -> None:
    # Seen in CI: the scheduler and a test's own store opened a new monitoring.db together
    # and the second CREATE TABLE failed with "table alert_rules already exists".
    context = multiprocessing.get_context("fork")
    start, seeded = context.Barrier(6), context.Queue()
    workers = [
        context.Process(target=_open_at_once, args=(db_url, start, seeded)) for _ in range(6)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0] * 6
    assert sorted(seeded.get(timeout=5) for _ in workers) == [False] * 5 + [True]
    opened = MonitoringStore(db_url)
    assert sorted(r.name for r in opened.list_rules()) == sorted(r.name for r in DEFAULT_RULES)
    opened.dispose()


def test_rule_crud_and_validation(store: MonitoringStore) -> None:
    rule = store.add_rule(Rule("psi any", "drift.feature.*.psi", ">", 0.25, created_by="ana"))
    assert rule.id is not None and rule.enabled and rule.updated_at is not None
    with pytest.raises(DuplicateRule, match=r"rule field 'name'.*already exists"):
        store.add_rule(Rule("psi any", "x", ">", 1.0))
    with pytest.raises(ValueError, match="rule field 'comparison'"):
        store.add_rule(Rule("bad", "x", "=>", 1.0))
    updated = store.update_rule("psi any", "bob", threshold=0.3, window="7d", severity="critical")
    assert (updated.threshold, updated.window, updated.severity) == (0.3, "7d", "critical")
    assert (updated.created_by, updated.updated_by) == ("ana", "bob")
    with pytest.raises(ValueError, match="rule field 'severity'"):
        store.update_rule("psi any", "bob", severity="loud")
    with pytest.raises(ValueError, match="rule field 'name': cannot be changed"):
        store.update_rule("psi any", "bob", name="other")
    with pytest.raises(ValueError, match="'who' is required"):
        store.update_rule("psi any", " ", threshold=1.0)
    assert store.get_rule("psi any").threshold == 0.3  # a refused update changed nothing
    assert not store.disable_rule("psi any", "bob").enabled
    assert "psi any" not in {r.name for r in store.list_rules(enabled_only=True)}
    assert store.enable_rule("psi any", "bob").enabled
    store.delete_rule("psi any", "bob")
    with pytest.raises(RuleNotFound, match="no rule named 'psi any'"):
        store.get_rule("psi any")
    with pytest.raises(RuleNotFound):
        store.delete_rule("psi any", "bob")


def test_same_condition_twice_is_one_alert_and_one_delivery(
    store: MonitoringStore, settings: MonitoringSettings, delivered: list[Alert]
) -> None:
    first = finish_job(
        _result("drift", T0, drift__share_drifted=0.5), settings, store=store, now=T0
    )
    later = T0 + timedelta(days=1)
    second = finish_job(
        _result("drift", later, drift__share_drifted=0.6), settings, store=store, now=later
    )
    assert [a.rule_name for a in first] == ["drift share"] and second == []
    assert [a.id for a in delivered] == [first[0].id]
    (alert,) = store.list_alerts()
    assert (alert.status, alert.occurrences, alert.value) == ("open", 2, 0.6)
    assert (alert.opened_at, alert.last_seen_at, alert.job) == (T0, later, "drift")
    assert [e.action for e in store.alert_events(alert.id)] == ["opened"]


def test_glob_rule_opens_one_alert_per_feature_and_resolves_each(
    store: MonitoringStore, settings: MonitoringSettings
) -> None:
    metrics = {"drift.feature.a.drifted": 1.0, "drift.feature.b.drifted": 1.0}
    result = JobResult("drift", None, T0, {**metrics, "drift.share_drifted": 0.1})
    opened = finish_job(result, settings, store=store, now=T0)
    assert sorted(a.condition_key for a in opened) == [
        "feature drifted:drift.feature.a.drifted",
        "feature drifted:drift.feature.b.drifted",
    ]
    later = T0 + timedelta(days=1)
    calmer = JobResult("drift", None, later, {**metrics, "drift.feature.b.drifted": 0.0})
    assert finish_job(calmer, settings, store=store, now=later) == []
    status = {a.metric: a.status for a in store.list_alerts()}
    assert status == {"drift.feature.a.drifted": "open", "drift.feature.b.drifted": "resolved"}


def test_auto_resolve_and_other_jobs_are_left_alone(
    store: MonitoringStore, settings: MonitoringSettings
) -> None:
    finish_job(_result("drift", T0, drift__share_drifted=0.5), settings, store=store, now=T0)
    finish_job(
        _result("performance", T0, performance__auc_drop=0.09), settings, store=store, now=T0
    )
    later = T0 + timedelta(hours=6)
    # A performance run says nothing about drift: the drift alert must stay open.
    finish_job(
        _result("performance", later, performance__auc_drop=0.01), settings, store=store, now=later
    )
    by_rule = {a.rule_name: a for a in store.list_alerts()}
    assert by_rule["drift share"].status == "open"
    perf = by_rule["performance drop"]
    assert (perf.status, perf.resolved_by, perf.resolved_at) == ("resolved", "system", later)
    assert "no longer > 0.05" in (perf.resolution_note or "")
    assert [e.action for e in store.alert_events(perf.id)] == ["opened", "resolved"]
    # A metric that could not be computed (NaN) is no evidence either way.
    finish_job(_result("drift", later, drift__share_drifted=math.nan), settings, store=store)
    assert store.get_alert(by_rule["drift share"].id).status == "open"


def test_ack_and_resolve_lifecycle(store: MonitoringStore, settings: MonitoringSettings) -> None:
    (alert,) = finish_job(
        _result("skew", T0, skew__max_mismatch_rate=0.2), settings, store=store, now=T0
    )
    at = T0 + timedelta(minutes=5)
    acked = store.acknowledge(alert.id, "ana", "looking at the feature log", at=at)
    assert (acked.status, acked.acknowledged_by, acked.acknowledged_at) == (
        "acknowledged",
        "ana",
        at,
    )
    with pytest.raises(AlertTransitionError, match="is acknowledged: cannot acknowledge"):
        store.acknowledge(alert.id, "bob")
    # Still firing while acknowledged: counted, not re-opened, not re-delivered.
    later = T0 + timedelta(hours=1)
    assert (
        finish_job(
            _result("skew", later, skew__max_mismatch_rate=0.3), settings, store=store, now=later
        )
        == []
    )
    assert store.get_alert(alert.id).occurrences == 2
    done = store.resolve(alert.id, "ana", "stale online store; re-materialised", at=later)
    assert (done.status, done.resolved_by, done.resolved_at) == ("resolved", "ana", later)
    assert done.resolution_note == "stale online store; re-materialised"
    with pytest.raises(AlertTransitionError, match="is resolved: cannot resolve"):
        store.resolve(alert.id, "bob")
    with pytest.raises(AlertTransitionError, match="only open alerts can be acknowledged"):
        store.acknowledge(alert.id, "bob")
    with pytest.raises(AlertNotFound, match="no alert with id 9999"):
        store.resolve(9999, "bob")
    with pytest.raises(ValueError, match="'who' is required"):
        store.acknowledge(alert.id, "")
    events = store.alert_events(alert.id)
    assert [(e.action, e.who) for e in events] == [
        ("opened", "system"),
        ("acknowledged", "ana"),
        ("resolved", "ana"),
    ]
    assert events[1].note == "looking at the feature log"
    # Resolved by hand while still firing: the next run opens a new alert.
    again = finish_job(_result("skew", later, skew__max_mismatch_rate=0.3), settings, store=store)
    assert len(again) == 1 and again[0].id != alert.id
    assert [a.status for a in store.open_alerts()] == ["open"]
    assert {a.id for a in store.list_alerts(status="resolved")} == {alert.id}
    with pytest.raises(ValueError, match="'status' must be one of"):
        store.list_alerts(status="closed")


def test_one_live_alert_per_condition_even_when_raced(store: MonitoringStore) -> None:
    firing = Firing(store.get_rule("drift share"), "drift.share_drifted", 0.5)
    assert store.open_alert(firing, T0) is not None
    assert store.open_alert(firing, T0) is None  # the partial unique index says no
    assert len(store.open_alerts()) == 1


def test_windowed_rule_uses_stored_history(
    store: MonitoringStore, settings: MonitoringSettings
) -> None:
    store.add_rule(Rule("sustained psi", "drift.score_psi", ">", 0.2, window="3pts"))
    store.disable_rule("score drift", "test")
    opened = []
    for day, value in enumerate([0.0, 0.0, 0.5, 0.4]):
        at = T0 + timedelta(days=day)
        opened += finish_job(_result("drift", at, drift__score_psi=value), settings, store=store)
    # Means over three points: -, -, 0.167 (quiet), 0.3 (fires on the fourth run).
    assert len(opened) == 1 and opened[0].value == pytest.approx(0.3)


def test_delete_rule_resolves_its_live_alerts(
    store: MonitoringStore, settings: MonitoringSettings
) -> None:
    (alert,) = finish_job(_result("perf", T0, performance__auc_drop=0.2), settings, store=store)
    store.delete_rule("performance drop", "ana")
    gone = store.get_alert(alert.id)
    assert (gone.status, gone.resolved_by, gone.rule_id) == ("resolved", "ana", None)
    assert gone.rule_name == "performance drop"


def test_pipeline_runs(store: MonitoringStore) -> None:
    with recorded_run("drift", store) as run:
        run.rows = 1200
        run.message = "window 2026-02"
    with pytest.raises(RuntimeError, match="no served rows"), recorded_run("skew", store):
        raise RuntimeError("no served rows")
    skew, drift = store.list_runs()
    assert (drift.stage, drift.status, drift.rows, drift.message) == (
        "drift",
        "succeeded",
        1200,
        "window 2026-02",
    )
    assert (skew.status, skew.message) == ("failed", "RuntimeError: no served rows")
    assert skew.ended_at is not None and skew.ended_at >= skew.started_at
    assert [r.stage for r in store.list_runs(stage="drift")] == ["drift"]
    with pytest.raises(ValueError, match="'status' must be one of"):
        store.finish_run(drift.id, "running")
    with pytest.raises(LookupError, match="no pipeline run"):
        store.finish_run(9999, "failed")


# ---------------------------------------------------------------------- the CLI (SQLite only)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("COLLECTWISE_MONITORING__DB_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_cli_rules_and_lifecycle(cli_env: str, caplog: pytest.LogCaptureFixture) -> None:
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(alerts_app, list(args))

    assert "drift share" in run("rules", "list").output
    added = run("rules", "add", "psi", "--metric", "drift.feature.*.psi", "--comparison", ">",
                "--threshold", "0.25", "--who", "ana")  # fmt: skip
    assert added.exit_code == 0, added.output
    bad = run("rules", "add", "x", "--metric", "m", "--comparison", "=", "--threshold", "1")
    assert bad.exit_code == 1 and "rule field 'comparison'" in caplog.text
    nan = run("rules", "update", "psi", "--threshold", "high")
    assert nan.exit_code == 1 and "rule field 'threshold'" in caplog.text
    assert run("rules", "update", "psi").exit_code == 1 and "nothing to change" in caplog.text
    assert run("rules", "disable", "nope").exit_code == 1 and "no rule named" in caplog.text
    assert run("rules", "update", "psi", "--window", "7d").exit_code == 0
    assert "off" in run("rules", "disable", "psi").output
    assert run("rules", "enable", "psi").exit_code == 0
    assert run("rules", "delete", "psi").exit_code == 0

    store = MonitoringStore(cli_env)
    (alert,) = finish_job(
        JobResult("performance", None, T0, {"performance.auc_drop": 0.1}),
        MonitoringSettings(db_url=cli_env),
        store=store,
    )
    listed = run("list", "--status", "open")
    assert f"#{alert.id}" in listed.output and "performance drop" in listed.output
    assert run("list", "--status", "closed").exit_code == 1
    acked = run("ack", str(alert.id), "--who", "ana", "--note", "on it")
    assert acked.exit_code == 0 and "acknowledged" in acked.output
    assert run("ack", str(alert.id), "--who", "ana").exit_code == 1
    assert "cannot acknowledge" in caplog.text
    assert run("resolve", str(alert.id), "--who", "ana", "--note", "fixed").exit_code == 0
    assert run("resolve", "404", "--who", "ana").exit_code == 1
    history = run("history", str(alert.id)).output
    assert "acknowledged" in history and "on it" in history and "fixed" in history
    with recorded_run("drift", store):
        pass
    assert "drift" in run("runs").output
    store.dispose()


def test_cli_health(cli_env: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(alerts_app, ["health", "--features", str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    assert "account_payment_velocity" in result.output and "missing" in result.output
    assert "problem: feature view account_profile is missing" in result.output
