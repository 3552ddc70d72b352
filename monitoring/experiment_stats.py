"""The statistics of a champion / challenger experiment: pure functions of arrays, no I/O.

ROC AUC with a DeLong confidence interval (the fast algorithm of Sun & Xu, 2014, "Fast
implementation of DeLong's algorithm for comparing the areas under correlated receiver
operating characteristic curves"), the difference of two AUCs (paired when both models
scored the same accounts, which keeps their correlation; unpaired between the two arms of a
split, whose accounts differ) and the outcomes still needed to detect a given difference.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

_NORMAL = NormalDist()


class NotEstimableError(ValueError):
    """An AUC needs at least one default and one payer among the outcomes."""


@dataclass(frozen=True)
class AucEstimate:
    auc: float
    se: float
    low: float
    high: float
    n: int
    positives: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AucDifference:
    """challenger AUC - champion AUC, its standard error, interval and two-sided p-value."""

    difference: float
    se: float
    low: float
    high: float
    p_value: float
    paired: bool
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _z(alpha: float) -> float:
    return _NORMAL.inv_cdf(1 - alpha / 2)


def _midranks(values: np.ndarray) -> np.ndarray:
    """Ranks along each row, ties sharing their mean rank (so a tie counts one half)."""
    return pd.DataFrame(values).rank(axis=1, method="average").to_numpy(dtype=float)


def delong(
    y: np.ndarray, scores: np.ndarray, clusters: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of k score rows (k x n) against labels y (n) and their k x k covariance.

    Fast DeLong: every AUC is a mean of placement values; the placements come from three
    rankings (positives alone, negatives alone, both) instead of the O(m * n) pair count.
    With `clusters` (one id per row, e.g. the account scored month after month) the
    covariance is Obuchowski's (1997) for clustered data: rows of one account are not
    independent, and treating them so would make every interval too narrow.
    """
    y = np.asarray(y).astype(bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        raise NotEstimableError(f"an AUC needs both outcomes; got {m} defaults, {n} payers")
    pos, neg = scores[:, y], scores[:, ~y]
    rank_pos, rank_neg = _midranks(pos), _midranks(neg)
    rank_all = _midranks(np.hstack([pos, neg]))
    aucs = (rank_all[:, :m].sum(axis=1) / m - (m + 1) / 2) / n
    # Placement of each default among payers (v10) and of each payer among defaults (v01).
    v10 = (rank_all[:, :m] - rank_pos) / n
    v01 = 1.0 - (rank_all[:, m:] - rank_neg) / m
    if clusters is not None:
        ids = np.asarray(clusters)
        return aucs, _clustered_cov(aucs, v10, v01, ids[y], ids[~y])
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(aucs), len(aucs)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(aucs), len(aucs)))
    return aucs, s10 / m + s01 / n


def _cluster_sums(values: np.ndarray, ids: np.ndarray, every: np.ndarray) -> np.ndarray:
    """Per cluster of `every` (in that order): the sum of values (k x rows) -> clusters x k."""
    sums = pd.DataFrame(values.T).groupby(ids).sum()
    return sums.reindex(every, fill_value=0.0).to_numpy(dtype=float)


def _clustered_cov(
    aucs: np.ndarray, v10: np.ndarray, v01: np.ndarray, pos_ids: np.ndarray, neg_ids: np.ndarray
) -> np.ndarray:
    """Obuchowski's covariance: cluster sums of placements, centred on m_i * AUC and n_i * AUC."""
    m, n = v10.shape[1], v01.shape[1]
    every = np.unique(np.concatenate([pos_ids, neg_ids]))
    count = len(every)
    if count < 2:
        return np.zeros((len(aucs), len(aucs)))
    m_i = _cluster_sums(np.ones((1, m)), pos_ids, every)
    n_i = _cluster_sums(np.ones((1, n)), neg_ids, every)
    d10 = _cluster_sums(v10, pos_ids, every) - m_i * aucs
    d01 = _cluster_sums(v01, neg_ids, every) - n_i * aucs
    scale = count / (count - 1)
    s10, s01 = scale * d10.T @ d10 / m, scale * d01.T @ d01 / n
    s11 = scale * d10.T @ d01
    return np.asarray(s10 / m + s01 / n + (s11 + s11.T) / (m * n))


def auc_interval(
    y: np.ndarray, p: np.ndarray, alpha: float = 0.05, clusters: np.ndarray | None = None
) -> AucEstimate:
    """AUC with its DeLong (1 - alpha) interval, clipped to [0, 1]."""
    aucs, cov = delong(y, np.asarray(p, dtype=float)[None, :], clusters)
    auc, se = float(aucs[0]), math.sqrt(max(float(cov[0, 0]), 0.0))
    half = _z(alpha) * se
    positives = int(np.asarray(y).astype(bool).sum())
    return AucEstimate(auc, se, max(0.0, auc - half), min(1.0, auc + half), len(y), positives)


def _difference(diff: float, var: float, alpha: float, paired: bool, n: int) -> AucDifference:
    se = math.sqrt(max(var, 0.0))
    half = _z(alpha) * se
    # With no spread at all (identical scores) nothing is different: p = 1, not 0/0.
    p_value = 2 * (1 - _NORMAL.cdf(abs(diff) / se)) if se > 0 else (1.0 if diff == 0 else 0.0)
    return AucDifference(diff, se, diff - half, diff + half, p_value, paired, n)


def paired_difference(
    y: np.ndarray,
    champion: np.ndarray,
    challenger: np.ndarray,
    alpha: float = 0.05,
    clusters: np.ndarray | None = None,
) -> AucDifference:
    """Challenger minus champion AUC on the same accounts (DeLong covariance of the two)."""
    aucs, cov = delong(y, np.vstack([champion, challenger]), clusters)
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    return _difference(float(aucs[1] - aucs[0]), var, alpha, True, len(y))


def unpaired_difference(
    champion: AucEstimate, challenger: AucEstimate, alpha: float = 0.05
) -> AucDifference:
    """Challenger minus champion AUC on disjoint accounts: the variances add."""
    var = champion.se**2 + challenger.se**2
    n = champion.n + challenger.n
    return _difference(challenger.auc - champion.auc, var, alpha, False, n)


def outcomes_needed(
    difference: AucDifference, min_difference: float, alpha: float, power: float
) -> dict[str, Any]:
    """Matured outcomes needed to detect `min_difference` with `power` at level `alpha`.

    The standard error of an AUC difference shrinks as 1 / sqrt(n) (for the same split,
    default rate and outcomes per account), so the observed one scales to the n where
    z(1 - alpha/2) + z(power) standard errors equal the difference sought. `more` is what
    is still to mature.
    """
    target_se = min_difference / (_z(alpha) + _NORMAL.inv_cdf(power))
    if difference.se <= 0:
        # Both models ranked every account alike: no sample size would separate them.
        return {"required": None, "more": None, "target_se": target_se}
    required = math.ceil(difference.n * (difference.se / target_se) ** 2)
    return {"required": required, "more": max(0, required - difference.n), "target_se": target_se}
