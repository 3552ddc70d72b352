"""Point-in-time training sets: matured labels joined to the feature service with Feast.

Entity rows are the label table, which holds only matured labels, so a training set never
contains an outcome that was not yet known. Features come from get_historical_features with
filter_by_created_timestamp (ingestion.retrieval, like every offline read), so a row only
sees values recorded by its snapshot time; the request-time features are computed as
serving would compute them at that moment, with no reported income.

Beside the features the set carries evaluation-only columns, named so that no model can
take them by accident: `protected__*` (fairness reports) and, on synthetic data,
`oracle__p_default` (the generator's true probability). training.model_matrix drops both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from collectwise.errors import InvalidInputError
from feature_repo.feature_services import COLLECTION_RISK_V1
from ingestion import retrieval
from ingestion.features import connect
from ingestion.rawio import has_table, swap_dir, table_glob
from training.fingerprint import definitions_fingerprint, service_feature_refs

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)

LABEL_COL = "default_30d"
TIME_COL = "event_timestamp"
ENTITY_COLUMNS = ("account_id", "customer_id", TIME_COL, LABEL_COL)
REQUEST_COLUMNS = (retrieval.SCORING_TIME, retrieval.REPORTED_INCOME)
PROTECTED_ATTRIBUTES = ("age_band", "sex")
PROTECTED_PREFIX = "protected__"
ORACLE_COL = "oracle__p_default"
ORACLE_DIR = "_oracle"
DATASET_FILE = "dataset.parquet"
SUMMARY_FILE = "dataset.json"


class DatasetBuildError(InvalidInputError, RuntimeError):
    """The training set cannot be built from these inputs (the message says why)."""


@dataclass
class DatasetSummary:
    rows: int
    positives: int
    snapshots: dict[str, Any]
    columns: list[str]
    feature_columns: list[str]
    service_name: str
    definitions_fingerprint: str
    labels_sha256: str
    features_manifest_sha256: str
    dataset_fingerprint: str
    has_oracle: bool = False
    seconds: float = 0.0
    sources: dict[str, str] = field(default_factory=dict)


def build_training_set(
    store: FeatureStore,
    features_dir: Path,
    raw_dir: Path,
    out_dir: Path,
    service_name: str = COLLECTION_RISK_V1,
    oracle_dir: Path | None = None,
) -> DatasetSummary:
    """Build out_dir/dataset.parquet and out_dir/dataset.json; see the module docstring.

    raw_dir is the validated raw directory (for the protected attributes); the oracle is
    read from oracle_dir, by default raw_dir/_oracle, and skipped when absent (validation
    does not copy it, so pass the generator's raw/_oracle explicitly on synthetic data).
    """
    started = time.perf_counter()
    features_dir, raw_dir, out_dir = Path(features_dir), Path(raw_dir), Path(out_dir)
    labels = _read_labels(features_dir)
    log.info("building a training set of %d labelled rows over %s", len(labels), service_name)
    frame = retrieve_features(store, entity_rows(labels), service_name)
    frame = attach_protected(frame, raw_dir)
    oracle = Path(oracle_dir) if oracle_dir else raw_dir / ORACLE_DIR
    has_oracle = has_table(oracle.parent, oracle.name)
    if has_oracle:
        frame = attach_oracle(frame, oracle)
    else:
        log.info("no oracle at %s: oracle__p_default left out", oracle)
    summary = _summarise(store, frame, features_dir, service_name, has_oracle)
    summary.sources = {"features_dir": str(features_dir), "raw_dir": str(raw_dir)}
    summary.seconds = round(time.perf_counter() - started, 3)
    write_dataset(frame, summary, out_dir)
    _log_summary(summary, out_dir)
    return summary


def _read_labels(features_dir: Path) -> pd.DataFrame:
    path = features_dir / "labels.parquet"
    if not path.exists():
        raise DatasetBuildError(f"{path} not found: run `collectwise build-features` first")
    labels = pd.read_parquet(path, columns=list(ENTITY_COLUMNS))
    if labels.empty:
        raise DatasetBuildError(f"{path} holds no matured labels")
    return labels


def entity_rows(labels: pd.DataFrame) -> pd.DataFrame:
    """Labels as entity rows, plus what serving would send: the moment, no reported income.
    The label rides along, so each training row keeps its own outcome."""
    return retrieval.entity_rows(
        labels["account_id"],
        labels["customer_id"],
        labels[TIME_COL],
        extra={LABEL_COL: labels[LABEL_COL]},
    )


def retrieve_features(
    store: FeatureStore, entities: pd.DataFrame, service_name: str = COLLECTION_RISK_V1
) -> pd.DataFrame:
    """The service's features as of each entity row, deterministically ordered."""
    started = time.perf_counter()
    frame = retrieval.point_in_time_vectors(store, entities, service_name)
    if len(frame) != len(entities):
        raise DatasetBuildError(f"Feast returned {len(frame)} rows for {len(entities)} entities")
    refs = service_feature_refs(store, service_name)
    missing = sorted(set(refs) - set(frame.columns))
    if missing:
        raise DatasetBuildError(f"Feast returned no column for {missing}")
    keys = [*ENTITY_COLUMNS, *REQUEST_COLUMNS]
    frame = frame[keys + refs].sort_values([TIME_COL, "account_id"], kind="stable")
    log.info("retrieved %d feature columns in %.1fs", len(refs), time.perf_counter() - started)
    return frame.reset_index(drop=True)


def attach_protected(frame: pd.DataFrame, raw_dir: Path) -> pd.DataFrame:
    """Join the customers' protected attributes, for fairness reports only."""
    if not has_table(raw_dir, "customers"):
        raise DatasetBuildError(f"raw table 'customers' is missing under {raw_dir}")
    columns = ", ".join(f"{a} AS {PROTECTED_PREFIX}{a}" for a in PROTECTED_ATTRIBUTES)
    customers = _query(
        f"SELECT DISTINCT customer_id, {columns} "  # nosec B608  # constant column names; the path is the operator's own (settings)
        f"FROM read_parquet('{table_glob(raw_dir, 'customers')}')"
    )
    return _left_join(frame, customers, ["customer_id"], "protected attributes")


def attach_oracle(frame: pd.DataFrame, oracle_dir: Path) -> pd.DataFrame:
    """Join the generator's true default probability of each (account, snapshot)."""
    oracle = _query(
        f"SELECT DISTINCT account_id, snapshot_at AS {TIME_COL}, p_default AS {ORACLE_COL} "  # nosec B608  # constant column names; the path is the operator's own (settings)
        f"FROM read_parquet('{Path(oracle_dir) / '*.parquet'}')"
    )
    oracle[TIME_COL] = oracle[TIME_COL].astype(frame[TIME_COL].dtype)
    return _left_join(frame, oracle, ["account_id", TIME_COL], "oracle probabilities")


def _query(sql: str) -> pd.DataFrame:
    con = connect()
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def _left_join(
    frame: pd.DataFrame, other: pd.DataFrame, keys: list[str], what: str
) -> pd.DataFrame:
    # A duplicated key on the right would silently multiply training rows.
    if other.duplicated(keys).any():
        raise DatasetBuildError(f"{what}: more than one row per {keys}")
    joined = frame.merge(other, on=keys, how="left", validate="many_to_one")
    added = [c for c in other.columns if c not in keys]
    unmatched = int(joined[added[0]].isna().sum())
    if unmatched:
        log.warning("%s: %d of %d rows have no match", what, unmatched, len(joined))
    return joined


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_fingerprint(
    service_name: str, definitions: str, labels_sha256: str, manifest_sha256: str
) -> str:
    """sha256 over what produced the set: the definitions, the labels and the feature build."""
    payload = {
        "service": service_name,
        "definitions": definitions,
        "labels": labels_sha256,
        "features_manifest": manifest_sha256,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def _summarise(
    store: FeatureStore,
    frame: pd.DataFrame,
    features_dir: Path,
    service_name: str,
    has_oracle: bool,
) -> DatasetSummary:
    manifest = features_dir / "_manifest.json"
    if not manifest.exists():
        raise DatasetBuildError(f"{manifest} not found: the feature build did not finish")
    definitions = definitions_fingerprint(store, service_name)
    labels_sha = file_sha256(features_dir / "labels.parquet")
    manifest_sha = file_sha256(manifest)
    times = frame[TIME_COL]
    fingerprint = dataset_fingerprint(service_name, definitions, labels_sha, manifest_sha)
    return DatasetSummary(
        rows=len(frame),
        positives=int(frame[LABEL_COL].sum()),
        snapshots={
            "min": times.min().isoformat(),
            "max": times.max().isoformat(),
            "count": int(times.nunique()),
        },
        columns=list(frame.columns),
        feature_columns=service_feature_refs(store, service_name),
        service_name=service_name,
        definitions_fingerprint=definitions,
        labels_sha256=labels_sha,
        features_manifest_sha256=manifest_sha,
        dataset_fingerprint=fingerprint,
        has_oracle=has_oracle,
    )


def write_dataset(frame: pd.DataFrame, summary: DatasetSummary, out_dir: Path) -> None:
    """Write into a temporary sibling and swap it in: a failed build keeps the old set."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        frame.to_parquet(tmp / DATASET_FILE, index=False)
        (tmp / SUMMARY_FILE).write_text(json.dumps(asdict(summary), indent=2))
        swap_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_dataset(out_dir: Path) -> pd.DataFrame:
    """The training set written by build_training_set, in its saved row order."""
    path = Path(out_dir) / DATASET_FILE
    if not path.is_file():
        raise DatasetBuildError(f"no training set at {path}: run `collectwise train build-dataset`")
    return pd.read_parquet(path)


def read_summary(out_dir: Path) -> DatasetSummary:
    return DatasetSummary(**json.loads((Path(out_dir) / SUMMARY_FILE).read_text()))


def _log_summary(summary: DatasetSummary, out_dir: Path) -> None:
    log.info(
        "training set: %d rows, %d positives (%.1f%%), %d snapshots %s..%s, %d features, "
        "oracle %s, fingerprint %s, %.1fs -> %s",
        summary.rows,
        summary.positives,
        100.0 * summary.positives / max(summary.rows, 1),
        summary.snapshots["count"],
        summary.snapshots["min"][:10],
        summary.snapshots["max"][:10],
        len(summary.feature_columns),
        "yes" if summary.has_oracle else "no",
        summary.dataset_fingerprint[:12],
        summary.seconds,
        out_dir,
    )
