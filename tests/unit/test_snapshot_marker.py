"""The snapshot marker's judgement on a read of the canaries (ingestion.snapshot_marker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ingestion.snapshot_marker import COMPLETE, PENDING, problems_from_values

pytestmark = pytest.mark.unit

REFS = ["account_payment_velocity:debt_amount", "account_profile:customer_id"]
NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)
GRACE = timedelta(minutes=30)
SNAPSHOT = datetime(2026, 12, 1, tzinfo=UTC).timestamp()


def read(state: str | None, velocity_ts: float, marker_ts: float) -> dict[str, list[object]]:
    return {
        "account_profile__customer_id": [state],
        "account_profile__customer_id__ts": [marker_ts],
        "account_payment_velocity__debt_amount": [0.0 if velocity_ts else None],
        "account_payment_velocity__debt_amount__ts": [velocity_ts],
    }


def pending(started: datetime) -> str:
    return PENDING + started.isoformat()


def test_a_whole_snapshot_has_no_problem() -> None:
    assert problems_from_values(read(COMPLETE, SNAPSHOT, SNAPSHOT), REFS, NOW, GRACE) == []


@pytest.mark.parametrize(
    ("values", "says"),
    [
        (read(None, 0, 0), "no snapshot marker"),  # emptied store
        (read(COMPLETE, 0, SNAPSHOT), "hold no whole snapshot"),  # one view lost its rows
        (read(COMPLETE, SNAPSHOT - 86400, SNAPSHOT), "lack the latest snapshot"),
        (read(pending(NOW - timedelta(hours=2)), SNAPSHOT, SNAPSHOT), "did not finish"),
        (read(pending(NOW - timedelta(minutes=1)), 0, SNAPSHOT), "first snapshot"),
        (read(PENDING + "garbage", SNAPSHOT, SNAPSHOT), "did not finish"),
    ],
)
def test_what_is_not_servable(values: dict[str, list[object]], says: str) -> None:
    problems = problems_from_values(values, REFS, NOW, GRACE)
    assert len(problems) == 1 and says in problems[0]


def test_a_load_in_progress_over_a_whole_snapshot_is_servable() -> None:
    values = read(pending(NOW - timedelta(minutes=5)), SNAPSHOT - 86400, SNAPSHOT)
    assert problems_from_values(values, REFS, NOW, GRACE) == []
