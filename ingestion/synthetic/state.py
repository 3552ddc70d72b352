"""One chunk's simulation: what the collector knows per account, and where events go."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ingestion.synthetic.population import Accounts
from ingestion.synthetic.timeline import Calendar
from ingestion.synthetic.world import HISTORY_MONTHS, BoolArr, FloatArr, IntArr, Scenario


class Sink:
    """Collects event columns month by month; a disabled sink (calibration) keeps nothing."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._parts: dict[str, list[dict[str, npt.NDArray[np.generic]]]] = {}

    def add(self, table: str, keep: BoolArr, **columns: npt.NDArray[np.generic]) -> None:
        if self.enabled:
            self._parts.setdefault(table, []).append({k: v[keep] for k, v in columns.items()})

    def columns(self, table: str, names: Sequence[str]) -> dict[str, npt.NDArray[np.generic]]:
        parts = self._parts.get(table, [])
        if not parts:
            return {name: np.zeros(0, np.int64) for name in names}
        return {name: np.concatenate([p[name] for p in parts]) for name in names}


@dataclass
class State:
    """What the collector knows about each account after the last statement."""

    balance: FloatArr
    carry: FloatArr  # net paid since the last statement
    min_due: FloatArr
    dpd: IntArr
    closed: BoolArr
    stmt1: BoolArr  # had a statement last month
    stmt2: BoolArr  # had a statement the month before
    paid: BoolArr  # (n, 6) ring of months paid
    seen: BoolArr  # (n, 6) ring of months scored
    broken: FloatArr  # decayed count of broken promises

    @classmethod
    def empty(cls, n: int) -> State:
        return cls(
            balance=np.zeros(n),
            carry=np.zeros(n),
            min_due=np.zeros(n),
            dpd=np.zeros(n, np.int64),
            closed=np.zeros(n, bool),
            stmt1=np.zeros(n, bool),
            stmt2=np.zeros(n, bool),
            paid=np.zeros((n, HISTORY_MONTHS), bool),
            seen=np.zeros((n, HISTORY_MONTHS), bool),
            broken=np.zeros(n),
        )


@dataclass
class Run:
    """One chunk's simulation: its accounts, their state and where the events go."""

    acc: Accounts
    st: State
    cal: Calendar
    rng: np.random.Generator
    sink: Sink
    alpha: float
    scenario: Scenario

    def drift(self, m: int) -> Scenario | None:
        """The scenario in force in month m (None outside the drift window)."""
        return self.scenario if self.scenario != "none" and self.cal.in_drift(m) else None
