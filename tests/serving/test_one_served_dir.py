"""One variable moves the served-feature log for the scorer and every monitoring job alike
(they once read two different variables, so moving the log emptied every drift job)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collectwise.settings import Settings, get_settings
from monitoring.job_inputs import served_rows
from serving.main import create_app
from tests.serving.conftest import SCORE_KEY, ScorerWorld, key_entries, serve
from tests.serving.test_scorer import body, known_accounts

pytestmark = pytest.mark.integration


@pytest.fixture
def moved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    where = tmp_path / "elsewhere" / "served"
    monkeypatch.setenv("COLLECTWISE_PATHS__SERVED_DIR", str(where))
    monkeypatch.setenv("COLLECTWISE_PATHS__AUDIT_DB", str(tmp_path / "audit.db"))
    get_settings.cache_clear()
    yield where
    get_settings.cache_clear()


def _platform() -> Settings:
    platform = get_settings()
    serving = platform.serving.model_copy(update={"api_keys": key_entries()})
    return platform.model_copy(update={"serving": serving})


def test_one_variable_moves_the_log_for_scorer_and_jobs(world: ScorerWorld, moved: Path) -> None:
    accounts = known_accounts(world, 3)
    started = datetime.now(UTC)
    with serve(create_app(_platform(), store=world.store)) as client:
        for account in accounts:
            answer = client.post(
                "/v1/score", json=body(world, account), headers={"X-API-Key": SCORE_KEY}
            )
            assert answer.status_code == 200, answer.text
    assert list(moved.rglob("*.parquet")), "the scorer wrote nothing where the variable says"
    # The monitoring jobs' default folder is the same one, and they find the scored rows.
    assert get_settings().paths.served_dir == moved
    served = served_rows(
        get_settings().paths.served_dir, started - timedelta(minutes=1), datetime.now(UTC)
    )
    assert sorted(set(served["account_id"])) == accounts
