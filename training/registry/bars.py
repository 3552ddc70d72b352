"""Quality bars a version must meet before it may serve: measured at registration, recorded
on the version as tags, enforced by the promotion gate.

Each check compares one test metric with a bar from params.yaml (`train.gate_checks`):
- out_of_time_f1: F1 of the default class at the version's threshold, when the test rows
  are out of time (a stratified split is no test of the future, so the bar does not apply);
- auc_ratio_to_oracle: test AUC over the generator's oracle AUC on the same rows, when the
  data has an oracle (synthetic data only; real data has no true probabilities).

Tags: `check.<name>` holds {"metric", "value", "bar", "passed"} as JSON and `checks_passed`
is "true" or "false", so `mlflow ui` and `models show` list them and the gate reads them
back without recomputing anything.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from training.registry.versions import PromotionRefused

log = logging.getLogger(__name__)

CHECK_TAG_PREFIX = "check."
CHECKS_PASSED_TAG = "checks_passed"
OUT_OF_TIME = "out_of_time"
# name -> the test metric it reads (as training.train.flat_metrics names it)
CHECK_METRICS: Mapping[str, str] = {
    "out_of_time_f1": "test_f1",
    "auc_ratio_to_oracle": "test_auc_ratio_to_oracle",
}


class GateChecksFailed(PromotionRefused):
    """A version misses a quality bar: it is never made challenger or champion."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    metric: str
    value: float
    bar: float
    passed: bool

    def describe(self) -> str:
        relation = ">=" if self.passed else "<"
        return f"{self.name} {self.value:.4f} {relation} {self.bar:.4f}"


def _applies(name: str, metrics: Mapping[str, float], splitter: str) -> bool:
    if CHECK_METRICS[name] not in metrics:
        return False
    return splitter == OUT_OF_TIME if name == "out_of_time_f1" else True


def quality_checks(
    metrics: Mapping[str, float], bars: Mapping[str, float], splitter: str
) -> list[CheckResult]:
    """The checks among `bars` that apply to these test metrics, each passed or failed."""
    unknown = sorted(set(bars) - set(CHECK_METRICS))
    if unknown:
        raise ValueError(f"unknown gate checks {unknown}; known: {sorted(CHECK_METRICS)}")
    results = []
    for name, bar in sorted(bars.items()):
        if not _applies(name, metrics, splitter):
            log.info("gate check %s does not apply (%s split, no %s)", name, splitter, name)
            continue
        value = float(metrics[CHECK_METRICS[name]])
        # A hair of tolerance so a value of exactly the bar is not lost to float rounding.
        results.append(
            CheckResult(name, CHECK_METRICS[name], value, float(bar), value + 1e-12 >= bar)
        )
    return results


def check_tags(results: Sequence[CheckResult]) -> dict[str, str]:
    """The version tags that record the checks (none when no check applied)."""
    if not results:
        return {}
    tags = {
        CHECK_TAG_PREFIX + r.name: json.dumps({k: v for k, v in asdict(r).items() if k != "name"})
        for r in results
    }
    tags[CHECKS_PASSED_TAG] = str(all(r.passed for r in results)).lower()
    return tags


def recorded_checks(tags: Mapping[str, str]) -> list[CheckResult]:
    """The checks a version's tags record (unreadable ones count as failed)."""
    results = []
    for key, value in sorted(tags.items()):
        if not key.startswith(CHECK_TAG_PREFIX):
            continue
        name = key.removeprefix(CHECK_TAG_PREFIX)
        try:
            record = json.loads(value)
            results.append(
                CheckResult(
                    name,
                    str(record["metric"]),
                    float(record["value"]),
                    float(record["bar"]),
                    bool(record["passed"]),
                )
            )
        except (ValueError, KeyError, TypeError):
            results.append(CheckResult(name, "?", float("nan"), float("nan"), False))
    return results


def failed(results: Sequence[CheckResult]) -> list[CheckResult]:
    return [r for r in results if not r.passed]


def summary(results: Sequence[CheckResult]) -> str:
    """One line: every failed check with its value and bar."""
    return "; ".join(r.describe() for r in failed(results))
