"""Explanations as data and figures: one account's waterfall, per-feature dependence,
global importance. SHAP values are in log-odds of the uncalibrated model (training.explain),
so a waterfall runs from the base log-odds to the account's raw log-odds; calibration then
maps that to the probability the page shows beside it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

RAISES = "#c0392b"
LOWERS = "#2e86c1"
TOTAL = "#566573"


def short_name(feature: str) -> str:
    """account_payment_velocity__payment_velocity -> payment velocity."""
    return feature.split("__", 1)[-1].replace("_", " ")


def by_source(contributions: pd.Series, sources: Mapping[str, str]) -> pd.Series:
    """Model-column contributions summed into the features they encode (one-hot, arrays)."""
    keys = [sources.get(str(c), str(c)) for c in contributions.index]
    return contributions.groupby(keys, sort=False).sum()


def waterfall_steps(contributions: pd.Series, top: int = 10) -> pd.Series:
    """The `top` largest contributions by size, the rest summed into "other features"."""
    order = contributions.abs().sort_values(ascending=False).index
    head = contributions.loc[order[:top]]
    rest = contributions.loc[order[top:]]
    if len(rest):
        head = pd.concat([head, pd.Series({f"{len(rest)} other features": float(rest.sum())})])
    return head


def waterfall_figure(
    contributions: pd.Series, base_value: float, probability: float, top: int = 10
) -> go.Figure:
    steps = waterfall_steps(contributions, top)
    labels = ["base (average account)", *(short_name(str(i)) for i in steps.index), "account"]
    values = [base_value, *steps.to_numpy(dtype=float), 0.0]
    measures = ["absolute", *(["relative"] * len(steps)), "total"]
    fig = go.Figure(
        go.Waterfall(
            orientation="h",
            y=labels,
            x=values,
            measure=measures,
            increasing={"marker": {"color": RAISES}},
            decreasing={"marker": {"color": LOWERS}},
            totals={"marker": {"color": TOTAL}},
            text=[f"{v:+.3f}" for v in values[:-1]] + [f"{base_value + steps.sum():.3f}"],
            textposition="outside",
        )
    )
    fig.update_layout(
        title=f"Why: log-odds contributions (red raises the risk); probability {probability:.3f}",
        yaxis={"autorange": "reversed"},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        height=120 + 28 * len(labels),
        showlegend=False,
    )
    return fig


def importance_from_shap(shap_values: pd.DataFrame) -> pd.Series:
    """Mean |SHAP| per column, largest first."""
    return shap_values.abs().mean(axis=0).sort_values(ascending=False)


def importance_figure(importance: pd.Series, title: str, top: int = 20) -> go.Figure:
    head = importance.head(top)[::-1]
    fig = go.Figure(
        go.Bar(x=head.to_numpy(), y=[short_name(str(i)) for i in head.index], orientation="h")
    )
    fig.update_layout(
        title=title,
        xaxis_title="mean |SHAP| (log-odds)",
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        height=140 + 22 * len(head),
    )
    return fig


def dependence_frame(x: pd.DataFrame, shap_values: pd.DataFrame, column: str) -> pd.DataFrame:
    """Feature value against its SHAP value over the sample; rows with no value dropped."""
    frame = pd.DataFrame({"value": x[column].to_numpy(), "shap": shap_values[column].to_numpy()})
    return frame[np.isfinite(frame["value"].astype(float))].reset_index(drop=True)


def dependence_figure(frame: pd.DataFrame, column: str, marked: float | None = None) -> go.Figure:
    fig = go.Figure(
        go.Scatter(
            x=frame["value"],
            y=frame["shap"],
            mode="markers",
            marker={"size": 5, "opacity": 0.5, "color": frame["shap"], "colorscale": "RdBu_r"},
            name="reference accounts",
        )
    )
    if marked is not None and np.isfinite(marked):
        fig.add_vline(x=marked, line_dash="dash", annotation_text="this account")
    fig.update_layout(
        title=f"Dependence: {short_name(column)}",
        xaxis_title=short_name(column),
        yaxis_title="SHAP value (log-odds)",
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        height=420,
        showlegend=False,
    )
    return fig


def history_figure(history: pd.DataFrame, top: int = 8) -> go.Figure:
    """Importance per registered version (rows) for the features most important lately."""
    fig = go.Figure()
    if history.empty:
        fig.update_layout(title="No SHAP importance logged with any registered version yet")
        return fig
    latest = history.iloc[-1].dropna().sort_values(ascending=False).index[:top]
    for feature in latest:
        fig.add_trace(
            go.Scatter(
                x=[f"v{v}" for v in history.index],
                y=history[feature],
                mode="lines+markers",
                name=short_name(str(feature)),
            )
        )
    fig.update_layout(
        title="Importance across registered versions",
        yaxis_title="mean |SHAP|",
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        height=380,
    )
    return fig
