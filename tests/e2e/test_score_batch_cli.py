"""`collectwise score-batch` with a registered model: a UCI-format file needs no outcome
column, ids that are not account ids are reported apart from unknown ones, and the output
format follows the extension.

Real parts throughout: the shared UCI file, the adapter, the contract, the feature SQL, a
Feast repo (SQLite online store), an MLflow registry in a temporary directory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from collectwise.cli import app
from collectwise.settings import FEAST_YAML_ENV, get_settings
from ingestion.feast_store import features_as_of, materialize_latest
from ingestion.features import build_features
from ingestion.retrieval import apply_scratch_repo
from ingestion.uci import LABEL, ingest_uci
from ingestion.validate import validate_raw
from tests.integration.test_score_batch import fitted_model
from tests.mlflow_env import temporary_mlflow
from training.batch_scoring import INVALID_ID, NO_FEATURES, snapshot_vectors
from training.model_matrix import model_matrix
from training.registry import TEST_AUC, register
from training.scoring_model import ScoringModel

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

runner = CliRunner()
CLIENTS = 200


@dataclass(frozen=True)
class World:
    root: Path
    labelled: Path
    unlabelled: Path
    known: list[str]


def _fit(vectors: pd.DataFrame, labels: pd.DataFrame) -> ScoringModel:
    x = model_matrix(vectors)
    y = vectors[["account_id"]].merge(labels, on="account_id")["default_30d"].to_numpy()
    return fitted_model(x, y)


def _features(csv: Path, work: Path) -> Path:
    ingest_uci(csv, work / "raw", work / "quarantine_input")
    validate_raw(work / "raw", work / "validated", work / "quarantine", work / "reports")
    build_features(work / "validated", work / "features")
    return work / "features"


def _online_store(root: Path, features: Path) -> Path:
    """A Feast profile under root with the features' newest snapshot materialised."""
    scratch = apply_scratch_repo(root, features, "cwtest_score_batch_cli")
    materialize_latest(scratch.store, features_as_of(features))
    return scratch.profile


@pytest.fixture(scope="module")
def world(uci_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("score_batch_cli")
    source = pd.read_csv(uci_csv, nrows=CLIENTS)
    labelled, unlabelled = root / "labelled.csv", root / "unlabelled.csv"
    source.to_csv(labelled, index=False)
    source.drop(columns=[LABEL]).to_csv(unlabelled, index=False)
    features = _features(labelled, root / "data")
    vectors = snapshot_vectors(features, root / "feast_fit")
    model = _fit(vectors, pd.read_parquet(features / "labels.parquet"))
    profile = _online_store(root, features)
    patch = pytest.MonkeyPatch()
    patch.setenv("COLLECTWISE_PATHS__DATA_DIR", str(root / "data"))
    patch.setenv("COLLECTWISE_MONITORING__DB_URL", f"sqlite:///{root / 'monitoring.db'}")
    patch.setenv(FEAST_YAML_ENV, str(profile))
    get_settings.cache_clear()
    with temporary_mlflow(root / "mlflow"):
        register(model, {TEST_AUC: 0.7}, {"model": "logistic"}, {}, {}, "test-set")
        yield World(root, labelled, unlabelled, sorted(vectors["account_id"])[:3])
    patch.undo()
    get_settings.cache_clear()


def score(world: World, in_file: Path, out: Path) -> pd.DataFrame:
    result = runner.invoke(
        app, ["score-batch", "--in", str(in_file), "--out", str(out), "--model-version", "1"]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    return read_scores(out)


def read_scores(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix.lower() == ".json":
        return pd.read_json(path, orient="records", dtype={"account_id": str})
    return pd.read_csv(path, dtype={"account_id": str})


def test_uci_file_without_the_outcome_column_is_scored(world: World) -> None:
    # Feast returns historical rows in no fixed order.
    without = score(world, world.unlabelled, world.root / "without.parquet")
    without = without.sort_values("account_id", ignore_index=True)
    with_label = score(world, world.labelled, world.root / "with.parquet")
    with_label = with_label.sort_values("account_id", ignore_index=True)
    assert len(without) == CLIENTS and (without["status"] == "scored").all()
    # The outcome column, when present, plays no part in scoring.
    pd.testing.assert_frame_equal(without, with_label)


def test_invalid_ids_are_reported_apart_from_unknown_ones(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    ids = world.root / "ids.csv"
    listed = [world.known[0], "../../x", "NO-SUCH", "", "a" * 65, world.known[1]]
    pd.DataFrame({"account_id": listed}).to_csv(ids, index=False)
    with caplog.at_level(logging.INFO):
        scores = score(world, ids, world.root / "ids_scores.csv")
    assert scores["account_id"].fillna("").tolist() == listed
    assert scores["status"].tolist() == [
        "scored",
        INVALID_ID,
        NO_FEATURES,
        INVALID_ID,
        INVALID_ID,
        "scored",
    ]
    assert scores.loc[[1, 2, 3, 4], "probability"].isna().all()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # CSV lines count the header as line 1.
    invalid = [w for w in warnings if "invalid account id" in w]
    unknown = [w for w in warnings if "no features" in w]
    assert len(invalid) == 1 and "lines 3, 5, 6" in invalid[0] and "'../../x'" in invalid[0]
    assert len(unknown) == 1 and "line 4" in unknown[0] and "NO-SUCH" in unknown[0]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json", ".JSON"])
def test_output_format_follows_the_extension(world: World, suffix: str) -> None:
    ids = world.root / "known.csv"
    pd.DataFrame({"account_id": world.known}).to_csv(ids, index=False)
    out = world.root / f"scores{suffix}"
    scores = score(world, ids, out)
    head = out.read_bytes()[:4]
    if suffix == ".parquet":
        assert head == b"PAR1"
    elif suffix.lower() == ".json":
        assert head.startswith(b"[")
    else:
        assert head == b"acco"
    assert scores["account_id"].tolist() == world.known
    assert np.isfinite(scores["probability"].to_numpy(float)).all()
