"""The fairness page: a report's per-group table against the four-fifths (80%) rule.

The figures are training.fairness.fairness_table's, as logged in the version's evaluation
report; here they are only laid out: each group's selection rate as a share of the
highest, and whether that share reaches the report's min_ratio.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go

FOUR_FIFTHS = 0.8


def _number(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


def summary_rows(fairness: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per protected attribute: disparate impact and the verdict."""
    rows = []
    for attribute, table in (fairness.get("attributes") or {}).items():
        passes = table.get("passes_four_fifths")
        rows.append(
            {
                "attribute": attribute,
                "disparate_impact": _number(table.get("disparate_impact")),
                "verdict": "too few accounts to compare"
                if passes is None
                else ("passes" if passes else "fails"),
                "groups": len(table.get("groups") or {}),
            }
        )
    return rows


def group_rows(fairness: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per attribute and group, with the selection-rate ratio to the highest."""
    min_ratio = float(fairness.get("min_ratio") or FOUR_FIFTHS)
    min_size = int(fairness.get("min_group_size") or 0)
    rows = []
    for attribute, table in (fairness.get("attributes") or {}).items():
        groups = table.get("groups") or {}
        eligible = [
            float(g["selection_rate"])
            for g in groups.values()
            if g.get("selection_rate") is not None and int(g.get("count", 0)) >= min_size
        ]
        highest = max(eligible) if eligible else None
        for name, g in groups.items():
            rate = g.get("selection_rate")
            big_enough = int(g.get("count", 0)) >= min_size
            ratio = None
            if rate is not None and highest:
                ratio = float(rate) / highest
            elif rate is not None and highest == 0:
                ratio = 1.0
            rows.append(
                {
                    "attribute": attribute,
                    "group": name,
                    "count": int(g.get("count", 0)),
                    "defaults": g.get("defaults"),
                    "selection_rate": _number(rate),
                    "ratio_to_highest": _number(ratio),
                    "tpr": _number(g.get("tpr")),
                    "fpr": _number(g.get("fpr")),
                    "auc": _number(g.get("auc")),
                    "four_fifths": _verdict(ratio, big_enough, min_ratio),
                }
            )
    return rows


def _verdict(ratio: float | None, big_enough: bool, min_ratio: float) -> str:
    if not big_enough:
        return "too small to judge"
    if ratio is None:
        return "no rate"
    return "ok" if ratio >= min_ratio else "below 80%"


def selection_figure(fairness: Mapping[str, Any], attribute: str) -> go.Figure:
    """Selection rate per group with the line a group must reach (min_ratio x highest)."""
    rows = [r for r in group_rows(fairness) if r["attribute"] == attribute]
    min_ratio = float(fairness.get("min_ratio") or FOUR_FIFTHS)
    fig = go.Figure(
        go.Bar(
            x=[r["group"] for r in rows],
            y=[r["selection_rate"] for r in rows],
            marker_color=[
                "#c0392b" if r["four_fifths"] == "below 80%" else "#2e86c1" for r in rows
            ],
            text=[f"n={r['count']}" for r in rows],
        )
    )
    rates = [r["selection_rate"] for r in rows if r["four_fifths"] != "too small to judge"]
    rates = [r for r in rates if r is not None]
    if rates:
        line = min_ratio * max(rates)
        fig.add_hline(y=line, line_dash="dash", annotation_text=f"{min_ratio:.0%} of the highest")
    fig.update_layout(
        title=f"Selection rate by {attribute} (share flagged at the model's threshold)",
        yaxis_title="selection rate",
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        height=360,
    )
    return fig
