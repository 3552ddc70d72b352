"""Automatic rollback: a champion that fails its probation is replaced by the previous one,
by the platform, while the collections platform keeps scoring.

A real scorer (`collectwise serve --workers 2`) over the serving world and a real MLflow
registry: a good champion is promoted with its drift reference, then a bad one (one that
raises for part of the book, one that is slow, one whose scores have shifted). Traffic runs
throughout; the probation job (`collectwise monitor probation`, the scheduler's job) runs
every second, as the scheduler would every minute. Each bad champion is rolled back within
its window, the rollback is recorded by "system" on the version, in the champion history,
in the console's audit trail and as an alert, and no request fails but those the bad model
itself failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from admin_app.actions import ActionLog
from benchmarks.scorer_harness import Server
from collectwise import monitor_cli
from collectwise.settings import get_settings
from monitoring.monitor_db import MonitoringStore
from tests.serving import conftest as serving
from tests.serving import faulty_models
from tests.serving.conftest import SCORE_KEY, ScorerWorld, fit_model
from tests.serving.live_scorer import running_scorer
from tests.serving.test_scorer import known_accounts
from training import registry
from training.model_matrix import model_matrix
from training.scoring_model import ScoringModel

pytestmark = [pytest.mark.integration, pytest.mark.slow]

feature_data = serving.feature_data
mlflow_env = serving.mlflow_env
world = serving.world

log = logging.getLogger(__name__)

WINDOW_MINUTES = 3.0
MIN_REQUESTS, MIN_SCORES = 20, 100
SLOW_SECONDS = 0.35
AUTH = {"X-API-Key": SCORE_KEY}


@dataclass
class Live:
    scorer: Server
    workdir: Path
    base: ScoringModel
    base_version: int
    reference: Path
    accounts: list[str]


@dataclass
class Answer:
    at: float
    status: int
    version: int | None
    body: str


@dataclass
class Traffic:
    """Single scores in a loop, one account after another, until stopped."""

    url: str
    accounts: list[str]
    as_of: str
    answers: list[Answer] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with requests.Session() as http:
            i = 0
            while not self.stop.is_set():
                account = self.accounts[i % len(self.accounts)]
                i += 1
                answer = http.post(f"{self.url}/v1/score", headers=AUTH, timeout=30,
                                   json={"account_id": account, "as_of": self.as_of})  # fmt: skip
                version = answer.json()["model"]["version"] if answer.status_code == 200 else None
                self.answers.append(Answer(time.monotonic(), answer.status_code, version,
                                           answer.text[:300]))  # fmt: skip


@contextmanager
def traffic(live: Live, world: ScorerWorld) -> Iterator[Traffic]:
    flow = Traffic(live.scorer.url, live.accounts, world.data.as_of.isoformat())
    thread = threading.Thread(target=flow.run, name="traffic", daemon=True)
    thread.start()
    try:
        yield flow
    finally:
        flow.stop.set()
        thread.join(timeout=60)


def _write_reference(model: ScoringModel, world: ScorerWorld, path: Path) -> Path:
    """The version's drift reference: its probabilities on its training rows."""
    reference = world.dataset[["account_id", "event_timestamp"]].copy()
    reference["probability"] = model.predict_proba(model_matrix(world.dataset))
    reference.to_parquet(path, index=False)
    return path


def _register(model: ScoringModel, reference: Path) -> registry.ModelMetadata:
    return registry.register(
        model,
        metrics={registry.TEST_AUC: 0.8},
        params={"kind": "probation test"},
        tags={},
        artifacts={"reference": reference},
        test_set_fingerprint="scorer-tests",
    )


