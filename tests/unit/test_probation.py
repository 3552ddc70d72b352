"""The probation job's judgement, on its own: which limits a champion crossed, read from the
scorer's exposition text and the served log exactly as the live test's scorer writes them."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from monitoring.drift import score_psi
from monitoring.probation import Evidence, Limits, breaches, read_requests, served_scores

LIMITS = Limits(timedelta(hours=1), 0.01, 250.0, 0.25, min_requests=50, min_scores=100)


def _exposition(ok: int, errors: int, seconds: float, version: str = "7") -> str:
    """What the scorer's /metrics says after these requests of one champion version (and
    traffic of another version that must not count)."""
    registry = CollectorRegistry()
    requests = Counter("collectwise_model_requests", "", ["alias", "version", "outcome"],
                       registry=registry)  # fmt: skip
    latency = Histogram("collectwise_model_request_latency_seconds", "", ["alias", "version"],
                        buckets=(0.01, 0.1, 0.25, 0.5, 1.0), registry=registry)  # fmt: skip
    requests.labels("champion", version, "ok").inc(ok)
    requests.labels("champion", version, "error").inc(errors)
    for _ in range(ok):
        latency.labels("champion", version).observe(seconds)
    requests.labels("champion", "6", "error").inc(1000)  # the previous champion's history
    latency.labels("champion", "6").observe(5.0)
    return generate_latest(registry).decode()


def test_errors_and_latency_are_the_versions_own() -> None:
    evidence = Evidence()
    read_requests(_exposition(ok=95, errors=5, seconds=0.004), 7, evidence)
    assert (evidence.ok, evidence.errors) == (95, 5)
    assert evidence.p99_ms is not None and evidence.p99_ms <= 10.0
    assert breaches(evidence, LIMITS) == ["error rate 5.0% of 100 requests is above 1.0%"]


def test_a_slow_version_breaches_p99() -> None:
    evidence = Evidence()
    read_requests(_exposition(ok=100, errors=0, seconds=0.4), 7, evidence)
    (found,) = breaches(evidence, LIMITS)
    assert found.startswith("p99 latency") and "above 250 ms" in found


def test_too_few_requests_or_scores_are_not_judged() -> None:
    evidence = Evidence()
    read_requests(_exposition(ok=10, errors=10, seconds=0.9), 7, evidence)
    evidence.psi, evidence.scores = 3.0, 99
    assert breaches(evidence, LIMITS) == []


def test_shifted_scores_breach_psi_and_equal_ones_do_not() -> None:
    rng = np.random.default_rng(0)
    reference = pd.Series(rng.beta(2, 5, 5000))
    same = pd.Series(rng.beta(2, 5, 400))
    assert score_psi(reference, same) < 0.1
    shifted = score_psi(reference, 1 - same)
    evidence = Evidence(ok=400, psi=shifted, scores=400)
    (found,) = breaches(evidence, LIMITS)
    assert found.startswith("score PSI") and shifted > 1.0


def test_served_scores_are_one_per_account_of_the_champion_version() -> None:
    served = pd.DataFrame(
        {
            "account_id": ["a", "a", "b", "c", "d"],
            "model_version": [7, 7, 7, 6, 7],
            "model_alias": ["champion", "champion", "champion", "champion", "challenger"],
            "probability": [0.1, 0.2, 0.3, 0.9, 0.8],
        }
    )
    assert served_scores(served, 7).tolist() == [0.2, 0.3]
    assert served_scores(pd.DataFrame(), 7).empty


@pytest.mark.parametrize("ok", [0, 49])
def test_no_request_means_no_rate(ok: int) -> None:
    evidence = Evidence(ok=ok)
    assert breaches(evidence, LIMITS) == []
