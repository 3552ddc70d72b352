"""The pure core of a score: online rows in, answers and log events out.

No I/O here: the routes read features (serving.online), take the current ModelSet and hand
both to `score_rows`; what comes back is returned to the caller and given to the recorder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from serving.model_set import ModelSet, ServedModel
from serving.online import OnlineRow
from training.model_matrix import column_sources, records_matrix
from training.reason_codes import reason_for

# Contributions are answered to this many decimals; order and sign are judged on them.
REASON_DECIMALS = 4


@dataclass(frozen=True)
class Reason:
    code: str
    feature: str
    value: Any
    contribution: float
    sentence: str


@dataclass
class Scored:
    row: OnlineRow
    served: ServedModel
    probability: float
    band: str
    decision: bool
    vector: list[float]
    reasons: list[Reason] = field(default_factory=list)
    challenger_version: int | None = None
    challenger_probability: float | None = None
    degraded: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ScoringOptions:
    mode: str = "shadow"
    share: float = 0.1
    reasons: int = 4


def in_challenger_share(account_id: str, share: float) -> bool:
    """Stable assignment: the same account always lands on the same side of the split."""
    bucket = int.from_bytes(hashlib.sha256(account_id.encode()).digest()[:8], "big")
    return bucket / 2**64 < share


ChallengerFailed = Callable[[ServedModel, Exception], None]


def score_rows(
    rows: Sequence[OnlineRow],
    models: ModelSet,
    options: ScoringOptions,
    challenger_failed: ChallengerFailed | None = None,
) -> list[Scored]:
    """Score known rows (row.known) with the set's models; order is kept.

    A champion that raises fails the call; a challenger that raises never does: its rows are
    answered by the champion and `challenger_failed` hears of it.
    """
    champion = models.require_champion()
    if not rows:
        return []
    x = records_matrix([r.features for r in rows])
    vectors = x.to_numpy(dtype=np.float64).tolist()
    p = champion.model.predict_proba(x)
    other = models.challenger if options.mode != "off" else None
    p_other = _challenger_scores(other, x, challenger_failed)
    served = [_assigned(r, models, options) if p_other is not None else champion for r in rows]
    out = []
    for i, row in enumerate(rows):
        takes_challenger = served[i] is not champion and p_other is not None
        prob = float(p_other[i] if takes_challenger and p_other is not None else p[i])
        model = served[i].model
        scored = Scored(
            row=row,
            served=served[i],
            probability=prob,
            band=model.band(prob),
            decision=model.decide(prob),
            vector=vectors[i],
            challenger_version=other.version if p_other is not None and other else None,
            challenger_probability=float(p_other[i]) if p_other is not None else None,
            degraded=[f"stale features: {v}" for v in row.stale_views],
        )
        out.append(scored)
    if options.reasons:
        _add_reasons(out, x, options)
    return out


def _challenger_scores(
    other: ServedModel | None, x: pd.DataFrame, failed: ChallengerFailed | None
) -> np.ndarray | None:
    if other is None:
        return None
    try:
        return np.asarray(other.model.predict_proba(x))
    except Exception as exc:  # a challenger is on trial: its failure is evidence, not an outage
        if failed is not None:
            failed(other, exc)
        return None


def _assigned(row: OnlineRow, models: ModelSet, options: ScoringOptions) -> ServedModel:
    champion = models.require_champion()
    split = options.mode == "split" and models.challenger is not None
    if split and models.challenger and in_challenger_share(row.account_id, options.share):
        return models.challenger
    return champion


def _add_reasons(scored: list[Scored], x: pd.DataFrame, options: ScoringOptions) -> None:
    for served in {id(s.served): s.served for s in scored}.values():
        mine = [i for i, s in enumerate(scored) if s.served is served]
        contributions = served.contributions(x.iloc[mine])
        if contributions is None:
            continue
        names, to_source = _aggregation(tuple(contributions.columns), served.model.feature_service)
        per_feature = contributions.to_numpy() @ to_source
        for row_pos, i in enumerate(mine):
            scored[i].reasons = _top(names, per_feature[row_pos], scored[i].row, options)


@lru_cache(maxsize=16)
def _aggregation(columns: tuple[str, ...], service: str) -> tuple[list[str], np.ndarray]:
    """A 0/1 matrix summing model columns into the features they encode.

    Array and one-hot columns add up to the feature they came from: a reason is a feature
    the caller knows (payment_history), not an encoding detail (payment_history_3).
    """
    sources = column_sources(service)
    names = list(dict.fromkeys(sources[c] for c in columns))
    where = {n: k for k, n in enumerate(names)}
    matrix = np.zeros((len(columns), len(names)))
    for row, column in enumerate(columns):
        matrix[row, where[sources[column]]] = 1.0
    return names, matrix


def _top(
    names: list[str], values: np.ndarray, row: OnlineRow, opts: ScoringOptions
) -> list[Reason]:
    """At most `opts.reasons` features that raised the risk, in a fixed order.

    Only positive contributions (after rounding to what the caller sees): a reason is why
    the risk is high, never something that lowered it. Ordered by contribution, largest
    first, ties by code, so equal answers read the same on every call and every worker.
    """
    shown = np.round(values.astype(np.float64), REASON_DECIMALS)
    raised = [k for k in range(len(names)) if shown[k] > 0]
    entries = {k: reason_for(names[k]) for k in raised}
    raised.sort(key=lambda k: (-shown[k], entries[k].code))
    return [
        Reason(
            code=entries[k].code,
            feature=names[k],
            value=row.features.get(names[k]),
            contribution=float(shown[k]),
            sentence=entries[k].sentence,
        )
        for k in raised[: opts.reasons]
    ]
