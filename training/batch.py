"""Batch scoring with a registered model, through the same feature definitions.

Two inputs: a raw-format file (a UCI-format CSV), which runs the adapter, validation and
the feature SQL into a scratch directory and reads the vectors from a temporary Feast repo
at the data's snapshot; or account ids, whose vectors come from the current online store.
Either way the vectors go through training.matrix.model_matrix, as in training.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd
import yaml

from feature_repo.definitions import build_definitions
from feature_repo.services import COLLECTION_RISK_V1
from ingestion.features import build_features
from ingestion.store import features_as_of, online_feature_vectors
from ingestion.uci import ingest_uci
from ingestion.validate import validate_raw
from training.bundle import ScoringModel
from training.matrix import model_matrix

log = logging.getLogger(__name__)

UCI_MARKER = "LIMIT_BAL"


class BatchInputError(ValueError):
    """The batch input is neither a UCI-format file nor a list of account ids."""


def score_vectors(model: ScoringModel, vectors: pd.DataFrame) -> pd.DataFrame:
    """Probability, band and decision per account; accounts without features are kept,
    marked, and never scored as if their features were zero."""
    known = vectors["customer_id"].fillna("").astype(str) != ""
    out = pd.DataFrame({"account_id": vectors["account_id"].astype(str)})
    out["probability"] = float("nan")
    out["band"] = "unknown"
    out["decision"] = pd.NA
    if known.any():
        scored = model.score(model_matrix(vectors[known]))
        out.loc[known, "probability"] = scored["probability"].to_numpy()
        out.loc[known, "band"] = scored["band"].to_numpy()
        out.loc[known, "decision"] = scored["decision"].to_numpy()
    out["status"] = known.map({True: "scored", False: "no features for this account"})
    return out


def score_accounts(
    store: object, model: ScoringModel, account_ids: Sequence[str], as_of: datetime | None = None
) -> pd.DataFrame:
    """Score accounts already in the online store."""
    vectors = online_feature_vectors(store, list(account_ids), scoring_time=as_of)  # type: ignore[arg-type]
    return score_vectors(model, vectors)


def score_uci_file(csv: Path, model: ScoringModel, work_dir: Path | None = None) -> pd.DataFrame:
    """Score every client of a UCI-format file as of its snapshot."""
    work = Path(work_dir or tempfile.mkdtemp(prefix="collectwise-batch-"))
    ingest_uci(csv, work / "raw", work / "quarantine_input")
    validate_raw(work / "raw", work / "validated", work / "quarantine", work / "reports")
    build_features(work / "validated", work / "features")
    return score_vectors(model, _historical_vectors(work / "features", work / "feast"))


def _historical_vectors(features_dir: Path, repo: Path) -> pd.DataFrame:
    from feast import FeatureStore  # noqa: PLC0415

    as_of = features_as_of(features_dir)
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        yaml.safe_dump(
            {
                "project": "collectwise_batch",
                "provider": "local",
                "registry": str(repo / "registry.db"),
                "offline_store": {"type": "duckdb"},
                "online_store": {"type": "sqlite", "path": str(repo / "online.db")},
                "entity_key_serialization_version": 3,
            }
        )
    )
    store = FeatureStore(repo_path=str(repo))
    store.apply(build_definitions(features_dir).objects())
    profile = pd.read_parquet(features_dir / "account_profile.parquet")
    entities = profile.loc[profile["event_timestamp"] == as_of, ["account_id", "customer_id"]]
    entities = entities.assign(
        event_timestamp=as_of, scoring_time=as_of, reported_monthly_income=0.0
    )
    log.info("scoring %d accounts as of %s", len(entities), as_of.isoformat())
    return store.get_historical_features(
        entity_df=entities,
        features=store.get_feature_service(COLLECTION_RISK_V1),
        full_feature_names=True,
        filter_by_created_timestamp=True,
    ).to_df()


def read_account_ids(path: Path) -> list[str]:
    """Account ids from a CSV or parquet file with an `account_id` column."""
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
    if "account_id" not in frame.columns:
        raise BatchInputError(
            f"{path}: expected a UCI-format file (with {UCI_MARKER}) or a column 'account_id'; "
            f"found columns {list(frame.columns)[:8]}"
        )
    return [str(a) for a in frame["account_id"].dropna()]


def is_uci_file(path: Path) -> bool:
    if path.suffix == ".parquet":
        return False
    with path.open(encoding="utf-8-sig") as handle:
        return any(UCI_MARKER in handle.readline() for _ in range(2))


def write_scores(scores: pd.DataFrame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        scores.to_parquet(out, index=False)
    else:
        scores.to_csv(out, index=False)
