"""Batch scoring with a registered model, through the same feature definitions.

Two inputs: a raw-format file (a UCI-format CSV), which runs the adapter, validation and
the feature SQL into a scratch directory and reads the vectors from a temporary Feast repo
at the data's snapshot; or account ids, whose vectors come from the current online store.
Either way the vectors go through training.model_matrix.model_matrix, as in training.

Scoring needs no outcome: a UCI-format file is read without its label column (ignored
when present). read_batch_input and check_output judge the files before anything heavy
runs, so Feast, DuckDB and the model load only for inputs that can be scored; their imports
sit inside the functions that need them for the same reason.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from rich.console import Console
from rich.progress import Progress

from collectwise.errors import InvalidInputError
from ingestion.uci import check_format, ingest_uci

if TYPE_CHECKING:
    from training.scoring_model import ScoringModel

log = logging.getLogger(__name__)

UCI_MARKER = "LIMIT_BAL"
NO_FEATURES: Final = "no features for this account"
INVALID_ID: Final = "invalid account id"
# The output format follows --out's extension (any case); nothing else is written.
OUTPUT_FORMATS: Final = (".csv", ".parquet", ".json")
# Rows score_vectors scores at a time. A million rows at once built a 360 MB model matrix
# in fresh pages and took 4.2 s against 3.2-3.4 s in chunks of this size (bench_training);
# a chunk's matrix (about 24 MB) is reused from freed memory, and memory stays bounded.
SCORE_CHUNK_ROWS: Final = 65_536
# Accounts read from the online store and scored at a time by score_accounts.
ONLINE_CHUNK_ROWS: Final = 10_000


class BatchInputError(InvalidInputError, ValueError):
    """The batch input is neither a UCI-format file nor a list of account ids."""


class BatchOutputError(InvalidInputError, ValueError):
    """The scores cannot go where asked: an unknown format or a folder that is not there."""


@dataclass(frozen=True)
class BatchInput:
    """A checked batch file: a UCI-format CSV, or account ids in file order ("" = blank)."""

    path: Path
    kind: Literal["uci", "ids"]
    account_ids: tuple[str, ...] = ()


class ScoreColumns:
    """A batch result's columns, filled position by position as chunks are scored; rows
    never filled keep the unscored defaults and the status they were made with."""

    def __init__(self, rows: int, status: str) -> None:
        self.probability = np.full(rows, np.nan)
        self.band = np.full(rows, "unknown", dtype=object)
        self.decision = np.full(rows, pd.NA, dtype=object)
        self.status = np.full(rows, status, dtype=object)

    def put(self, where: np.ndarray, scored: pd.DataFrame, status: str | np.ndarray) -> None:
        self.probability[where] = scored["probability"].to_numpy()
        self.band[where] = scored["band"].to_numpy()
        self.decision[where] = scored["decision"].to_numpy(dtype=object)
        self.status[where] = status

    def frame(self, account_id: pd.Series | Sequence[str]) -> pd.DataFrame:
        """A Series of ids first keeps its index; the columns follow by position. copy=False:
        the arrays are this result's own, and copying them cost 0.1 s a million rows."""
        columns = {
            "account_id": account_id,
            "probability": self.probability,
            "band": self.band,
            "decision": self.decision,
            "status": self.status,
        }
        return pd.DataFrame(columns, copy=False)


def has_features(vectors: pd.DataFrame) -> np.ndarray:
    """Rows whose account resolved to a customer: the others have no features to score."""
    return (vectors["customer_id"].fillna("").astype(str) != "").to_numpy()


def score_vectors(model: ScoringModel, vectors: pd.DataFrame) -> pd.DataFrame:
    """Probability, band and decision per account; accounts without features are kept,
    marked, and never scored as if their features were zero.

    Rows are scored SCORE_CHUNK_ROWS at a time, so memory holds one chunk's model matrix
    however many rows come in."""
    from training.model_matrix import model_matrix  # noqa: PLC0415

    out = ScoreColumns(len(vectors), NO_FEATURES)
    rows = np.flatnonzero(has_features(vectors))
    for start in range(0, len(rows), SCORE_CHUNK_ROWS):
        part = rows[start : start + SCORE_CHUNK_ROWS]
        # Every row, in one chunk: no copy of the whole frame first.
        chunk = vectors if len(part) == len(vectors) else vectors.iloc[part]
        out.put(part, model.score(model_matrix(chunk)), "scored")
    return out.frame(vectors["account_id"].astype(str))


