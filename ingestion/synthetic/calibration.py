"""The intercept that makes the matured default share hit the requested rate."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from ingestion.synthetic.oracle import Stats
from ingestion.synthetic.population import draw_population
from ingestion.synthetic.simulation import simulate
from ingestion.synthetic.state import Run, Sink, State
from ingestion.synthetic.timeline import Calendar
from ingestion.synthetic.world import CALIBRATION_ACCOUNTS, SyntheticConfig

log = logging.getLogger(__name__)


def _calibration_share(config: SyntheticConfig, cal: Calendar, alpha: float) -> float:
    """Mean oracle probability of a fixed calibration sample under scenario 'none'."""
    # Its own stream (spawn key 1): the chunks' streams (0, chunk) stay untouched.
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(1,)))
    _, acc = draw_population(rng, CALIBRATION_ACCOUNTS, cal, "none")
    stats = Stats()
    run = Run(acc, State.empty(acc.n), cal, rng, Sink(enabled=False), alpha, "none")
    simulate(run, stats)
    return stats.mean_p


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1.0 - 1e-9)
    return float(np.log(p / (1.0 - p)))


def _logit_inv(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def _solve_intercept(share: Callable[[float], float], target: float) -> float:
    """Secant steps on the logit of the share, which is nearly linear in the intercept."""
    goal = _logit(target)
    a0, a1 = -2.0, 0.0
    g0, g1 = _logit(share(a0)) - goal, _logit(share(a1)) - goal
    for _ in range(30):
        if abs(g1) < 1e-3 or g1 == g0:
            break
        a0, a1 = a1, float(np.clip(a1 - g1 * (a1 - a0) / (g1 - g0), -15.0, 15.0))
        g0, g1 = g1, _logit(share(a1)) - goal
    if abs(g1) > 0.05:
        # Extreme targets can lie outside what the behaviour model can produce.
        log.warning("default share %.3f is out of reach; got %.3f", target, _logit_inv(g1 + goal))
    return a1


def calibrate_intercept(config: SyntheticConfig) -> float:
    """The intercept that makes the matured default share equal config.default_rate."""
    cal = Calendar.build(config)
    return _solve_intercept(lambda a: _calibration_share(config, cal, a), config.default_rate)
