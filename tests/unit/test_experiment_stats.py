"""The experiment statistics against their definitions: the fast DeLong against the pairwise
DeLong (Mann-Whitney kernels), AUC against scikit-learn, and the sample-size arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from monitoring import experiment_stats as stats

pytestmark = pytest.mark.unit


def _pairwise_delong(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong (1988) by its definition: the O(m * n) kernel matrix of every pair."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    kernel = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    v10, v01 = kernel.mean(axis=2), kernel.mean(axis=1)
    return kernel.mean(axis=(1, 2)), np.cov(v10) / m + np.cov(v01) / n


def _data(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    # Rounded: ties between and within classes, which the midranks must count as halves.
    a = np.round(y + rng.normal(0, 1.0, n), 1)
    b = np.round(0.5 * a + y + rng.normal(0, 1.2, n), 1)
    return y, a, b


def test_fast_delong_equals_the_pairwise_definition() -> None:
    y, a, b = _data(1)
    aucs, cov = stats.delong(y, np.vstack([a, b]))
    want_aucs, want_cov = _pairwise_delong(y, np.vstack([a, b]))
    np.testing.assert_allclose(aucs, want_aucs, rtol=1e-12)
    np.testing.assert_allclose(cov, want_cov, rtol=1e-9)
    assert aucs[0] == pytest.approx(roc_auc_score(y, a))


def test_auc_interval_holds_the_auc_and_narrows_with_more_outcomes() -> None:
    y, a, _ = _data(2, 200)
    big_y, big_a, _ = _data(2, 5000)
    small, big = stats.auc_interval(y, a), stats.auc_interval(big_y, big_a)
    assert small.low < small.auc < small.high and big.low < big.auc < big.high
    assert big.high - big.low < (small.high - small.low) / 3
    assert small.n == 200 and small.positives == int(y.sum())


def test_paired_difference_of_a_model_with_itself_is_nothing() -> None:
    y, a, _ = _data(3)
    same = stats.paired_difference(y, a, a.copy())
    assert same.difference == 0 and same.se == 0 and same.p_value == 1.0 and same.paired
    needed = stats.outcomes_needed(same, 0.02, 0.05, 0.8)
    assert needed["required"] is None  # identical rankings: no sample separates them


def test_paired_difference_is_challenger_minus_champion_with_its_variance() -> None:
    y, a, b = _data(4)
    aucs, cov = _pairwise_delong(y, np.vstack([a, b]))
    diff = stats.paired_difference(y, a, b)
    assert diff.difference == pytest.approx(aucs[1] - aucs[0])
    assert diff.se**2 == pytest.approx(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert diff.low < diff.difference < diff.high


def test_unpaired_difference_adds_the_variances() -> None:
    y, a, b = _data(5)
    first, second = stats.auc_interval(y[:150], a[:150]), stats.auc_interval(y[150:], b[150:])
    diff = stats.unpaired_difference(first, second)
    assert diff.difference == pytest.approx(second.auc - first.auc)
    assert diff.se**2 == pytest.approx(first.se**2 + second.se**2)
    assert not diff.paired and diff.n == 300


def test_outcomes_needed_scale_with_the_square_of_the_standard_error() -> None:
    diff = stats.AucDifference(0.01, 0.02, -0.03, 0.05, 0.6, True, 1000)
    needed = stats.outcomes_needed(diff, 0.02, 0.05, 0.8)
    # (1.95996 + 0.84162)^2 * (0.02 / 0.02)^2 * 1000 outcomes = 7849.
    assert needed["required"] == 7849 and needed["more"] == 6849
    precise = stats.AucDifference(0.01, 0.001, 0.008, 0.012, 0.0, True, 1000)
    assert stats.outcomes_needed(precise, 0.02, 0.05, 0.8)["more"] == 0


def test_an_auc_needs_both_outcomes() -> None:
    with pytest.raises(stats.NotEstimableError, match="0 defaults"):
        stats.auc_interval(np.zeros(10), np.linspace(0, 1, 10))


def test_clustered_variance_matches_delong_for_single_rows_and_counts_repeats_once() -> None:
    y, a, b = _data(6, 400)
    scores = np.vstack([a, b])
    _, plain = stats.delong(y, scores)
    _, single = stats.delong(y, scores, clusters=np.arange(400))
    # Each row its own cluster: Obuchowski's estimator is DeLong's up to n / (n - 1) factors.
    np.testing.assert_allclose(single, plain, rtol=0.01)
    # Every account scored three times with the same result: three times the rows, but no
    # more information. Naive DeLong shrinks the variance about threefold; clustered does not.
    y3, scores3, ids3 = np.tile(y, 3), np.tile(scores, 3), np.tile(np.arange(400), 3)
    _, naive = stats.delong(y3, scores3)
    _, clustered = stats.delong(y3, scores3, clusters=ids3)
    assert naive[0, 0] < plain[0, 0] / 2.5
    np.testing.assert_allclose(clustered, plain, rtol=0.01)


def test_the_verdict_needs_an_interval_with_spread() -> None:
    from monitoring.experiment import verdict

    def diff(low: float, high: float, se: float) -> dict[str, float]:
        return {"difference": (low + high) / 2, "low": low, "high": high, "se": se}

    assert verdict(diff(0.01, 0.05, 0.01), 0.05)["result"] == "better"
    assert verdict(diff(-0.05, -0.01, 0.01), 0.05)["result"] == "worse"
    assert verdict(diff(-0.01, 0.05, 0.015), 0.05)["result"] == "undecided"
    assert verdict(diff(0.03, 0.03, 0.0), 0.05)["result"] == "undecided"
    assert verdict(None, 0.05)["result"] == "undecided"
