"""`rebuild-online` on a home whose online store was lost or damaged: the store is loaded
again from the offline tables and a sample reads online as point-in-time retrieval does."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from collectwise.settings import Settings
from ingestion.feast_store import (
    EMBEDDED_PROFILE,
    FeaturesMissingError,
    apply_definitions,
    online_feature_vectors,
    open_store,
)
from monitoring.disaster.rebuild import (
    compare_online_offline,
    rebuild_online,
    sample_accounts,
)
from tests.integration.conftest import FeatureData

pytestmark = pytest.mark.integration


@pytest.fixture
def home(tmp_path: Path, feature_data: FeatureData) -> Settings:
    """A home with the embedded profile (registry and SQLite online store under data/)
    and the definitions applied over the shared feature tables."""
    settings = Settings(home=tmp_path)
    settings.feature_store_yaml.write_text(yaml.safe_dump(EMBEDDED_PROFILE))
    apply_definitions(open_store(settings), feature_data.features_dir)
    return settings


def online_debt(settings: Settings, account: str, data: FeatureData) -> float:
    frame = online_feature_vectors(open_store(settings), [account], scoring_time=data.as_of)
    return float(frame["account_payment_velocity__debt_amount"].iloc[0])


def test_a_lost_online_store_is_rebuilt_and_matches_offline(
    home: Settings, feature_data: FeatureData
) -> None:
    online_db = home.paths.data_dir / "online_store.db"
    online_db.unlink()  # apply made it empty; lost, as with the machine
    done = rebuild_online(home, feature_data.features_dir, sample=25, seed=1)
    assert done.as_of == feature_data.as_of and done.checked_accounts == 25
    assert done.checked_values >= 25 * 20
    assert online_db.is_file()
    # Lost again after a load: rebuilt again, the same check passes.
    online_db.unlink()
    assert rebuild_online(home, feature_data.features_dir, sample=10).checked_accounts == 10


def test_a_damaged_value_is_found_then_repaired(home: Settings, feature_data: FeatureData) -> None:
    rebuild_online(home, feature_data.features_dir, sample=5)
    accounts = sample_accounts(feature_data.features_dir, feature_data.as_of, 8, seed=3)
    victim = str(accounts["account_id"].iloc[0])
    velocity = pd.read_parquet(feature_data.features_dir / "account_payment_velocity.parquet")
    row = velocity[
        (velocity["account_id"] == victim) & (velocity["event_timestamp"] == feature_data.as_of)
    ]
    store = open_store(home)
    store.write_to_online_store("account_payment_velocity", row.assign(debt_amount=-1.0))
    assert online_debt(home, victim, feature_data) == -1.0

    values, mismatches = compare_online_offline(store, accounts, feature_data.as_of)
    assert values > 0
    assert [(m.account_id, m.feature, m.online) for m in mismatches] == [
        (victim, "account_payment_velocity__debt_amount", -1.0)
    ]
    assert f"{victim} account_payment_velocity__debt_amount: online -1.0" in str(mismatches[0])

    rebuild_online(home, feature_data.features_dir, sample=8, seed=3)
    assert online_debt(home, victim, feature_data) == float(row["debt_amount"].iloc[0])


def test_a_home_without_applied_definitions_is_told_to_apply(
    tmp_path: Path, feature_data: FeatureData
) -> None:
    settings = Settings(home=tmp_path)
    settings.feature_store_yaml.write_text(yaml.safe_dump(EMBEDDED_PROFILE))
    with pytest.raises(FeaturesMissingError, match="run `collectwise apply` first"):
        rebuild_online(settings, feature_data.features_dir)