def score_accounts(
    store: object,
    model: ScoringModel,
    account_ids: Sequence[str],
    as_of: datetime | None = None,
    *,
    is_valid: Callable[[str], bool] = bool,
    chunk_rows: int = ONLINE_CHUNK_ROWS,
) -> pd.DataFrame:
    """Score accounts already in the online store, in the order given. Ids for which
    is_valid is false never reach the store: they are marked INVALID_ID.

    The store is read `chunk_rows` accounts at a time, each chunk scored before the next is
    read, so memory holds one chunk's vectors whatever the number of ids (a book of 1,000,000
    read at once held every vector as Python objects); a bar shows progress on a terminal
    and a log line every tenth of the way otherwise.
    """
    ids = [str(a) for a in account_ids]
    valid = np.array([is_valid(a) for a in ids], dtype=bool)
    out = ScoreColumns(len(ids), INVALID_ID)
    positions = np.flatnonzero(valid)
    read = _ChunkReader(store, as_of)
    try:
        with _progress() as bar:
            task = bar.add_task("scoring accounts", total=len(positions))
            for done, start in enumerate(range(0, len(positions), chunk_rows), start=1):
                where = positions[start : start + chunk_rows]
                scored = score_vectors(model, read([ids[i] for i in where]))
                out.put(where, scored, scored["status"].to_numpy())
                bar.advance(task, len(where))
                _log_progress(done, start + len(where), len(positions), chunk_rows)
    finally:
        read.close()
    return out.frame(ids)


class _ChunkReader:
    """A chunk of accounts' vectors: column by column where ingestion.online_batch can read
    the store (the same values, several times faster), through get_online_features where not."""

    def __init__(self, store: object, as_of: datetime | None) -> None:
        from feature_repo.feature_services import COLLECTION_RISK_V1  # noqa: PLC0415
        from ingestion.online_batch import batch_reader  # noqa: PLC0415

        self._store, self._as_of = store, as_of
        reader = batch_reader(store, COLLECTION_RISK_V1)  # type: ignore[arg-type]
        if isinstance(reader, str):
            log.info("reading the online store through Feast: %s", reader)
            self._reader = None
        else:
            self._reader = reader

    def __call__(self, ids: list[str]) -> pd.DataFrame:
        from ingestion.feast_store import online_feature_vectors  # noqa: PLC0415

        when = self._as_of or datetime.now(UTC)
        if self._reader is not None:
            return self._reader.frame(ids, when)
        return online_feature_vectors(self._store, ids, scoring_time=when)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


def _progress() -> Progress:
    console = Console(stderr=True)
    return Progress(console=console, transient=True, disable=not console.is_terminal)


