"""Champion / challenger experiments, end to end on generated accounts.

Split mode driven through the real scorer (real Feast, MLflow, served log); then experiments
whose served logs the real served-log writer writes from two real models' scores on the
generator's accounts, judged on the generator's matured labels by `collectwise monitor
experiment`, and used as the promotion gate's evidence.

The weaker arm is the real model with noise added to its scores (on the logit scale): how
much worse it is stays known, so "truly better" and "equal" are both by construction.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from typer.testing import CliRunner

from collectwise.cli import app as cli
from collectwise.settings import get_settings
from monitoring.experiment import CHALLENGER, CHAMPION, latest_report
from serving.events import ScoreEvent
from serving.main import create_app
from serving.scoring import in_challenger_share
from serving.servedlog import ServedLogWriter, read_served
from tests.serving.conftest import (
    SCORE_KEY,
    ScorerWorld,
    eventually,
    fit_model,
    register_model,
    scorer_settings,
    serve,
)
from tests.serving.live_scorer import running_scorer
from tests.serving.test_scorer import _wait_for, known_accounts
from training import registry
from training.model_matrix import model_matrix
from training.scoring_model import ScoringModel

pytestmark = pytest.mark.integration

AUTH = {"X-API-Key": SCORE_KEY}
SHARE = 0.5
NOISE = 0.6  # logit-scale noise: the weaker arm loses about 0.04 of AUC
runner = CliRunner()


@pytest.fixture(scope="module")
def challenger(world: ScorerWorld) -> Iterator[registry.ModelMetadata]:
    """A second real model, registered: the registry makes it the challenger."""
    meta = register_model(fit_model(world, seed=3, trees=10), auc=0.81)
    yield meta


# --------------------------------------------------------------------------- split mode


def test_split_mode_serves_both_arms_by_account_and_logs_the_arm(
    world: ScorerWorld, challenger: registry.ModelMetadata, tmp_path: Path
) -> None:
    champion = registry.show(CHAMPION)
    accounts = known_accounts(world, 60)
    settings = scorer_settings(tmp_path, challenger_mode="split", challenger_share=SHARE)
    app = create_app(settings, store=world.store)
    as_of = world.data.as_of.isoformat()
    batch = {"accounts": [{"account_id": a} for a in accounts], "as_of": as_of}
    with serve(app) as client:
        _wait_for(client, champion.version, challenger.version)
        first = client.post("/v1/score/batch", json=batch, headers=AUTH)
        again = client.post("/v1/score/batch", json=batch, headers=AUTH)
        single = client.post(
            "/v1/score", json={"account_id": accounts[0], "as_of": as_of}, headers=AUTH
        )
    assert first.status_code == again.status_code == single.status_code == 200, first.text
    arms = {r["account_id"]: r["model"] for r in first.json()["results"]}
    # Deterministic by account: the same hash split as serving.scoring, on every request.
    expected = {a: in_challenger_share(a, SHARE) for a in accounts}
    assert {a: m["alias"] == CHALLENGER for a, m in arms.items()} == expected
    assert {r["account_id"]: r["model"] for r in again.json()["results"]} == arms
    assert single.json()["model"] == arms[accounts[0]]
    assert {m["alias"] for m in arms.values()} == {CHAMPION, CHALLENGER}
    for model in arms.values():
        want = challenger.version if model["alias"] == CHALLENGER else champion.version
        assert model["version"] == want

    served = read_served(tmp_path / "served")
    assert len(served) == 2 * len(accounts) + 1
    for row in served.itertuples():
        arm = CHALLENGER if expected[str(row.account_id)] else CHAMPION
        assert row.model_alias == arm
        assert row.model_version == (challenger.version if arm == CHALLENGER else champion.version)
        # Both models score every account: the champion's arm carries the challenger's score.
        assert row.challenger_version == challenger.version
        if arm == CHALLENGER:
            assert row.probability == pytest.approx(row.challenger_probability)


def test_split_mode_set_by_the_environment_in_the_scorer_process(
    world: ScorerWorld, challenger: registry.ModelMetadata, tmp_path: Path
) -> None:
    """`collectwise serve` itself, split mode from its environment, log read after shutdown."""
    champion = registry.show(CHAMPION)
    accounts = known_accounts(world, 40)
    batch = {
        "accounts": [{"account_id": a} for a in accounts],
        "as_of": world.data.as_of.isoformat(),
    }
    split = {"COLLECTWISE_SERVING__CHALLENGER_MODE": "split",
             "COLLECTWISE_SERVING__CHALLENGER_SHARE": str(SHARE)}  # fmt: skip
    with running_scorer(world, tmp_path / "scorer", workers=1, extra=split) as scorer:
        current = requests.get(f"{scorer.url}/v1/models/current", headers=AUTH, timeout=10)
        assert current.json()["mode"] == "split", current.text
        assert eventually(lambda: _serves_challenger(scorer.url, challenger.version))
        answer = requests.post(f"{scorer.url}/v1/score/batch", json=batch, headers=AUTH, timeout=30)
    assert answer.status_code == 200, answer.text
    got = {r["account_id"]: r["model"]["version"] for r in answer.json()["results"]}
    want = {
        a: challenger.version if in_challenger_share(a, SHARE) else champion.version
        for a in accounts
    }
    assert got == want and len(set(got.values())) == 2
    logged = read_served(tmp_path / "scorer" / "served")
    arms = dict(zip(logged["account_id"], logged["model_alias"], strict=True))
    assert arms == {a: CHALLENGER if v == challenger.version else CHAMPION for a, v in want.items()}
    assert dict(zip(logged["account_id"], logged["model_version"], strict=True)) == want


def _serves_challenger(url: str, version: int) -> bool:
    current = requests.get(f"{url}/v1/models/current", headers=AUTH, timeout=10).json()
    return bool((current["challenger"] or {}).get("version") == version)


# --------------------------------------------------------------------------- experiments


def _noisy(p: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logit = np.log(p / (1 - p)) + rng.normal(0.0, NOISE, len(p))
    return np.asarray(1 / (1 + np.exp(-logit)))


def _events(
    rows: pd.DataFrame, scores: Mapping[str, np.ndarray], versions: Mapping[str, int], model: Any
) -> list[ScoreEvent]:
    """What the scorer logs in split mode: the arm that answered, and both arms' scores."""
    events = []
    for i, (account, customer, snapshot) in enumerate(
        zip(rows["account_id"], rows["customer_id"], rows["event_timestamp"], strict=True)
    ):
        arm = CHALLENGER if in_challenger_share(account, SHARE) else CHAMPION
        p = float(scores[arm][i])
        moment = _scored_at(account, snapshot.to_pydatetime())
        events.append(
            ScoreEvent(
                request_id=f"r{i}", scored_at=moment, route="/v1/score", caller="platform",
                account_id=account, customer_id=customer, scoring_time=moment,
                reported_monthly_income=None, features={},
                feature_timestamps={"account_payment_velocity": snapshot.to_pydatetime()},
                vector=[],
                model_name="collection-risk", model_version=versions[arm], model_alias=arm,
                probability=p, band=model.band(p), decision=model.decide(p),
                challenger_version=versions[CHALLENGER],
                challenger_probability=float(scores[CHALLENGER][i]), degraded=False, imputed=[],
                latency_ms=1.0,
            )
        )  # fmt: skip
    return events