@pytest.fixture(scope="module")
def live(world: ScorerWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    workdir = tmp_path_factory.mktemp("probation")
    base = fit_model(world, seed=1)
    reference = _write_reference(base, world, workdir / "reference.parquet")
    version = _register(base, reference).version
    registry.promote(version, force=True, who="tests", why="probation tests' good champion")
    # The bad champions' classes travel inside their pickles: the scorer cannot import tests.
    cloudpickle.register_pickle_by_value(faulty_models)
    extra = {"COLLECTWISE_SERVING__SERVED_FLUSH_SECONDS": "1"}
    try:
        with running_scorer(world, workdir / "scorer", workers=2, extra=extra) as scorer:
            accounts = known_accounts(world, 10_000)
            yield Live(scorer, workdir / "scorer", base, version, reference, accounts)
    finally:
        cloudpickle.unregister_pickle_by_value(faulty_models)


@pytest.fixture
def job_env(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probation job's settings: the scorer's home, log and metrics, a short window."""
    for name, value in {
        "COLLECTWISE_HOME": live.workdir,
        "COLLECTWISE_PATHS__SERVED_DIR": live.workdir / "served",
        "COLLECTWISE_PATHS__AUDIT_DB": live.workdir / "audit.db",
        "COLLECTWISE_MONITORING__SCORER_METRICS_URL": f"{live.scorer.url}/metrics",
        "COLLECTWISE_MONITORING__PROBATION_MINUTES": WINDOW_MINUTES,
        "COLLECTWISE_MONITORING__PROBATION_MIN_REQUESTS": MIN_REQUESTS,
        "COLLECTWISE_MONITORING__PROBATION_MIN_SCORES": MIN_SCORES,
    }.items():
        monkeypatch.setenv(name, str(value))
    get_settings.cache_clear()


def _wait(what: str, check: Callable[[], bool], seconds: float, every: float = 0.2) -> float:
    """Seconds until check() held; fails after `seconds`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"waited {seconds:.0f}s for {what}")
        time.sleep(every)
    return time.monotonic() - started


def _champion() -> int | None:
    return registry.resolve_alias(registry.CHAMPION)


def _probation_rolled_back() -> bool:
    """One run of the scheduled job, as the scheduler calls it; True once it rolled back."""
    before = _champion()
    monitor_cli.probation()
    return _champion() != before


def _samples(url: str, name: str, **labels: str) -> list[float]:
    """Values of the scorer's metric `name` whose labels include `labels`."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def _model_errors(url: str, version: int, alias: str = "champion") -> float:
    return sum(
        _samples(
            url,
            "collectwise_model_requests_total",
            version=str(version),
            alias=alias,
            outcome="error",
        )
    )


def _raising(base: ScoringModel, world: ScorerWorld) -> Any:
    """Raises for the top 30% of the book on the most varied positive column: the scorer's
    warm-up row (all zeros) passes, so the version loads and then fails in service."""
    matrix = model_matrix(world.dataset)
    cuts = matrix.quantile(0.7)
    column = str(matrix.loc[:, cuts > 0].nunique().idxmax())
    return faulty_models.RaisesForSomeRows(base.estimator, column, float(cuts[column]))


def _restored(flow: Traffic, live: Live, last: int = 10) -> bool:
    """The last answers came from the previous champion, and every worker serves it: the
    traffic's one keep-alive connection reaches one worker only, so the other is asked
    through the champion-version gauge (the highest across workers, and a rollback lowers it)."""
    tail = flow.answers[-last:]
    answered = len(tail) == last and all(a.version == live.base_version for a in tail)
    return answered and _served_champion(live.scorer.url) == live.base_version


def _served_champion(url: str) -> float | None:
    return next(iter(_samples(url, "collectwise_model_version", alias="champion")), None)


BAD: dict[str, tuple[Callable[[ScoringModel, ScorerWorld], Any], str]] = {
    "raises": (_raising, "error rate"),
    "slow": (lambda base, _: faulty_models.Slow(base.estimator, SLOW_SECONDS), "p99 latency"),
    "shifted": (lambda base, _: faulty_models.Shifted(base.estimator), "score PSI"),
}


@pytest.mark.usefixtures("job_env")
def test_a_good_champion_passes_its_probation(live: Live, world: ScorerWorld) -> None:
    assert _champion() == live.base_version
    with traffic(live, world) as flow:
        _wait("enough distinct accounts scored", lambda: len(flow.answers) > MIN_SCORES + 20, 120)
        time.sleep(2.5)  # the served log is flushed every second
        rolled_back = _probation_rolled_back()
    assert not rolled_back
    assert _champion() == live.base_version
    assert {a.status for a in flow.answers} == {200}


@pytest.mark.usefixtures("job_env")
@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_champion_is_rolled_back_within_its_window(
    case: str, live: Live, world: ScorerWorld
) -> None:
    make, expected_reason = BAD[case]
    assert _champion() == live.base_version
    with traffic(live, world) as flow:
        # Registered, a version is the challenger first: scored in the shadow of every
        # request, where its failures must cost nobody an answer.
        bad = _register(replace(live.base, estimator=make(live.base, world)), live.reference)
        assert bad.version > live.base_version  # _restored reads a highest-across-workers gauge
        if case == "raises":
            failing = lambda: _model_errors(live.scorer.url, bad.version, "challenger") > 0  # noqa: E731
            _wait("the challenger to fail in the shadow", failing, 30)
            assert {a.status for a in flow.answers} == {200}
        registry.promote(bad.version, force=True, who="tests", why=f"probation test: {case}")
        promoted = time.monotonic()
        _wait(
            f"v{bad.version} served",
            lambda: any(a.version == bad.version or a.status == 500 for a in flow.answers),
            30,
        )
        _wait(
            "the probation job to roll back", _probation_rolled_back, WINDOW_MINUTES * 60, every=1.0
        )
        detected = time.monotonic() - promoted
        # Each worker follows the alias on its own refresh: recovered once both have.
        _wait("every worker to serve the previous champion", lambda: _restored(flow, live), 30)
        recovered = time.monotonic() - promoted
        after = len(flow.answers)
        _wait("more traffic on the restored champion", lambda: len(flow.answers) > after + 20, 60)
    failed = [a for a in flow.answers if a.status != 200]
    log.info("%s: rolled back %.1f s after the promotion, served by v%d again after %.1f s; "
             "%d of %d requests failed", case, detected, live.base_version, recovered,
             len(failed), len(flow.answers))  # fmt: skip

    assert _champion() == live.base_version
    assert detected < WINDOW_MINUTES * 60
    tags = registry.show(bad.version).tags
    assert tags["rolled_back_by"] == "system"
    assert expected_reason in tags["rolled_back_why"], tags["rolled_back_why"]
    event = registry.champion_history()[-1]
    assert (event["action"], event["by"], event["from"], event["version"]) == (
        "rollback",
        "system",
        bad.version,
        live.base_version,
    )
    actions = ActionLog(get_settings().paths.users_db).recent(5)
    assert any(
        a.who == "system"
        and a.action == "rollback"
        and a.target == f"v{bad.version} -> v{live.base_version}"
        for a in actions
    )
    store = MonitoringStore(get_settings().monitoring.database_url)
    try:
        alerts = [a for a in store.list_alerts() if a.rule_name == "champion rolled back"]
    finally:
        store.dispose()
    assert alerts, "the rollback raised no alert"

    # Nothing failed but what the bad model itself failed: every failure is one of its
    # errors (the scorer counted it against its version), and none came after the rollback.
    if case == "raises":
        assert failed and {a.status for a in failed} == {500}
        assert len(failed) == _model_errors(live.scorer.url, bad.version)
    else:
        assert failed == [], failed[:3]
    assert all(a.status == 200 and a.version == live.base_version for a in flow.answers[after:])
