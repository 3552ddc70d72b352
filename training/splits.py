"""Train / validation / test splits that cannot leak across time or across accounts.

Monthly snapshots of the same account are strongly correlated, so a random row split would
let a model memorise an account in training and meet it again in the test set. Every
splitter here therefore assigns whole accounts to one side, by a hash of the account id
(stable across runs, machines and library versions), and the time-based ones also keep
later snapshots out of training. The single-snapshot UCI data has no time axis, so it gets
a stratified split, still by account.

All functions return row positions (for .iloc / numpy indexing), never index labels.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

log = logging.getLogger(__name__)

Positions = npt.NDArray[np.intp]
Fold = tuple[Positions, Positions]

TIME_COL = "event_timestamp"
GROUP_COL = "account_id"
LABEL_COL = "default_30d"
# Out-of-time needs at least one snapshot each for train, validation and test.
MIN_OUT_OF_TIME_SNAPSHOTS = 3


@dataclass(frozen=True)
class Split:
    train: Positions
    valid: Positions
    test: Positions


def account_buckets(ids: pd.Series, seed: int = 0) -> npt.NDArray[np.float64]:
    """A uniform number in [0, 1) per row, the same for every row of an account."""
    codes, uniques = pd.factorize(ids.astype(str), sort=False)
    per_account = np.array([_unit_hash(f"{seed}:{u}") for u in uniques], dtype=np.float64)
    return per_account[codes]


def _unit_hash(text: str) -> float:
    # blake2b rather than hash(): Python's string hash is salted per process.
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def snapshot_index(frame: pd.DataFrame, time_col: str = TIME_COL) -> npt.NDArray[np.int64]:
    """0 for the earliest snapshot, 1 for the next, ... per row (any orderable time type)."""
    if frame[time_col].isna().any():
        raise ValueError(f"{time_col} has missing values; every row needs a snapshot time")
    ranks = frame[time_col].rank(method="dense").to_numpy(dtype=np.float64)
    return ranks.astype(np.int64) - 1


def out_of_time_split(
    frame: pd.DataFrame,
    time_col: str = TIME_COL,
    group_col: str = GROUP_COL,
    test_snapshots: int = 1,
    valid_snapshots: int = 1,
    seed: int = 0,
    test_share: float = 0.2,
    valid_share: float = 0.2,
) -> Split:
    """Test = the latest snapshot(s), valid = the ones before, train = everything earlier;
    each side uses only its own accounts (test_share / valid_share of them by hash)."""
    snap = snapshot_index(frame, time_col)
    count = int(snap.max()) + 1 if len(snap) else 0
    if count < test_snapshots + valid_snapshots + 1:
        raise ValueError(
            f"{count} snapshots cannot hold {test_snapshots} test, "
            f"{valid_snapshots} validation and at least one training snapshot"
        )
    first_test = count - test_snapshots
    period = np.where(snap >= first_test, 2, np.where(snap >= first_test - valid_snapshots, 1, 0))
    bucket = account_buckets(frame[group_col], seed)
    side = np.where(bucket < test_share, 2, np.where(bucket < test_share + valid_share, 1, 0))
    split = Split(*(np.flatnonzero((period == k) & (side == k)) for k in (0, 1, 2)))
    _log_split("out-of-time", frame, split, group_col)
    return split


def time_series_cv(
    frame: pd.DataFrame,
    n_splits: int = 3,
    time_col: str = TIME_COL,
    group_col: str = GROUP_COL,
    seed: int = 0,
    valid_share: float = 0.2,
) -> list[Fold]:
    """Expanding-window folds: fold k validates on a later block of snapshots and trains on
    every snapshot before it; validation accounts (a different hash slice per fold) never
    appear in that fold's training rows."""
    snap = snapshot_index(frame, time_col)
    count = int(snap.max()) + 1 if len(snap) else 0
    block = count // (n_splits + 1)
    if block < 1:
        raise ValueError(f"{count} snapshots are too few for {n_splits} time-series folds")
    bucket = account_buckets(frame[group_col], seed)
    folds: list[Fold] = []
    for k in range(n_splits):
        start = count - (n_splits - k) * block
        # Rotating the hash slice validates different accounts in each fold.
        held_out = (bucket + k * valid_share) % 1.0 < valid_share
        train = np.flatnonzero((snap < start) & ~held_out)
        valid = np.flatnonzero((snap >= start) & (snap < start + block) & held_out)
        folds.append((train, valid))
        log.info("time-series fold %d: train %d rows, valid %d rows", k, len(train), len(valid))
    return folds