def _scored_at(account: str, snapshot: datetime) -> datetime:
    """Accounts are scored through the month on their snapshot's features, each on its day."""
    return snapshot + timedelta(days=zlib.crc32(account.encode()) % 28)


def write_log(directory: Path, rows: pd.DataFrame, scores: Mapping[str, np.ndarray],
              versions: Mapping[str, int], model: ScoringModel) -> None:  # fmt: skip
    writer = ServedLogWriter(directory)
    writer.write(_events(rows, scores, versions, model))
    writer.close()


class Generated:
    """The real model, trained on the generator's early snapshots, scoring the later ones."""

    def __init__(self, world: ScorerWorld) -> None:
        data = world.dataset.sort_values(["event_timestamp", "account_id"], kind="stable")
        snapshots = sorted(data["event_timestamp"].unique())
        cut = snapshots[len(snapshots) // 3]
        train, self.rows = data[data["event_timestamp"] < cut], data[data["event_timestamp"] >= cut]
        self.rows = self.rows.reset_index(drop=True)
        self.model = _fit(world, train)
        self.p = np.clip(self.model.predict_proba(model_matrix(self.rows)), 1e-6, 1 - 1e-6)
        self.snapshots = sorted(self.rows["event_timestamp"].unique())


def _fit(world: ScorerWorld, train: pd.DataFrame) -> ScoringModel:
    early = ScorerWorld(world.store, world.data, train.reset_index(drop=True), world.root)
    return fit_model(early, seed=11, trees=60)


@pytest.fixture(scope="module")
def generated(world: ScorerWorld) -> Generated:
    return Generated(world)


def run_experiment_cli(served: Path, world: ScorerWorld, reports: Path, *extra: str) -> Any:
    args = ["monitor", "experiment", "--window", "800d", "--served-dir", str(served),
            "--features-dir", str(world.data.features_dir), "--reports-dir", str(reports),
            "--no-alerts", *extra]  # fmt: skip
    return runner.invoke(cli, args)


def _report(result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    text = result.stdout
    loaded: dict[str, Any] = json.loads(text[text.index("{") :])
    return loaded


def test_a_truly_better_challenger_is_found_better_once_enough_outcomes_matured(
    world: ScorerWorld, generated: Generated, tmp_path: Path
) -> None:
    versions = {CHAMPION: 1, CHALLENGER: 2}
    scores = {CHAMPION: _noisy(generated.p, seed=1), CHALLENGER: generated.p}
    write_log(tmp_path / "served", generated.rows, scores, versions, generated.model)

    # Early on, with the outcomes of two weeks of scores matured, it is too soon to tell.
    early_end = (generated.snapshots[0] + timedelta(days=14)).isoformat()
    early = _report(run_experiment_cli(tmp_path / "served", world, tmp_path / "r1", "--json",
                                       "--end", early_end))  # fmt: skip
    assert early["verdict"]["result"] == "undecided"
    assert early["sample_size"]["more"] > 0

    full = _report(run_experiment_cli(tmp_path / "served", world, tmp_path / "r2", "--json"))
    diff = full["difference"][full["difference"]["headline"]]
    assert full["difference"]["headline"] == "paired" and diff["low"] > 0
    assert full["verdict"]["result"] == "better"
    assert full["overall"]["n"] > early["overall"]["n"]
    arms = full["arms"]
    assert arms[CHALLENGER]["auc"]["auc"] > arms[CHAMPION]["auc"]["auc"]
    assert full["difference"]["unpaired"]["difference"] > 0
    for figures in arms.values():
        assert {b["band"] for b in figures["bands"]} <= {"low", "medium", "high"}
        assert sum(b["n"] for b in figures["bands"]) == figures["n"]
        assert 0 <= figures["collection_success_rate"] <= 1
    assert latest_report(tmp_path / "r2") == full

    table = run_experiment_cli(tmp_path / "served", world, tmp_path / "r3")
    assert table.exit_code == 0 and "better" in table.stdout and "paired" in table.stdout


def test_an_equal_challenger_is_not_found_better(
    world: ScorerWorld, generated: Generated, tmp_path: Path
) -> None:
    # Equal by construction: the same model, each arm with its own noise of the same size.
    scores = {CHAMPION: _noisy(generated.p, seed=1), CHALLENGER: _noisy(generated.p, seed=2)}
    write_log(tmp_path / "served", generated.rows, scores, {CHAMPION: 1, CHALLENGER: 2},
              generated.model)  # fmt: skip
    report = _report(run_experiment_cli(tmp_path / "served", world, tmp_path / "r", "--json"))
    diff, unpaired = report["difference"]["paired"], report["difference"]["unpaired"]
    assert report["verdict"]["result"] == "undecided" and diff["low"] < 0 < diff["high"]
    # Between the arms too, once each account counts once however often it was scored.
    assert unpaired["low"] < 0 < unpaired["high"]
    assert report["sample_size"]["required"] > 0


def test_one_arm_or_no_matured_outcome_is_a_clear_error(
    world: ScorerWorld, generated: Generated, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mine = np.array([not in_challenger_share(a, SHARE) for a in generated.rows["account_id"]])
    only_champion = generated.rows[mine].reset_index(drop=True)
    scores = {CHAMPION: generated.p[mine], CHALLENGER: generated.p[mine]}
    versions = {CHAMPION: 1, CHALLENGER: 2}
    write_log(tmp_path / "one", only_champion, scores, versions, generated.model)
    one = run_experiment_cli(tmp_path / "one", world, tmp_path / "r")
    assert one.exit_code == 1 and "both arms" in caplog.text and "Traceback" not in one.output
    caplog.clear()

    late = generated.rows.assign(event_timestamp=world.data.as_of)  # scored today: not matured
    write_log(tmp_path / "late", late, {CHAMPION: generated.p, CHALLENGER: generated.p},
              {CHAMPION: 1, CHALLENGER: 2}, generated.model)  # fmt: skip
    end = (world.data.as_of + timedelta(days=1)).isoformat()
    immature = run_experiment_cli(tmp_path / "late", world, tmp_path / "r", "--end", end)
    assert immature.exit_code == 1 and "no matured outcome" in caplog.text


# --------------------------------------------------------------------------- promotion


def _promote_on_experiment(
    world: ScorerWorld, served: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    monkeypatch.setenv("COLLECTWISE_PATHS__SERVED_DIR", str(served))
    monkeypatch.setenv("COLLECTWISE_PATHS__DATA_DIR", str(world.data.root))
    monkeypatch.setenv("COLLECTWISE_PATHS__REPORTS_DIR", str(tmp_path / "reports"))
    # The live Feast registry the scorer checks against: the world's own.
    monkeypatch.setenv("FEAST_FS_YAML_FILE_PATH", str(world.root / "repo" / "feature_store.yaml"))
    get_settings.cache_clear()  # read the paths just set
    args = ["models", "promote", "--evidence", "experiment", "--experiment-window", "800d"]
    return runner.invoke(cli, args)


def test_promotion_on_experiment_evidence_refuses_an_equal_and_takes_a_better_challenger(
    world: ScorerWorld,
    generated: Generated,
    challenger: registry.ModelMetadata,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    champion = registry.show(CHAMPION)
    versions = {CHAMPION: champion.version, CHALLENGER: challenger.version}
    noisy = _noisy(generated.p, seed=1)
    equal = {CHAMPION: noisy, CHALLENGER: _noisy(generated.p, seed=2)}
    write_log(tmp_path / "equal", generated.rows, equal, versions, generated.model)
    refused = _promote_on_experiment(world, tmp_path / "equal", tmp_path, monkeypatch)
    assert refused.exit_code == 1 and "promotion refused" in caplog.text
    assert registry.show(CHAMPION).version == champion.version
    tags = registry.show(challenger.version).tags
    assert tags["experiment.verdict"] == "undecided"
    assert float(tags["experiment.auc_low"]) < 0 < float(tags["experiment.auc_high"])

    better = {CHAMPION: noisy, CHALLENGER: generated.p}
    write_log(tmp_path / "better", generated.rows, better, versions, generated.model)
    promoted = _promote_on_experiment(world, tmp_path / "better", tmp_path, monkeypatch)
    try:
        assert promoted.exit_code == 0, caplog.text
        meta = registry.show(CHAMPION)
        assert meta.version == challenger.version
        assert meta.tags["experiment.verdict"] == "better"
        assert float(meta.tags["experiment.auc_low"]) > 0
        assert meta.tags["experiment.champion_version"] == str(champion.version)
        assert "AUC gain" in meta.tags["promotion_reason"]
        logged = registry.tracking_client().download_artifacts(
            str(meta.run_id), meta.tags["experiment.artifact"], str(tmp_path / "download")
        )
        document = json.loads(Path(logged).read_text())
        assert document["verdict"]["result"] == "better"
        assert document["versions"] == {CHAMPION: champion.version, CHALLENGER: meta.version}
    finally:
        if registry.show(CHAMPION).version != champion.version:
            registry.rollback("tests", "restore the champion for the next tests")
