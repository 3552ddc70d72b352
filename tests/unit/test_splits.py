"""Splits: time order, no account on both sides, determinism, stratified shares."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.splits import (
    Split,
    account_buckets,
    choose_splitter,
    out_of_time_split,
    stratified_cv,
    stratified_split,
    time_series_cv,
)

pytestmark = pytest.mark.unit

TIME, ACCOUNT, LABEL = "event_timestamp", "account_id", "default_30d"


def panel(accounts: int = 300, months: int = 8, seed: int = 0) -> pd.DataFrame:
    """Monthly snapshots of accounts that enter and leave at different times, shuffled."""
    rng = np.random.default_rng(seed)
    starts = pd.date_range("2025-01-01", periods=months, freq="MS", tz="UTC")
    rows = []
    for a in range(accounts):
        first = int(rng.integers(0, months - 1))
        last = int(rng.integers(first + 1, months + 1))
        rows += [(f"A{a:08d}", starts[m]) for m in range(first, last)]
    frame = pd.DataFrame(rows, columns=[ACCOUNT, TIME])
    frame[LABEL] = (rng.random(len(frame)) < 0.25).astype(np.int64)
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def single_snapshot(rows: int = 1000, rate: float = 0.22, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            ACCOUNT: [f"U{i:06d}" for i in range(rows)],
            TIME: pd.Timestamp("2005-10-01", tz="UTC"),
            LABEL: (rng.random(rows) < rate).astype(np.int64),
        }
    )


def accounts_of(frame: pd.DataFrame, positions: np.ndarray) -> set[str]:
    return set(frame[ACCOUNT].to_numpy()[positions])


def assert_disjoint_accounts(frame: pd.DataFrame, *parts: np.ndarray) -> None:
    sets = [accounts_of(frame, p) for p in parts]
    for i, a in enumerate(sets):
        for b in sets[i + 1 :]:
            assert not a & b, f"accounts on both sides: {sorted(a & b)[:3]}"


def assert_same(a: Split, b: Split) -> None:
    for name in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_out_of_time_orders_time_and_separates_accounts() -> None:
    frame = panel()
    split = out_of_time_split(frame)
    times = frame[TIME]
    assert len(split.train) and len(split.valid) and len(split.test)
    assert times.iloc[split.train].max() < times.iloc[split.valid].min()
    assert times.iloc[split.valid].max() < times.iloc[split.test].min()
    # test is exactly the latest snapshot, valid the one before
    snapshots = np.sort(times.unique())
    assert set(times.iloc[split.test]) == {snapshots[-1]}
    assert set(times.iloc[split.valid]) == {snapshots[-2]}
    assert_disjoint_accounts(frame, split.train, split.valid, split.test)


def test_out_of_time_account_shares_and_more_snapshots() -> None:
    frame = panel(accounts=2000)
    split = out_of_time_split(frame, test_snapshots=2, valid_snapshots=2)
    times = frame[TIME]
    assert times.iloc[split.test].nunique() == 2
    assert times.iloc[split.valid].nunique() == 2
    assert times.iloc[split.valid].max() < times.iloc[split.test].min()
    in_test_period = frame[times >= times.iloc[split.test].min()]
    test_accounts = accounts_of(frame, split.test)
    # about 20% of the accounts seen in the test period are test accounts, with all their rows
    assert 0.15 < len(test_accounts) / in_test_period[ACCOUNT].nunique() < 0.25
    assert len(split.test) == in_test_period[ACCOUNT].isin(test_accounts).sum()


def test_out_of_time_is_deterministic_and_order_free() -> None:
    frame = panel()
    assert_same(out_of_time_split(frame), out_of_time_split(frame))
    shuffled = frame.sample(frac=1.0, random_state=5).reset_index(drop=True)
    again = out_of_time_split(shuffled)
    key = [ACCOUNT, TIME]
    for name in ("train", "valid", "test"):
        original = frame.iloc[getattr(out_of_time_split(frame), name)][key]
        moved = shuffled.iloc[getattr(again, name)][key]
        pd.testing.assert_frame_equal(
            original.sort_values(key).reset_index(drop=True),
            moved.sort_values(key).reset_index(drop=True),
        )
    other_seed = out_of_time_split(frame, seed=1)
    assert not np.array_equal(other_seed.test, out_of_time_split(frame).test)


def test_account_buckets_are_stable_across_processes() -> None:
    # Pinned: a change of hash would silently move accounts between train and test.
    buckets = account_buckets(pd.Series(["A00000001", "A00000002", "A00000001"]))
    assert buckets[0] == buckets[2]
    assert buckets[0] == pytest.approx(0.3259727, abs=1e-6)


def test_out_of_time_needs_three_snapshots() -> None:
    frame = panel(months=2)
    with pytest.raises(ValueError, match="snapshots"):
        out_of_time_split(frame)


def test_time_series_cv_expands_in_time_without_shared_accounts() -> None:
    frame = panel(accounts=600, months=10)
    folds = time_series_cv(frame, n_splits=3)
    assert len(folds) == 3
    times = frame[TIME]
    train_sizes = []
    for train, valid in folds:
        assert len(train) and len(valid)
        assert times.iloc[train].max() < times.iloc[valid].min()
        assert_disjoint_accounts(frame, train, valid)
        train_sizes.append(len(train))
    assert train_sizes == sorted(train_sizes)
    # each fold validates on later snapshots than the one before
    starts = [times.iloc[valid].min() for _, valid in folds]
    assert starts == sorted(starts) and len(set(starts)) == 3
    again = time_series_cv(frame, n_splits=3)
    for (a, b), (c, d) in zip(folds, again, strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


def test_stratified_split_shares_and_disjoint() -> None:
    frame = single_snapshot()
    split = stratified_split(frame, LABEL, test_size=0.2, valid_size=0.2, seed=3)
    sizes = [len(split.train), len(split.valid), len(split.test)]
    assert sum(sizes) == len(frame)
    assert sizes == pytest.approx([600, 200, 200], abs=2)
    rate = frame[LABEL].mean()
    for part in (split.train, split.valid, split.test):
        assert frame[LABEL].iloc[part].mean() == pytest.approx(rate, abs=0.01)
    assert_disjoint_accounts(frame, split.train, split.valid, split.test)
    assert_same(split, stratified_split(frame, LABEL, seed=3))


def test_stratified_split_keeps_repeated_accounts_together() -> None:
    frame = panel(accounts=400, months=2)
    split = stratified_split(frame, LABEL, seed=0)
    assert_disjoint_accounts(frame, split.train, split.valid, split.test)
    assert len(split.train) + len(split.valid) + len(split.test) == len(frame)


def test_stratified_cv_validates_each_row_once() -> None:
    frame = single_snapshot()
    folds = stratified_cv(frame, LABEL, n_splits=5, seed=0)
    assert len(folds) == 5
    seen = np.concatenate([valid for _, valid in folds])
    assert sorted(seen) == list(range(len(frame)))
    rate = frame[LABEL].mean()
    for train, valid in folds:
        assert_disjoint_accounts(frame, train, valid)
        assert frame[LABEL].iloc[valid].mean() == pytest.approx(rate, abs=0.01)


def test_choose_splitter_by_snapshot_count() -> None:
    many, one = panel(), single_snapshot()
    assert choose_splitter(many).kind == "out_of_time"
    assert choose_splitter(one).kind == "stratified"
    assert_same(choose_splitter(many).split(many), out_of_time_split(many))
    assert len(choose_splitter(many).cv(many)) == 3
    assert len(choose_splitter(one).cv(one)) == 5
