"""The benchmark summary: each ratio beside the previous run's, and the machine's load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import run_all
from benchmarks.run_all import Outcome, change, load_figures, markdown, previous_ratios

pytestmark = pytest.mark.unit

COMPARISONS = {
    "comparisons": [
        {
            "benchmark": "online_latency",
            "case": "sqlite, reasons: score p99 / floor p99 <= 3",
            "real_seconds": 0.0101,
            "floor_seconds": 0.0021,
            "ratio": 4.81,
            "ratio_kind": "p99 ratio",
            "aim": "<= 3x",
            "meets_aim": False,
        }
    ]
}


def _outcome(ratio: float) -> Outcome:
    document = json.loads(json.dumps(COMPARISONS))
    document["comparisons"][0]["ratio"] = ratio
    return Outcome("online_latency", 0, 12.0, "x.json", run_all.summary_rows(document), True)


def test_a_ratio_is_shown_beside_the_previous_runs_with_its_change() -> None:
    before = _outcome(4.81)
    previous = previous_ratios({"benchmarks": [json.loads(json.dumps(before.__dict__))]})
    assert previous == {("online_latency", "sqlite, reasons: score p99 / floor p99 <= 3"): 4.81}
    load = load_figures([1.5, 2.5, 3.5])
    text = markdown([_outcome(2.4)], 1000, load, previous)
    row = next(line for line in text.splitlines() if line.startswith("| online_latency | sqlite"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4:] == ["2.40x p99 ratio", "4.81x", "-50%", "<= 3x", "no"]
    assert "load average 1.5 to 3.5 (mean 2.5, 3 samples)" in text


def test_changes_of_new_and_old_layout_rows() -> None:
    assert change(2.0, None) == "new"
    assert change(1.1, 1.0) == "+10%"
    # An older summary kept the ratio as text: it is left out rather than misread.
    old = {"benchmarks": [{"rows": [["a", "b", 1.0, 1.0, "2.00x p99", "<= 3x", "yes"]]}]}
    assert previous_ratios(old) == {}


def test_the_last_summary_is_kept_as_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_all, "RESULTS_DIR", tmp_path)
    assert run_all.keep_previous() == {}
    before = _outcome(4.81)
    (tmp_path / "summary.json").write_text(json.dumps({"benchmarks": [before.__dict__]}))
    (tmp_path / "summary.md").write_text("# last run\n")
    assert list(run_all.keep_previous().values()) == [4.81]
    assert (tmp_path / "summary.previous.md").read_text() == "# last run\n"
    assert not (tmp_path / "summary.json").exists()
