"""What every monitoring job returns: named scalar metrics plus where its reports went.

The jobs (drift, performance, skew, fairness) compute; `monitoring.job_finish.finish_job` stores
the metrics for trends and evaluates the alert rules on them. Keeping this one small type
between them lets each job stay a pure function of its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class JobResult:
    """One run of one monitoring job over one window.

    metrics: flat name -> value, e.g. {"drift.share_drifted": 0.2,
    "drift.feature.account_payment_velocity__debt_amount.psi": 0.31}; alert rules name them.
    labels: context that is not a number (model version, window), stored beside the metrics.
    """

    job: str
    window_start: datetime | None
    window_end: datetime
    metrics: dict[str, float]
    labels: dict[str, str] = field(default_factory=dict)
    reports: dict[str, Path] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    rows: int = 0
