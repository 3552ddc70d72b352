"""Limitations of a validated version, written from the report's own figures: each finding
names the numbers it rests on, so the text can be checked against the tables above it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from training.fairness import MIN_GROUP_SIZE

SMALL_TEST_SET = 1000
ECE_LIMIT = 0.05
AUC_DROP = 0.05
EOD_LIMIT = 0.1
PSI_SHIFT = 0.1
PSI_CHANGE = 0.25


def limitations(report: Mapping[str, Any]) -> list[str]:
    """Plain sentences; the fixed caveats of the domain come last."""
    found: list[str] = []
    for check in (_small, _labels, _calibration, _months, _drift, _benchmarks, _fairness, _sense):
        found += check(report)
    found.append(
        "Protected attributes are not model inputs, but proxies (income, region, product, "
        "payment behaviour) may still carry them; the fairness section measures the outcome."
    )
    if report["data"].get("synthetic"):
        found.append(
            "The data are synthetic: figures show the pipeline works, not how the model fares on "
            "a real portfolio."
        )
    return found


def _small(report: Mapping[str, Any]) -> list[str]:
    out = []
    test = report["performance"]["overall"]["test"]
    if test.get("n", 0) < SMALL_TEST_SET:
        out.append(
            f"The test set is small ({test.get('n', 0)} rows, {test.get('defaults', 0)} "
            "defaults): its figures carry wide sampling error."
        )
    for segment, groups in report["performance"]["segments"].items():
        small = [
            g["group"] for g in groups if g.get("n", 0) < MIN_GROUP_SIZE or g.get("roc_auc") is None
        ]
        if small:
            out.append(
                f"Segments by {segment} too small or one-class to judge on test rows (under "
                f"{MIN_GROUP_SIZE} rows or no AUC): {', '.join(small)}."
            )
    return out


def _labels(report: Mapping[str, Any]) -> list[str]:
    label, rows = report["data"]["label"], report["data"]["rows"]
    text = (
        f"Outcomes mature {label['window_days']} days after a snapshot: the newest "
        f"{label['window_days']} days of data cannot be validated yet (known until "
        f"{label['outcomes_known_until'][:10]})."
    )
    if rows["train"] + rows["valid"] + rows["test"] < rows["total"]:
        text += (
            " Training rows whose labels matured after validation began were left out, as "
            "they would not have been known yet."
        )
    return [text]


def _calibration(report: Mapping[str, Any]) -> list[str]:
    ece = report["performance"]["overall"]["test"].get("ece")
    if ece is not None and ece > ECE_LIMIT:
        return [
            f"Calibration error on test is {ece:.3f} (above {ECE_LIMIT}): read scores as a "
            "ranking more than as probabilities."
        ]
    return []


def _months(report: Mapping[str, Any]) -> list[str]:
    test_auc = report["performance"]["overall"]["test"].get("roc_auc")
    weak = [
        m
        for m in report["performance"]["months"]
        if m.get("roc_auc") is not None
        and test_auc is not None
        and m["roc_auc"] < test_auc - AUC_DROP
    ]
    if weak:
        names = ", ".join(f"{m['month']} ({m['roc_auc']:.3f})" for m in weak)
        return [
            f"Discrimination is weaker in some snapshot months than on test (AUC {test_auc:.3f}): "
            f"{names}."
        ]
    return []


def _drift(report: Mapping[str, Any]) -> list[str]:
    out = []
    moved = [m for m in report["stability"]["months"] if (m.get("score_psi") or 0) >= PSI_SHIFT]
    if moved:
        out.append(
            "The score distribution moved against the training rows in "
            + ", ".join(f"{m['month']} (PSI {m['score_psi']:.2f})" for m in moved)
            + "."
        )
    changed = [f for f in report["stability"]["features"] if f["max_psi"] >= PSI_CHANGE]
    if changed:
        out.append(
            "Inputs whose distribution changed across snapshots (PSI >= 0.25): "
            + ", ".join(f"{f['feature']} ({f['max_psi']:.2f})" for f in changed[:8])
            + "."
        )
    return out


def _benchmarks(report: Mapping[str, Any]) -> list[str]:
    rows = report["benchmarks"]["rows"]
    own = rows[0]
    out = []
    for other in rows[1:]:
        for metric in ("roc_auc", "f1"):
            if (other.get(metric) or 0) > (own.get(metric) or 0):
                out.append(
                    f"The {other['model']} beats this version on test {metric} "
                    f"({other[metric]:.4f} against {own[metric] or 0:.4f})."
                )
    return out


def _fairness(report: Mapping[str, Any]) -> list[str]:
    out = []
    for name, attr in report["fairness"].get("attributes", {}).items():
        if attr.get("passes_four_fifths") is False:
            out.append(
                f"Selection rates by {name} fail the four-fifths rule (disparate impact "
                f"{attr['disparate_impact']:.2f})."
            )
        if attr.get("passes_four_fifths") is None:
            out.append(f"Groups by {name} are too small to test the four-fifths rule.")
        if (attr.get("equalized_odds_difference") or 0) > EOD_LIMIT:
            out.append(
                f"Error rates differ by {name}: equalized-odds difference "
                f"{attr['equalized_odds_difference']:.2f} (above {EOD_LIMIT})."
            )
    return out


def _sense(report: Mapping[str, Any]) -> list[str]:
    against = [f["feature"] for f in report["sensitivity"]["features"] if f["against_direction"]]
    if against:
        return [
            f"On average the score moves against the imposed direction for: {', '.join(against)}."
        ]
    return []
