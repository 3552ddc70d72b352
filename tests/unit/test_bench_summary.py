"""The benchmark summary: each ratio beside the previous run's, and the machine's load."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from benchmarks import run_all
from benchmarks.common import profile_top, stats_top
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


def _missed(case: str, profile: Mapping[str, object]) -> dict[str, object]:
    return {
        **COMPARISONS["comparisons"][0],
        "case": case,
        "profile": profile,
        "tried": ["column reads (dd81bff)", "precompute_online read and left"],
    }


def _work() -> int:
    return sum(i * i for i in range(20_000))


def test_an_aim_not_met_shows_what_was_tried_and_where_the_time_goes() -> None:
    profile = {
        "what": "handler x 10",
        "stages": [["in process p50: online.read", 1.97]],
        **profile_top(_work, limit=5),
    }
    outcome = _outcome(4.81)
    outcome.misses = [_missed("sqlite single", profile), _missed("redis single", profile)]
    text = markdown([outcome], 1000, load_figures([1.0]), {})
    section = text.split("## Aims not met", 1)[1]
    assert "### online_latency: sqlite single" in section
    assert "- column reads (dd81bff)" in section
    assert "| in process p50: online.read | 1.970 |" in section
    # The profile names where the profiled work ran, and a second aim sharing it points back.
    assert "test_bench_summary.py" in section
    assert section.count("| in process p50: online.read |") == 1
    assert 'the profile under "online_latency: sqlite single" above' in section


def test_a_summary_with_every_aim_met_has_no_such_section() -> None:
    assert "Aims not met" not in markdown([_outcome(2.0)], 1000, load_figures([1.0]), {})


def test_a_profile_saved_by_a_child_process_is_read_back(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(
        "def first():\n    return sum(range(3_000_000))\n\n"
        "def second():\n    return max(range(3_000_000))\n\n"
        "first()\nsecond()\n"
    )
    saved = tmp_path / "child.prof"
    command = [sys.executable, "-m", "cProfile", "-o", str(saved), str(script)]
    subprocess.run(command, check=True, timeout=60)
    top = stats_top(saved, limit=5)
    named = {row["function"].rsplit("(", 1)[-1] for row in top["by_cumulative_time"]}
    assert {"first)", "second)"} <= named
    # The script's module frame wraps the whole run: left out of the cumulative ranking.
    assert not any("<module>" in row["function"] for row in top["by_cumulative_time"])
