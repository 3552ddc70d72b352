"""Alert rules, windows, retrain selection, payloads and health parsing: pure functions."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from collectwise.settings import MonitoringSettings, Settings
from monitoring.alerts import (
    DEFAULT_RULES,
    Alert,
    Rule,
    evaluate,
    evaluated_conditions,
    matching_rules,
    parse_window,
    validate_rule,
    windowed_value,
)
from monitoring.delivery import alert_payload, email_message
from monitoring.health import (
    ViewSource,
    freshness_frame,
    histogram_quantile,
    parse_scorer_metrics,
    runs_frame,
)
from monitoring.monitor_db import PipelineRun
from monitoring.retrain import RegistryState, _outcome, should_retrain

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _alert(**values: object) -> Alert:
    base: dict[str, object] = {
        "id": 7,
        "rule_id": 1,
        "rule_name": "performance drop",
        "condition_key": "performance drop:performance.auc_drop",
        "job": "performance",
        "status": "open",
        "severity": "critical",
        "metric": "performance.auc_drop",
        "comparison": ">",
        "value": 0.08,
        "threshold": 0.05,
        "opened_at": T0,
        "last_seen_at": T0,
        "occurrences": 1,
    }
    return Alert(**{**base, **values})  # type: ignore[arg-type]


def _settings(**values: Any) -> MonitoringSettings:
    return Settings(monitoring=values).monitoring  # type: ignore[arg-type]


def test_exact_and_glob_rules_fire_per_metric() -> None:
    rules = [
        Rule("share", "drift.share_drifted", ">", 0.3),
        Rule("feature", "drift.feature.*.drifted", ">=", 1.0, "info"),
        Rule("off", "drift.share_drifted", ">", 0.0, enabled=False),
    ]
    metrics = {
        "drift.share_drifted": 0.4,
        "drift.feature.a__x.drifted": 1.0,
        "drift.feature.b__y.drifted": 0.0,
        "drift.feature.c__z.drifted": 1.0,
        "drift.feature.a__x.psi": 0.9,
    }
    firings = evaluate(rules, metrics)
    assert [(f.rule.name, f.metric, f.value) for f in firings] == [
        ("share", "drift.share_drifted", 0.4),
        ("feature", "drift.feature.a__x.drifted", 1.0),
        ("feature", "drift.feature.c__z.drifted", 1.0),
    ]
    assert firings[1].condition_key == "feature:drift.feature.a__x.drifted"
    # b__y was evaluated (and did not fire): its alert may be resolved; the psi metric was not.
    assert evaluated_conditions(rules, metrics) == {
        "share:drift.share_drifted",
        "feature:drift.feature.a__x.drifted",
        "feature:drift.feature.b__y.drifted",
        "feature:drift.feature.c__z.drifted",
    }


@pytest.mark.parametrize(
    ("comparison", "value", "fires"),
    [(">", 0.3, False), (">=", 0.3, True), ("<", 0.3, False), ("<=", 0.3, True), ("<", 0.2, True)],
)
def test_comparisons_at_the_threshold(comparison: str, value: float, fires: bool) -> None:
    rule = Rule("r", "m", comparison, 0.3)
    assert bool(evaluate([rule], {"m": value})) is fires


def test_nan_never_fires_and_is_not_evaluated() -> None:
    rule = Rule("r", "m", "<", 1.0)
    assert evaluate([rule], {"m": math.nan}) == []
    assert evaluated_conditions([rule], {"m": math.nan}) == set()


def test_matching_rules_are_a_jobs_own() -> None:
    drift, perf = Rule("d", "drift.*", ">", 0.1), Rule("p", "performance.auc_drop", ">", 0.05)
    assert matching_rules([drift, perf], ["drift.share_drifted"]) == [drift]
    assert matching_rules([drift, perf], ["skew.max_mismatch_rate"]) == []


def test_windows_parse_and_average() -> None:
    assert parse_window(None) is None and parse_window(" ") is None
    assert parse_window("7d").span == timedelta(days=7)  # type: ignore[union-attr]
    assert parse_window("12h").span == timedelta(hours=12)  # type: ignore[union-attr]
    assert parse_window("5pts").points == 5  # type: ignore[union-attr]
    assert parse_window("3").points == 3  # type: ignore[union-attr]
    for bad in ("7x", "0d", "-1", "d7"):
        with pytest.raises(ValueError, match="rule field 'window'"):
            parse_window(bad)
    history = [(T0 + timedelta(days=i), v) for i, v in enumerate([0.9, 0.1, 0.2, 0.6])]
    assert windowed_value(Rule("r", "m", ">", 0, window="2"), 0.6, history) == pytest.approx(0.4)
    assert windowed_value(Rule("r", "m", ">", 0, window="1d"), 0.6, history) == pytest.approx(0.4)
    assert windowed_value(Rule("r", "m", ">", 0, window="10d"), 0.6, history) == pytest.approx(0.45)
    assert windowed_value(Rule("r", "m", ">", 0), 0.6, history) == 0.6
    sustained = Rule("r", "m", ">", 0.5, window="2")
    assert evaluate([sustained], {"m": 0.6}, {"m": history}) == []  # mean 0.4: a blip
    assert evaluate([sustained], {"m": 0.6}) != []  # no history: the value itself


@pytest.mark.parametrize(
    ("field", "change", "message"),
    [
        ("name", {"name": "a:b"}, "no ':'"),
        ("name", {"name": " "}, "letters"),
        ("metric", {"metric": "has space"}, "without spaces"),
        ("comparison", {"comparison": "=="}, "not one of"),
        ("threshold", {"threshold": math.inf}, "finite"),
        ("severity", {"severity": "fatal"}, "not one of"),
        ("window", {"window": "soon"}, "not like"),
        ("created_by", {"created_by": " "}, "who"),
    ],
)
def test_validation_names_the_field(field: str, change: dict, message: str) -> None:
    rule = Rule("ok", "m", ">", 1.0)
    with pytest.raises(ValueError, match=rf"rule field '{field}'.*{message}"):
        validate_rule(Rule(**{**rule.to_dict(), **change}))


def test_validation_normalises() -> None:
    rule = validate_rule(Rule(" r ", " m ", ">", 1, window=" "))
    assert (rule.name, rule.metric, rule.threshold, rule.window) == ("r", "m", 1.0, None)


def test_default_rules_are_valid_and_cover_the_jobs() -> None:
    assert len({r.name for r in DEFAULT_RULES}) == len(DEFAULT_RULES)
    for rule in DEFAULT_RULES:
        assert validate_rule(rule) == rule
    metrics = {
        "drift.share_drifted": 0.5,
        "drift.score_psi": 0.25,
        "performance.auc_drop": 0.06,
        "fairness.sex.passes_80": 0.0,
        "skew.max_mismatch_rate": 0.02,
    }
    fired = {f.rule.name for f in evaluate(DEFAULT_RULES, metrics)}
    assert fired == {
        "drift share",
        "score drift",
        "performance drop",
        "fairness four-fifths",
        "training-serving skew",
    }


def test_retrain_selection_by_severity_or_rule_glob() -> None:
    alert = _alert()
    assert should_retrain(alert, ["critical"])
    assert should_retrain(alert, ["performance*"])
    assert not should_retrain(alert, ["warning", "drift*"])
    assert not should_retrain(alert, [])


def test_retrain_outcome_finds_the_new_version_and_flags_a_promotion() -> None:
    before = RegistryState(newest=3, champion=2)
    assert _outcome(0, "ok", before, RegistryState(4, 2)) == ("succeeded", 4, "ok")
    assert _outcome(1, "boom", before, RegistryState(3, 2)) == ("failed", None, "boom")
    status, version, tail = _outcome(0, "ok", before, RegistryState(4, 4))
    assert (status, version) == ("failed", 4) and "champion moved from 2 to 4" in tail


def test_settings_lists_from_text_and_never_promote(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTWISE_MONITORING__RETRAIN_ON", "critical, performance*")
    monkeypatch.setenv("COLLECTWISE_MONITORING__SMTP_TO", '["a@x.org", "b@x.org"]')
    monkeypatch.setenv("COLLECTWISE_MONITORING__RETRAIN_COMMAND", "dvc repro 'train'")
    monkeypatch.setenv("COLLECTWISE_MONITORING__SMTP_PASSWORD", "s3cret")
    settings = _settings()
    assert settings.retrain_on == ["critical", "performance*"]
    assert settings.smtp_to == ["a@x.org", "b@x.org"]
    assert settings.retrain_command == ["dvc", "repro", "train"]
    assert "s3cret" not in repr(settings)
    assert not settings.smtp_configured
    monkeypatch.delenv("COLLECTWISE_MONITORING__RETRAIN_COMMAND")
    assert _settings().retrain_command == ["dvc", "repro", "register"]
    assert _settings().database_url.endswith("monitoring/monitoring.db")
    with pytest.raises(ValidationError, match="must not promote"):
        _settings(retrain_command=["collectwise", "models", "promote"])


def test_payload_and_email() -> None:
    alert = _alert()
    payload = alert_payload(alert, "http://console/alerts/")
    assert payload["alert_id"] == 7 and payload["rule"] == "performance drop"
    assert (payload["value"], payload["threshold"], payload["severity"]) == (0.08, 0.05, "critical")
    assert payload["opened_at"] == T0.isoformat()
    assert payload["link"] == "http://console/alerts/7"
    settings = _settings(smtp_host="h", smtp_from="cw@x.org", smtp_to=["ops@x.org"])
    message = email_message([alert, _alert(id=8, severity="warning")], settings)
    assert message["Subject"] == "[Collectwise] 2 new alert(s), worst critical: performance drop"
    body = message.get_content()
    assert "#7 [critical]" in body and "#8 [warning]" in body and "/alerts/8" in body


SCORER_METRICS = """\
# TYPE collectwise_request_latency_seconds histogram
collectwise_request_latency_seconds_bucket{route="/v1/score",le="0.005"} 50.0
collectwise_request_latency_seconds_bucket{route="/v1/score",le="0.01"} 90.0
collectwise_request_latency_seconds_bucket{route="/v1/score",le="0.1"} 100.0
collectwise_request_latency_seconds_bucket{route="/v1/score",le="+Inf"} 100.0
collectwise_request_latency_seconds_count{route="/v1/score"} 100.0
collectwise_request_latency_seconds_sum{route="/v1/score"} 0.6
collectwise_request_latency_seconds_bucket{route="/v1/score/batch",le="0.005"} 0.0
collectwise_request_latency_seconds_bucket{route="/v1/score/batch",le="0.01"} 0.0
collectwise_request_latency_seconds_bucket{route="/v1/score/batch",le="0.1"} 0.0
collectwise_request_latency_seconds_bucket{route="/v1/score/batch",le="+Inf"} 0.0
collectwise_request_latency_seconds_count{route="/v1/score/batch"} 0.0
collectwise_request_latency_seconds_sum{route="/v1/score/batch"} 0.0
# TYPE collectwise_errors_total counter
collectwise_errors_total{type="validation"} 3.0
collectwise_errors_total{type="feature_store"} 2.0
# TYPE collectwise_scores_total counter
collectwise_scores_total{band="high"} 20.0
collectwise_scores_total{band="low"} 75.0
"""


def test_scorer_metrics_parse() -> None:
    health = parse_scorer_metrics(SCORER_METRICS)
    score = health.routes.set_index("route").loc["/v1/score"]
    assert score["requests"] == 100
    assert score["mean_ms"] == pytest.approx(6.0)
    assert score["p50_ms"] == pytest.approx(5.0)
    assert score["p95_ms"] == pytest.approx(55.0)  # halfway through the (10, 100] ms bucket
    assert health.routes.set_index("route")["p50_ms"].isna().to_dict() == {
        "/v1/score": False,
        "/v1/score/batch": True,  # no requests yet: no latency to report
    }
    assert health.errors == {"validation": 3.0, "feature_store": 2.0}
    assert health.scores == {"high": 20.0, "low": 75.0}
    assert health.error_rate == pytest.approx(0.05)
    assert parse_scorer_metrics("").error_rate is None


def test_histogram_quantile_edges() -> None:
    assert histogram_quantile(0.5, []) is None
    assert histogram_quantile(0.99, [(0.1, 1.0), (math.inf, 10.0)]) == 0.1
    assert histogram_quantile(0.5, [(0.1, 10.0), (math.inf, 10.0)]) == pytest.approx(0.05)


def test_freshness_against_ttl() -> None:
    day = timedelta(days=1)
    sources = [
        ViewSource("fresh", Path("f.parquet"), 45 * day),
        ViewSource("stale", Path("s.parquet"), 45 * day),
        ViewSource("labels", Path("l.parquet"), timedelta(0)),
        ViewSource("empty", Path("e.parquet"), day),
        ViewSource("missing", Path("m.parquet"), day),
    ]
    newest = {
        "fresh": T0 - 2 * day,
        "stale": T0 - 50 * day,
        "labels": T0 - 400 * day,
        "empty": None,
    }
    frame = freshness_frame(sources, newest, T0).set_index("view")
    assert frame["status"].to_dict() == {
        "fresh": "fresh",
        "stale": "stale",
        "labels": "fresh",
        "empty": "empty",
        "missing": "missing",
    }
    assert frame.loc["fresh", "age_hours"] == pytest.approx(48.0)
    assert frame.loc["stale", "ttl_hours"] == pytest.approx(45 * 24)


def test_runs_frame_keeps_the_newest_per_stage() -> None:
    runs = [
        PipelineRun(3, "drift", T0 + timedelta(hours=2), None, "running", None, None),
        PipelineRun(2, "skew", T0 + timedelta(hours=1), T0 + timedelta(hours=1, seconds=30),
                    "failed", None, "boom"),
        PipelineRun(1, "drift", T0, T0 + timedelta(seconds=5), "succeeded", 10, None),
    ]  # fmt: skip
    frame = runs_frame(runs).set_index("stage")
    assert frame["status"].to_dict() == {"drift": "running", "skew": "failed"}
    assert frame.loc["skew", "seconds"] == 30.0
