"""deploy/prometheus checked by promtool (Debian's prometheus package, which .ci/services
installs): the config and its rule files are valid, and the alerting rules pass the unit
tests in deploy/prometheus/tests/ (a case that fires and one that stays silent per rule)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.prometheus_env import PROMETHEUS_DIR, binary

pytestmark = pytest.mark.integration

RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *map(str, args)], capture_output=True, text=True, check=False
    )


def test_the_config_and_its_rules_are_valid() -> None:
    done = promtool("check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    # the config loads every rule file there is
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in done.stdout, done.stdout


def test_the_rules_are_valid() -> None:
    assert RULE_FILES
    done = promtool("check", "rules", *RULE_FILES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_alerting_rules_pass_their_unit_tests() -> None:
    assert RULE_TESTS
    done = promtool("test", "rules", *RULE_TESTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_test_that_fires_it() -> None:
    alerts = {
        rule["alert"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    fired = {
        case["alertname"]
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts - fired == set(), f"alerts without a firing test case: {sorted(alerts - fired)}"
    assert all(
        rule.get("labels", {}).get("severity") in {"critical", "warning"}
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    )
