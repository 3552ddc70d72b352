"""The monitoring stack run for real: a scorer (`collectwise serve --workers 2`, as the image
runs it) over the serving tests' world, a Prometheus (Debian's package) started with the
stack's own deploy/prometheus config and rules on a free port and scraping the scorer every
second, and a short load of scoring traffic.

Then: the target is up and every metric the scorer declares has series; every query of every
panel of every Grafana dashboard returns series (with its template variables expanded as
Grafana would); the alerting rules load and evaluate on the live data; and killing the scorer
sends its down alert pending. Grafana itself is not run here (see deploy/README.md)."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.metrics_core import Metric

from benchmarks.scorer_harness import Server
from serving.metrics import ServiceMetrics
from tests.deploy import dashboards
from tests.deploy.prometheus_env import (
    PROMETHEUS_DIR,
    SCORER_JOB,
    Prometheus,
    running_prometheus,
    wait_for,
)
from tests.serving import conftest as serving
from tests.serving.conftest import SCORE_KEY, ScorerWorld
from tests.serving.live_scorer import running_scorer
from tests.serving.test_scorer import known_accounts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The serving tier's module fixtures: the world (features, store, champion) and its MLflow.
feature_data = serving.feature_data
mlflow_env = serving.mlflow_env
world = serving.world

AUTH = {"X-API-Key": SCORE_KEY}
SINGLE, BATCHES, BATCH_SIZE = 40, 3, 20
UNAUTHENTICATED, UNKNOWN = 5, 5
ERROR_RATIO_PANEL = "Error ratio"
QUERY_WAIT_S = 30.0


@dataclass
class Stack:
    scorer: Server
    prometheus: Prometheus
    started: float
    scored: int
    # The error-ratio panel's answer after traffic without a single error.
    clean_error_ratio: list[float]


# --------------------------------------------------------------------------- the scorer


def _score(url: str, world: ScorerWorld) -> int:
    """Single and batch scoring of known accounts, every answer a 200; the accounts scored."""
    accounts = known_accounts(world, SINGLE)
    batches = [accounts[i * BATCH_SIZE % len(accounts) :][:BATCH_SIZE] for i in range(BATCHES)]
    as_of = world.data.as_of.isoformat()
    with requests.Session() as http:
        for account in accounts:
            answer = http.post(f"{url}/v1/score", json={"account_id": account, "as_of": as_of},
                               headers=AUTH, timeout=30)  # fmt: skip
            assert answer.status_code == 200, answer.text
        for batch in batches:
            body = {"accounts": [{"account_id": a} for a in batch], "as_of": as_of}
            answer = http.post(f"{url}/v1/score/batch", json=body, headers=AUTH, timeout=30)
            assert answer.status_code == 200, answer.text
            assert len(answer.json()["results"]) == len(batch), answer.text
    return len(accounts) + sum(len(b) for b in batches)


def _client_errors(url: str) -> int:
    """Requests without a key (401) and for accounts nobody has (404): ordinary traffic."""
    with requests.Session() as http:
        for _ in range(UNAUTHENTICATED):
            answer = http.post(f"{url}/v1/score", json={"account_id": "A00000001"}, timeout=30)
            assert answer.status_code == 401, answer.text
        for i in range(UNKNOWN):
            answer = http.post(f"{url}/v1/score", json={"account_id": f"NOSUCH{i:04d}"},
                               headers=AUTH, timeout=30)  # fmt: skip
            assert answer.status_code == 404, answer.text
    return UNAUTHENTICATED + UNKNOWN


# --------------------------------------------------------------------------- the stack


def _error_ratio_values(prom: Prometheus) -> list[float]:
    """The values the "Error ratio" panel shows now (none: the panel says "No data")."""
    (query,) = [
        q
        for path in dashboards.dashboard_files()
        for q in dashboards.queries(dashboards.load(path))
        if q.panel_title == ERROR_RATIO_PANEL
    ]
    try:
        return wait_for(query.expr, lambda: [float(s["value"][1]) for s in prom.query(query.expr)],
                        QUERY_WAIT_S)  # fmt: skip
    except AssertionError:
        return []


@pytest.fixture(scope="module")
def stack(world: ScorerWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("monitoring-stack")
    with (
        running_scorer(world, workdir / "scorer", workers=2) as scorer,
        running_prometheus(f"127.0.0.1:{scorer.port}", workdir / "prometheus") as prom,
    ):
        started = time.time()
        wait_for("the scorer target to be up", lambda: prom.value(f'up{{job="{SCORER_JOB}"}}') == 1)
        # Two rounds, each seen by a scrape: a rate needs the counter to rise between two
        # samples, and a series first scraped at its final value has not risen.
        scored = 0
        for _ in range(2):
            scored += _score(scorer.url, world)
            wait_for(
                "Prometheus to see every score",
                lambda seen=scored: (prom.value("sum(collectwise_scores_total)") or 0) >= seen,
            )
        clean = _error_ratio_values(prom)
        errors = _client_errors(scorer.url)
        wait_for(
            "Prometheus to see the client errors",
            lambda: (prom.value("sum(collectwise_errors_total)") or 0) >= errors,
        )
        yield Stack(scorer, prom, started, scored, clean)


def _declared_series() -> set[str]:
    """The sample names of the scorer's own metrics (collectwise_*): counters as _total,
    histograms by their buckets, gauges as they are."""
    suffix = {"counter": "_total", "histogram": "_bucket", "gauge": ""}
    families: list[Metric] = list(ServiceMetrics().registry.collect())
    return {f.name + suffix[f.type] for f in families if f.name.startswith("collectwise_")}


def test_prometheus_scrapes_the_scorer_and_sees_its_series(stack: Stack) -> None:
    def scorer_target() -> dict[str, Any]:
        targets = stack.prometheus.api("targets")["activeTargets"]
        (target,) = [t for t in targets if t["labels"]["job"] == SCORER_JOB]
        return dict(target)

    # the last scrape succeeded (waited for: on a loaded machine one may time out)
    target = wait_for("a clean scrape", lambda: (t := scorer_target())["health"] == "up" and t)
    assert not target["lastError"], target
    assert target["scrapeUrl"] == f"{stack.scorer.url}/metrics"

    declared = _declared_series()

    def missing() -> set[str]:
        found = stack.prometheus.query('{__name__=~"collectwise_.+"}')
        return declared - {s["metric"]["__name__"] for s in found}

    # a labelled metric has no series until its first value (the registry's after a poll)
    try:
        wait_for("every declared metric", lambda: not missing(), QUERY_WAIT_S)
    except AssertionError:
        pytest.fail(f"declared but never scraped: {sorted(missing())}")
    # both workers' requests add up in the one target
    assert stack.prometheus.value("sum(collectwise_scores_total)") == stack.scored
    assert stack.prometheus.value("min(collectwise_ready)") == 1


def test_the_error_ratio_is_zero_not_empty_after_clean_traffic(stack: Stack) -> None:
    # Without an error the error counter has no series at all; the panel must still say 0.
    assert stack.clean_error_ratio == [0.0]


def _label_values(prom: Prometheus, metric: str | None, label: str) -> list[str]:
    params = {"match[]": metric} if metric else {}
    values: list[str] = prom.api(f"label/{label}/values", **params)
    return values


def test_every_dashboard_query_returns_series(stack: Stack) -> None:
    prom = stack.prometheus
    checked: list[str] = []
    empty: list[str] = []
    for path in dashboards.dashboard_files():
        dashboard = dashboards.load(path)
        for query in dashboards.queries(dashboard):
            for expr in dashboards.expansions(
                query, dashboard, lambda m, label: _label_values(prom, m, label)
            ):
                checked.append(expr)
                if not _has_series(prom, query, expr, stack.started):
                    empty.append(f"{query.name}: {expr}")
    assert checked
    assert not empty, "queries without a series:\n" + "\n".join(empty)


def _has_series(prom: Prometheus, query: dashboards.Query, expr: str, start: float) -> bool:
    """Whether the query, as the panel runs it (instant, or over the load's time range),
    returns a series within QUERY_WAIT_S (a rate needs a second scrape of a new series)."""

    def count() -> int:
        if query.instant:
            return len(prom.query(expr))
        return len(prom.query_range(expr, start, time.time()))

    try:
        wait_for(expr, count, QUERY_WAIT_S)
    except AssertionError:
        return False
    return True


def test_alert_rules_load_and_evaluate_on_live_data(stack: Stack) -> None:
    prom = stack.prometheus

    def evaluated() -> list[dict[str, object]] | None:
        groups = prom.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if all(r["health"] != "unknown" for r in rules) else None

    rules = wait_for("every rule to be evaluated", evaluated)
    assert {g["name"] for g in prom.api("rules")["groups"]} == {
        "collectwise-scorer",
        "collectwise-jobs",
    }
    bad = [(r["name"], r["health"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, bad
    # The 401s and 404s are the callers' errors: no server-error alert even pending, and no
    # failed store read opened the circuit. (Down and not-ready are left out: on a loaded
    # machine a 1 s scrape or a store probe may time out once and set them pending.)
    active = {a["labels"]["alertname"] for a in prom.api("alerts")["alerts"]}
    assert not active & {"CollectwiseScorerServerErrors", "CollectwiseOnlineStoreCircuitOpen"}, (
        active
    )


# A metric name in PromQL: an identifier right before a label matcher or a range.
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")
# Rules over metrics nothing exports yet, on purpose (the comments in the rules file say so).
FUTURE_GROUPS = {"collectwise-jobs"}


def test_the_scorer_alerts_use_metrics_that_exist(stack: Stack) -> None:
    rules = [
        rule
        for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        if group["name"] not in FUTURE_GROUPS
        for rule in group["rules"]
    ]
    names = {name for rule in rules for name in SELECTOR.findall(rule["expr"])}
    assert {"up", "collectwise_requests_total"} <= names
    absent = [n for n in sorted(names) if not stack.prometheus.query(f'count({{__name__="{n}"}})')]
    assert not absent, f"alert rules use metrics the scorer does not export: {absent}"


def test_killing_the_scorer_sends_its_down_alert_pending(
    world: ScorerWorld, tmp_path: Path
) -> None:
    with (
        running_scorer(world, tmp_path / "scorer", workers=1) as scorer,
        running_prometheus(f"127.0.0.1:{scorer.port}", tmp_path / "prometheus") as prom,
    ):
        up = f'up{{job="{SCORER_JOB}"}}'
        wait_for("the scorer target to be up", lambda: prom.value(up) == 1)
        os.killpg(scorer.process.pid, signal.SIGKILL)
        scorer.process.wait(timeout=30)
        wait_for("a failed scrape", lambda: prom.value(up) == 0)

        def down_alert() -> dict[str, object] | None:
            alerts = prom.api("alerts")["alerts"]
            return next((a for a in alerts if a["labels"]["alertname"] == "CollectwiseScorerDown"),
                        None)  # fmt: skip

        alert = wait_for("CollectwiseScorerDown", down_alert)
        # pending: the rule waits 2 minutes before it fires, longer than this test runs
        assert alert["state"] == "pending", alert
        assert alert["labels"] == {
            "alertname": "CollectwiseScorerDown",
            "severity": "critical",
            "job": SCORER_JOB,
            "instance": f"127.0.0.1:{scorer.port}",
            "service": "scorer",
        }
