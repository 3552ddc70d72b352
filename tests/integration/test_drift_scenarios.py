"""The drift monitor on the generator's drift scenarios, with monitoring's default rules.

One seed of benchmarks.drift_scenarios (which reports the rates over many): generate,
validate, build features, join them as the feature service does, compute drift between the
three snapshots before the drift window and the as_of snapshot, evaluate the drift rules.

Size: 2,000 accounts x 12 months, not less. At 600 accounts the no-drift control raised the
alert itself (share of drifted columns 0.39-0.51 over seeds 1-5 at 9 months, 0.34-0.37 over
seeds 1-3 at 12): PSI on the zero-heavy history columns is noisy at ~450 current rows, and
a 9-month portfolio is still growing, so its account-age mix moves between the reference
and as_of. At 2,000 x 12 the
control stayed at 0.10-0.22 on seeds 1-10. Seed 1 is not a lucky pick: seeds 1-3 give the
same verdicts. The income_shock margin is thin, though: 13 of 41 columns drift on most
seeds (share 0.32 against the rule's 0.3), and seed 9 of 10 stops at 12 (0.29, missed);
see the benchmark's report for why.
"""

from __future__ import annotations

import pytest

from benchmarks.drift_scenarios import ScenarioOutcome, ScenarioRun, run_scenario
from ingestion.synthetic import SCENARIOS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED = 1
ACCOUNTS = 2_000
MONTHS = 12
CHANNEL_RULE = "feature drifted:drift.feature.account_contact_behavior__payment_channel_preference"


@pytest.fixture(scope="module")
def outcomes() -> dict[str, ScenarioOutcome]:
    return {
        scenario: run_scenario(
            ScenarioRun(scenario, SEED, accounts=ACCOUNTS, months=MONTHS), populations=("all",)
        )[0]
        for scenario in SCENARIOS
    }


def test_income_shock_raises_the_drift_alert(outcomes: dict[str, ScenarioOutcome]) -> None:
    shock = outcomes["income_shock"]
    assert shock.alert, f"share drifted {shock.share_drifted:.2f}: {shock.drifted}"
    assert "account_payment_velocity__months_past_due_6m" in shock.drifted


def test_no_drift_control_raises_no_alert(outcomes: dict[str, ScenarioOutcome]) -> None:
    control = outcomes["none"]
    assert not control.alert, f"false alarm: {control.firings}"
    assert control.share_drifted < 0.3


def test_channel_shift_is_flagged_on_the_payment_channel(
    outcomes: dict[str, ScenarioOutcome],
) -> None:
    assert f"{CHANNEL_RULE}.drifted" in outcomes["channel_shift"].firings


def test_channel_shift_raises_the_drift_alert(outcomes: dict[str, ScenarioOutcome]) -> None:
    assert outcomes["channel_shift"].alert
