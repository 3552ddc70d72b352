"""The smallest change in actionable features that flips a model's decision or lowers its band.

A greedy coordinate search in quantile space, written out here so it can be read and
tested (dice-ml would add a dependency and a random search whose answers vary per run):

- each actionable feature may take the values of a quantile grid of the model's training
  reference (5%, 10%, ... 95%), so every proposal is a value real accounts have;
- the cost of a change is how far it moves the feature through the reference population,
  |ECDF(new) - ECDF(old)|, summed over changed features: moving a payment amount from the
  median to the 60th percentile costs the same as moving responsiveness by that much;
- each round scores every single-feature move from the current point in one batch and takes
  the cheapest move that flips the decision, else the move with the best improvement per
  unit of cost; at most `max_changes` features change;
- once flipped, each change is pulled back as close to the original value as the flip
  allows, and dropped when the flip holds without it (the "smallest" part).

Other features are held fixed, so the answer reads "had these values been different, the
decision would have been": it is the model's view, not a promise about the account.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

Predict = Callable[[pd.DataFrame], np.ndarray]

# Features a collections team (or the customer) can change: payments and their rhythm,
# promises and contact. Never age, ids, income or the debt's size and age.
ACTIONABLE = (
    "account_payment_velocity__payment_history_0",
    "account_payment_velocity__payment_velocity",
    "account_payment_velocity__payment_consistency_score",
    "account_payment_velocity__payment_to_balance_ratio",
    "account_payment_velocity__days_since_last_payment",
    "account_contact_behavior__contact_responsiveness",
    "account_contact_behavior__promise_to_pay_reliability",
    "account_contact_behavior__broken_promises_90d",
)
LEVELS = tuple(np.round(np.linspace(0.05, 0.95, 19), 2))


@dataclass(frozen=True)
class Change:
    feature: str
    before: float
    after: float
    rank_before: float
    rank_after: float

    @property
    def cost(self) -> float:
        return abs(self.rank_after - self.rank_before)


@dataclass(frozen=True)
class Counterfactual:
    found: bool
    threshold: float
    probability_before: float
    probability_after: float
    decision_before: bool
    changes: list[Change] = field(default_factory=list)
    message: str = ""

    @property
    def cost(self) -> float:
        return float(sum(c.cost for c in self.changes))


@dataclass(frozen=True)
class Space:
    """Per feature: the sorted reference values (for ranks) and the candidate grid."""

    sorted_values: Mapping[str, np.ndarray]
    grid: Mapping[str, np.ndarray]

    @property
    def features(self) -> list[str]:
        return list(self.grid)


def build_space(
    reference: pd.DataFrame, features: Sequence[str], levels: Sequence[float] = LEVELS
) -> Space:
    """Quantile grids of the features present in `reference` with at least two values."""
    sorted_values, grid = {}, {}
    for name in features:
        if name not in reference.columns:
            continue
        values = np.sort(pd.to_numeric(reference[name], errors="coerce").dropna().to_numpy())
        candidates = np.unique(np.quantile(values, levels)) if len(values) else values
        if len(candidates) >= 2:
            sorted_values[name], grid[name] = values, candidates
    return Space(sorted_values, grid)


def rank(value: float, sorted_values: np.ndarray) -> float:
    """Mid-rank ECDF of `value` in the reference, in [0, 1]; a missing value counts as 0.5."""
    if value is None or not np.isfinite(value) or len(sorted_values) == 0:
        return 0.5
    below = np.searchsorted(sorted_values, value, side="left")
    upto = np.searchsorted(sorted_values, value, side="right")
    return float((below + upto) / 2 / len(sorted_values))


def _cost(point: Mapping[str, float], origin: pd.Series, space: Space) -> float:
    return sum(
        abs(rank(v, space.sorted_values[f]) - rank(float(origin[f]), space.sorted_values[f]))
        for f, v in point.items()
    )


def _gap(p: np.ndarray, threshold: float, flagged: bool) -> np.ndarray:
    """How far from flipping (<= 0 is flipped for a flagged row, < 0 for the other side)."""
    return p - threshold if flagged else threshold - p


def _flipped(p: np.ndarray, threshold: float, flagged: bool) -> np.ndarray:
    return (p < threshold) if flagged else (p >= threshold)


def _frame(origin: pd.Series, points: Sequence[Mapping[str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame([origin.to_numpy()] * len(points), columns=origin.index, dtype=float)
    for i, point in enumerate(points):
        for feature, value in point.items():
            frame.iat[i, frame.columns.get_loc(feature)] = value  # type: ignore[index]
    return frame


def _moves(
    current: dict[str, float], origin: pd.Series, space: Space, max_changes: int
) -> list[dict[str, float]]:
    moves = []
    for feature in space.features:
        if feature not in current and len(current) >= max_changes:
            continue
        now = current.get(feature, float(origin[feature]))
        for value in space.grid[feature]:
            if value != now:
                moves.append({**current, feature: float(value)})
    return moves


def _step(
    moves: list[dict[str, float]],
    p: np.ndarray,
    gap_now: float,
    cost_now: float,
    costs: np.ndarray,
    goal: tuple[float, bool],
) -> tuple[dict[str, float] | None, bool]:
    threshold, flagged = goal
    flips = _flipped(p, threshold, flagged)
    if flips.any():
        best = int(np.argmin(np.where(flips, costs, np.inf)))
        return moves[best], True
    gain = gap_now - _gap(p, threshold, flagged)
    value = np.where(gain > 1e-12, gain / np.maximum(costs - cost_now, 1e-3), -np.inf)
    if not np.isfinite(value).any():
        return None, False
    return moves[int(np.argmax(value))], False


def _shrink(
    point: dict[str, float],
    origin: pd.Series,
    space: Space,
    predict: Predict,
    goal: tuple[float, bool],
) -> dict[str, float]:
    """Pull each change back towards its original value while the decision stays flipped."""
    threshold, flagged = goal
    for feature in sorted(point, key=lambda f: _cost({f: point[f]}, origin, space)):
        start = float(origin[feature])
        options = [v for v in space.grid[feature] if abs(v - start) < abs(point[feature] - start)]
        trials = [{k: v for k, v in point.items() if k != feature}]
        trials += [{**point, feature: float(v)} for v in options]
        p = predict(_frame(origin, trials))
        ok = [t for t, flip in zip(trials, _flipped(p, threshold, flagged), strict=True) if flip]
        if ok:
            point = min(ok, key=lambda t: _cost(t, origin, space))
    return point


def find_counterfactual(
    row: pd.Series,
    predict: Predict,
    threshold: float,
    space: Space,
    max_changes: int = 3,
    max_rounds: int = 8,
) -> Counterfactual:
    """The cheapest change found that moves `row` (a model-matrix row) across `threshold`."""
    p0 = float(predict(_frame(row, [{}]))[0])
    flagged = p0 >= threshold
    goal = (threshold, flagged)
    current: dict[str, float] = {}
    gap_now, cost_now = float(_gap(np.array([p0]), *goal)[0]), 0.0
    for _ in range(max_rounds):
        moves = _moves(current, row, space, max_changes)
        if not moves:
            break
        p = predict(_frame(row, moves))
        costs = np.array([_cost(m, row, space) for m in moves])
        chosen, flipped = _step(moves, p, gap_now, cost_now, costs, goal)
        if chosen is None:
            break
        current = chosen
        if flipped:
            current = _shrink(current, row, space, predict, goal)
            return _result(row, current, predict, space, (p0, threshold), max_changes, True)
        cost_now = _cost(current, row, space)
        gap_now = float(_gap(predict(_frame(row, [current])), *goal)[0])
    return _result(row, current, predict, space, (p0, threshold), max_changes, False)


def _result(
    row: pd.Series,
    point: dict[str, float],
    predict: Predict,
    space: Space,
    start: tuple[float, float],
    max_changes: int,
    found: bool,
) -> Counterfactual:
    p0, threshold = start
    p1 = float(predict(_frame(row, [point]))[0]) if point else p0
    changes = [
        Change(
            feature=f,
            before=float(row[f]),
            after=v,
            rank_before=rank(float(row[f]), space.sorted_values[f]),
            rank_after=rank(v, space.sorted_values[f]),
        )
        for f, v in sorted(point.items())
    ]
    side = "not flagged" if p0 >= threshold else "flagged"
    if found:
        message = f"{len(changes)} change(s) would make the account {side}"
    else:
        message = (
            f"no change of at most {max_changes} actionable feature(s) within the "
            "reference range flips the decision"
        )
    return Counterfactual(found, threshold, p0, p1, p0 >= threshold, changes, message)


def actionable_space(reference: pd.DataFrame, feature_columns: Sequence[str]) -> Space:
    """The search space of a model: its ACTIONABLE columns over its training reference
    (a model matrix), so the console and the scorer search the same values."""
    return build_space(reference, [f for f in ACTIONABLE if f in feature_columns])


@dataclass(frozen=True)
class BandGoal:
    """Where a search must bring an account to lower its band by one."""

    band: str
    target_band: str
    cutoff: float


def lower_band_goal(band: str, low_max: float, medium_max: float) -> BandGoal | None:
    """The next band down and the probability to get under, or None for the lowest band.

    Bands: p <= low_max is low, p <= medium_max medium (training.scoring_model). The search
    gets strictly under the cutoff, which is inside the lower band.
    """
    if band == "high":
        return BandGoal(band, "medium", medium_max)
    if band == "medium":
        return BandGoal(band, "low", low_max)
    return None