def stratified_split(
    frame: pd.DataFrame,
    label_col: str = LABEL_COL,
    test_size: float = 0.2,
    valid_size: float = 0.2,
    seed: int = 0,
    group_col: str = GROUP_COL,
) -> Split:
    """Stratified by label, by account: shares are of accounts (equal to rows when each
    account has one row, as in the single-snapshot UCI data)."""
    codes, strata = _account_strata(frame, label_col, group_col)
    accounts = np.arange(len(strata))
    rest, test = train_test_split(accounts, test_size=test_size, stratify=strata, random_state=seed)
    train, valid = train_test_split(
        rest,
        test_size=valid_size / (1.0 - test_size),
        stratify=strata[rest],
        random_state=seed,
    )
    split = Split(*(np.flatnonzero(np.isin(codes, part)) for part in (train, valid, test)))
    _log_split("stratified", frame, split, group_col)
    return split


def stratified_cv(
    frame: pd.DataFrame,
    label_col: str = LABEL_COL,
    n_splits: int = 5,
    seed: int = 0,
    group_col: str = GROUP_COL,
) -> list[Fold]:
    """Stratified k-fold over accounts, shuffled with the seed."""
    codes, strata = _account_strata(frame, label_col, group_col)
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    out: list[Fold] = []
    for k, (train, valid) in enumerate(folds.split(np.zeros(len(strata)), strata)):
        out.append((np.flatnonzero(np.isin(codes, train)), np.flatnonzero(np.isin(codes, valid))))
        log.info("stratified fold %d: train %d rows, valid %d rows", k, *map(len, out[-1]))
    return out


def _account_strata(
    frame: pd.DataFrame, label_col: str, group_col: str
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64]]:
    """Per-row account codes and, per account, its stratum: whether it ever defaulted."""
    codes, _ = pd.factorize(frame[group_col])
    labels = frame[label_col].to_numpy(dtype=np.int64)
    strata = np.zeros(codes.max() + 1 if len(codes) else 0, dtype=np.int64)
    np.maximum.at(strata, codes, labels)
    return codes, strata


@dataclass(frozen=True)
class Splitter:
    """The splitting scheme a dataset calls for, with its parameters bound."""

    kind: Literal["out_of_time", "stratified"]
    label_col: str = LABEL_COL
    time_col: str = TIME_COL
    group_col: str = GROUP_COL
    seed: int = 0
    test_snapshots: int = 1
    valid_snapshots: int = 1

    def split(self, frame: pd.DataFrame) -> Split:
        if self.kind == "out_of_time":
            return out_of_time_split(
                frame,
                self.time_col,
                self.group_col,
                test_snapshots=self.test_snapshots,
                valid_snapshots=self.valid_snapshots,
                seed=self.seed,
            )
        return stratified_split(frame, self.label_col, seed=self.seed, group_col=self.group_col)

    def cv(self, frame: pd.DataFrame, n_splits: int | None = None) -> list[Fold]:
        if self.kind == "out_of_time":
            return time_series_cv(
                frame, n_splits or 3, self.time_col, self.group_col, seed=self.seed
            )
        return stratified_cv(
            frame, self.label_col, n_splits or 5, seed=self.seed, group_col=self.group_col
        )


def choose_splitter(
    frame: pd.DataFrame,
    label_col: str = LABEL_COL,
    time_col: str = TIME_COL,
    group_col: str = GROUP_COL,
    seed: int = 0,
) -> Splitter:
    """Out-of-time when there are enough snapshots for train, validation and test;
    stratified otherwise (the single-snapshot UCI data)."""
    snapshots = frame[time_col].nunique()
    kind: Literal["out_of_time", "stratified"] = (
        "out_of_time" if snapshots >= MIN_OUT_OF_TIME_SNAPSHOTS else "stratified"
    )
    log.info("%d distinct snapshots: %s split", snapshots, kind.replace("_", "-"))
    return Splitter(kind, label_col, time_col, group_col, seed)


def _log_split(name: str, frame: pd.DataFrame, split: Split, group_col: str) -> None:
    ids = frame[group_col].to_numpy()
    log.info(
        "%s split of %d rows: train %d (%d accounts), valid %d (%d), test %d (%d); %d unused",
        name,
        len(frame),
        *(
            x
            for part in (split.train, split.valid, split.test)
            for x in (len(part), len(np.unique(ids[part])))
        ),
        len(frame) - len(split.train) - len(split.valid) - len(split.test),
    )
