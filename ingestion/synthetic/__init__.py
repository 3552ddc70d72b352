"""Synthetic collections data with a known truth.

The generator simulates delinquent accounts month by month and writes the raw tables of
the contract (ingestion.contract) plus an oracle: for every scored (account, snapshot) the
exact probability that the label ``default_30d`` will be 1, given the generator's state.
Models can then be judged against the best achievable score, not only against each other.

How it keeps the label rule exact: every payment the simulation makes for snapshot t lies
inside (t, t + 30 days] and inside no other snapshot's window, each payment is >= 1.0, and
reversals are recorded within 20 days of the payment (so inside the 21-day label grace).
An account therefore defaults at t exactly when it does not pay, or when every payment it
made in the window is reversed, which is what the oracle's formula says. The window and the
grace are feature_repo.transformations' LABEL_WINDOW_DAYS and DEFAULT_LABEL_GRACE_DAYS.

Everything is vectorised over the accounts of one chunk; the only Python loops run over
chunks and months. Each chunk has its own random stream, SeedSequence(seed, (0, chunk)),
and every month draws arrays of fixed shape whatever the state, so a scenario that changes
outcomes in the drift window cannot shift the random numbers of earlier months.

Modules, from the bottom up:

- world: the behaviour parameters, SyntheticConfig and the scenarios
- timeline: the run's months in microseconds (snapshots, statements, pay windows, drift)
- draws: helpers for drawing from a chunk's random stream
- population: a chunk's customers and accounts
- state: what the collector knows per account, and the sink events go to
- oracle: the exact default probability of each snapshot, and how it scores
- events: payments and reversals, contacts and promises, statements
- simulation: the monthly loop of one chunk
- calibration: the intercept that hits the requested default rate
- writer: the raw tables, the oracle and the manifest on disk
- generator: generate(), the entry point
"""

from __future__ import annotations

from ingestion.synthetic.calibration import calibrate_intercept
from ingestion.synthetic.generator import GenerationSummary, generate
from ingestion.synthetic.world import (
    DEFAULT_DRIFT_MONTHS,
    DEFAULT_START,
    GENERATOR_VERSION,
    SCENARIOS,
    Scenario,
    SyntheticConfig,
    SyntheticConfigError,
    month_start,
)

__all__ = [
    "DEFAULT_DRIFT_MONTHS",
    "DEFAULT_START",
    "GENERATOR_VERSION",
    "SCENARIOS",
    "GenerationSummary",
    "Scenario",
    "SyntheticConfig",
    "SyntheticConfigError",
    "calibrate_intercept",
    "generate",
    "month_start",
]