def _log_progress(chunk: int, scored: int, total: int, chunk_rows: int) -> None:
    chunks = -(-total // chunk_rows)
    if chunks > 1 and (chunk == chunks or chunk % max(1, chunks // 10) == 0):
        log.info("scored %s of %s accounts", f"{scored:,}", f"{total:,}")


def score_uci_file(csv: Path, model: ScoringModel, work_dir: Path | None = None) -> pd.DataFrame:
    """Score every client of a UCI-format file as of its snapshot; its label column, if
    any, is not read. Without work_dir the scratch files are removed afterwards."""
    from ingestion.features import FeatureBuildError, build_features  # noqa: PLC0415
    from ingestion.validate import ValidationFailed, validate_raw  # noqa: PLC0415

    with _scratch(work_dir) as work:
        ingest_uci(csv, work / "raw", work / "quarantine_input", with_label=False)
        try:
            validate_raw(work / "raw", work / "validated", work / "quarantine", work / "reports")
            build_features(work / "validated", work / "features")
        except (ValidationFailed, FeatureBuildError) as exc:
            raise BatchInputError(f"{csv}: {exc}") from exc
        return score_vectors(model, snapshot_vectors(work / "features", work / "feast"))


@contextmanager
def _scratch(work_dir: Path | None) -> Iterator[Path]:
    if work_dir is not None:
        yield Path(work_dir)
        return
    with tempfile.TemporaryDirectory(prefix="collectwise-batch-") as tmp:
        yield Path(tmp)


def snapshot_vectors(features_dir: Path, repo: Path) -> pd.DataFrame:
    """The vectors of the newest snapshot's accounts as of that snapshot, in the snapshot
    file's order, from a Feast repo applied in `repo` (part of the scratch folder)."""
    from ingestion import retrieval  # noqa: PLC0415
    from ingestion.feast_store import features_as_of  # noqa: PLC0415

    as_of = features_as_of(features_dir)
    profile = pd.read_parquet(features_dir / "account_profile.parquet")
    accounts = profile.loc[profile["event_timestamp"] == as_of]
    entities = retrieval.entity_rows(accounts["account_id"], accounts["customer_id"], as_of)
    log.info("scoring %d accounts as of %s", len(entities), as_of.isoformat())
    with retrieval.scratch_repo(features_dir, "collectwise_batch", repo=repo) as scratch:
        return retrieval.point_in_time_vectors(scratch.store, entities)


# ---------------------------------------------------------------------------- the files


def read_account_ids(path: Path) -> list[str]:
    """Account ids from a CSV or parquet file with an `account_id` column, one per row in
    file order, stripped; a blank cell is "" (so positions stay the file's rows)."""
    kind = "parquet" if _is_parquet(path) else "CSV"
    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError, pa.ArrowException) as exc:
        raise BatchInputError(f"{path}: cannot read as {kind}: {exc}") from exc
    if "account_id" not in frame.columns:
        raise BatchInputError(
            f"{path}: expected a UCI-format file (with {UCI_MARKER}) or a column 'account_id'; "
            f"found columns {list(frame.columns)[:8]}"
        )
    ids = frame["account_id"].astype("string").fillna("").str.strip()
    return [str(a) for a in ids]


def read_batch_input(path: Path) -> BatchInput:
    """The batch file checked as far as it can be without a model: raises BatchInputError
    or ingestion.uci.UciFormatError, each naming the file and the problem."""
    try:
        uci = is_uci_file(path)
    except UnicodeDecodeError as exc:
        raise BatchInputError(
            f"{path}: not a UTF-8 text (CSV) or parquet file: {exc.reason} at byte {exc.start}"
        ) from exc
    if uci:
        check_format(path, with_label=False)
        return BatchInput(path, "uci")
    ids = read_account_ids(path)
    if not ids:
        raise BatchInputError(f"{path}: has a header but no data rows (no account ids)")
    return BatchInput(path, "ids", tuple(ids))


def is_uci_file(path: Path) -> bool:
    """Whether the file's first two lines name the UCI marker column; UnicodeDecodeError
    for a file that is not UTF-8 text."""
    if _is_parquet(path):
        return False
    with path.open(encoding="utf-8-sig") as handle:
        return any(UCI_MARKER in handle.readline() for _ in range(2))


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() == ".parquet"


def where(path: Path, positions: Sequence[int], at_most: int = 10) -> str:
    """Where rows sit in the input: "lines 3, 5" for a CSV (the header is line 1), "rows 2,
    4" for parquet (counted from 1)."""
    offset, word = (1, "row") if _is_parquet(path) else (2, "line")
    shown = ", ".join(str(p + offset) for p in positions[:at_most])
    more = f" and {len(positions) - at_most} more" if len(positions) > at_most else ""
    return f"{word}{'s' if len(positions) > 1 else ''} {shown}{more}"


def check_output(out: Path, source: Path | None = None) -> str:
    """The output format (".csv", ".parquet", ".json") of `out`, or BatchOutputError.

    The folder must already exist: a missing one is more often a typo than a wish, and a
    silently created tree would hide where the scores went.
    """
    fmt = out.suffix.lower()
    if fmt not in OUTPUT_FORMATS:
        raise BatchOutputError(
            f"{out}: unsupported output format '{out.suffix or '(no extension)'}'; "
            f"use {', '.join(OUTPUT_FORMATS)}"
        )
    if not out.parent.is_dir():
        raise BatchOutputError(f"{out}: the folder {out.parent} does not exist; create it first")
    if out.is_dir():
        raise BatchOutputError(f"{out}: is a folder, not a file")
    if source is not None and out.resolve() == Path(source).resolve():
        raise BatchOutputError(f"{out}: is the input file; the scores would overwrite it")
    return fmt


def write_scores(scores: pd.DataFrame, out: Path) -> None:
    """Write scores in the format out's extension names (check_output's rules)."""
    fmt = check_output(out)
    if fmt == ".parquet":
        scores.to_parquet(out, index=False)
    elif fmt == ".json":
        # One object per account; a missing probability or decision is null.
        scores.to_json(out, orient="records", indent=1)
    else:
        scores.to_csv(out, index=False)
