"""The run's months in microseconds: snapshots, statement days, pay windows, drift window.

The label window and its grace come from feature_repo.transformations, the one definition
of the label rule, so the payments the simulation places for a snapshot fall inside the
window the feature pipeline will label it with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from feature_repo.transformations import DEFAULT_LABEL_GRACE_DAYS, LABEL_WINDOW_DAYS
from ingestion.synthetic.world import (
    BURN_IN_MONTHS,
    SEASON_LOGIT,
    STATEMENT_DAY,
    US_PER_DAY,
    IntArr,
    SyntheticConfig,
)


@dataclass(frozen=True)
class Calendar:
    """Month boundaries in microseconds; month m starts `m` months after `start`."""

    first: int
    months: int
    # month_start[m - first + 1] for m in first - 1 .. months + 1.
    month_start: IntArr
    # calendar_month[m - first + 1] in 0 (January) .. 11.
    calendar_month: IntArr
    as_of: int
    drift_from: int

    @classmethod
    def build(cls, config: SyntheticConfig) -> Calendar:
        first = -BURN_IN_MONTHS
        base = np.datetime64(pd.Timestamp(config.start).tz_localize(None), "M")
        months = base + np.arange(first - 1, config.months + 2)
        starts = months.astype("datetime64[us]").astype(np.int64)
        # Without drift the window is empty, also for the as_of month itself; the config
        # keeps the window inside the run (SyntheticConfig._check_drift).
        drift = min(config.drift_months, config.months - first)
        drift_from = config.months - drift if drift else config.months + 1
        return cls(
            first=first,
            months=config.months,
            month_start=starts,
            calendar_month=(months.astype(np.int64) % 12).astype(np.int64),
            as_of=int(starts[config.months - first + 1]),
            drift_from=drift_from,
        )

    def t(self, m: int) -> int:
        return int(self.month_start[m - self.first + 1])

    def statement(self, m: int) -> int:
        return self.t(m) + (STATEMENT_DAY - 1) * US_PER_DAY

    def statements(self, m: IntArr) -> IntArr:
        return self.month_start[m - self.first + 1] + (STATEMENT_DAY - 1) * US_PER_DAY

    def pay_window(self, m: int) -> tuple[int, int]:
        """The part of snapshot m's label window that no other snapshot's window overlaps.

        After a short February the previous window reaches into March, so March's payments
        start later; in 31-day months the last day belongs to no window.
        """
        window = LABEL_WINDOW_DAYS * US_PER_DAY
        lo = max(self.t(m), self.t(m - 1) + window)
        hi = min(self.t(m) + window, self.t(m + 1))
        return lo, hi

    def season(self, m: int) -> float:
        return float(SEASON_LOGIT[self.calendar_month[m - self.first + 1]])

    def matured(self, m: int) -> bool:
        return self.t(m) + (LABEL_WINDOW_DAYS + DEFAULT_LABEL_GRACE_DAYS) * US_PER_DAY <= self.as_of

    def counted(self, m: int) -> bool:
        """Snapshots the calibration and the summary cover: matured ones, or all if none is."""
        return self.matured(m) or not self.matured(1)

    def month_of(self, us: IntArr) -> IntArr:
        idx = np.searchsorted(self.month_start, us, side="right") - 1
        return (idx + self.first - 1).astype(np.int64)

    def in_drift(self, m: int) -> bool:
        return m >= self.drift_from

    @property
    def drift_start(self) -> int:
        """First microsecond of the drift window (after as_of when there is none)."""
        return self.t(self.drift_from) if self.drift_from <= self.months else self.as_of + 1
