"""Decision views as figures: PD with ICE lines per feature, and the two-feature decision map
with the model's band cutoffs drawn on it. The numbers come from training.inspection; this
module only chooses what to show and how.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from admin_app.logic.explain import short_name
from training.inspection import DecisionMap, FeatureCurves, inspectable

DEFAULT_TOP = 6
TOP_CHOICES = (3, 4, 6, 8, 10, 12)
ICE_LINES = 60
PD_COLOUR = "#c0392b"
ICE_COLOUR = "rgba(86, 101, 115, 0.18)"
# Line styles of the cutoffs on the decision map; the threshold is the decision itself.
CUTOFF_STYLES = {"low_max": "dot", "medium_max": "dash", "threshold": "solid"}
CUTOFF_NAMES = {"low_max": "low | medium", "medium_max": "medium | high", "threshold": "threshold"}
DIRECTION = {1: "increasing", -1: "decreasing"}


@dataclass(frozen=True)
class Cutoff:
    name: str
    level: float
    on_map: bool  # False when the map's probabilities never reach it


def top_columns(importance: pd.Series, x: pd.DataFrame, k: int = DEFAULT_TOP) -> list[str]:
    """The k most important model columns (mean |SHAP|, largest first) that have a grid."""
    ranked = [str(c) for c in importance.sort_values(ascending=False).index]
    return inspectable(x, ranked)[: max(k, 0)]


def feature_title(column: str, sentence: tuple[str, str] | None) -> str:
    """The column's name, with its reason code and sentence underneath when it has one."""
    head = f"<b>{short_name(column)}</b>"
    if sentence is None:
        return head
    code, text = sentence
    return f"{head}<br><sup>{code}: {text}</sup>"


def constraint_label(curves: FeatureCurves) -> str | None:
    """What the model promises about this column's direction, and whether the PD keeps it."""
    direction = DIRECTION.get(curves.monotone)
    if direction is None:
        return None
    breach = curves.against_constraint()
    kept = "PD keeps it" if breach == 0 else f"PD breaks it by {breach:.4f}"
    return f"monotone {direction} (constrained); {kept}"


def ice_rows(n_rows: int, lines: int = ICE_LINES, seed: int = 0) -> np.ndarray:
    """Which ICE lines to draw: a fixed subsample, so a page shows the same lines each time."""
    if n_rows <= lines:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=lines, replace=False))


def curves_figure(
    curves: FeatureCurves, title: str, *, centred: bool = False, lines: int = ICE_LINES
) -> go.Figure:
    shown = curves.centred() if centred else curves
    drawn = shown.individual[ice_rows(len(shown.individual), lines)]
    fig = go.Figure(_ice_trace(shown.grid, drawn))
    fig.add_trace(
        go.Scatter(
            x=shown.grid, y=shown.average, mode="lines", name="partial dependence",
            line={"color": PD_COLOUR, "width": 3},
        )
    )  # fmt: skip
    _rug(fig, shown.deciles)
    label = constraint_label(curves)
    if label:
        fig.add_annotation(
            text=label, xref="paper", yref="paper", x=0, y=1.0, showarrow=False,
            xanchor="left", yanchor="bottom", font={"size": 11, "color": "#1e8449"},
        )  # fmt: skip
    fig.update_layout(
        title={"text": title, "y": 0.97},
        xaxis_title=short_name(curves.column),
        yaxis_title="change in probability" if centred else "probability of default",
        margin={"l": 10, "r": 10, "t": 80, "b": 10},
        height=360,
        showlegend=False,
    )
    return fig


def _ice_trace(grid: np.ndarray, lines: np.ndarray) -> go.Scatter:
    # One trace, the lines split by gaps: a trace per line would ship and draw far more.
    gap = np.full((len(lines), 1), np.nan)
    x = np.hstack([np.tile(grid, (len(lines), 1)), gap]).ravel()
    y = np.hstack([lines, gap]).ravel()
    return go.Scatter(
        x=x, y=y, mode="lines", line={"color": ICE_COLOUR, "width": 1}, connectgaps=False,
        hoverinfo="skip", name=f"ICE ({len(lines)} accounts)",
    )  # fmt: skip


def _rug(fig: go.Figure, deciles: np.ndarray) -> None:
    # Deciles of the sampled accounts: where the curve rests on data, not on extrapolation.
    # Short ticks along the bottom, like sklearn's display: lines across would hide the ICE.
    for value in deciles:
        fig.add_shape(
            type="line", x0=float(value), x1=float(value), yref="paper", y0=0.0, y1=0.06,
            line={"color": "#1b2631", "width": 2},
        )  # fmt: skip


def cutoffs(dmap: DecisionMap) -> list[Cutoff]:
    """The band cutoffs and the threshold, each marked whether the map crosses it."""
    low, high = float(np.nanmin(dmap.probability)), float(np.nanmax(dmap.probability))
    levels = {"low_max": dmap.low_max, "medium_max": dmap.medium_max, "threshold": dmap.threshold}
    return [Cutoff(name, level, low < level < high) for name, level in levels.items()]


def map_figure(dmap: DecisionMap, title: str) -> go.Figure:
    """The heatmap of PD probability, with one contour line at each cutoff it crosses."""
    fig = go.Figure(
        go.Heatmap(
            x=dmap.x_grid, y=dmap.y_grid, z=dmap.probability, colorscale="RdYlGn_r",
            zmin=0.0, zmax=1.0, colorbar={"title": "probability"},
            hovertemplate="%{x:.3g}, %{y:.3g}: %{z:.3f}<extra></extra>",
        )
    )  # fmt: skip
    for cut in cutoffs(dmap):
        if cut.on_map:
            fig.add_trace(_contour(dmap, cut))
    fig.update_layout(
        title={"text": f"{title}<br><sup>{_cutoff_note(dmap)}</sup>"},
        xaxis_title=short_name(dmap.x_column),
        yaxis_title=short_name(dmap.y_column),
        margin={"l": 10, "r": 10, "t": 80, "b": 10},
        height=520,
        showlegend=True,
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def _contour(dmap: DecisionMap, cut: Cutoff) -> go.Contour:
    # start == end draws the one level; plotly still wants a positive size.
    return go.Contour(
        x=dmap.x_grid, y=dmap.y_grid, z=dmap.probability, name=f"{CUTOFF_NAMES[cut.name]} "
        f"{cut.level:.3f}", showscale=False, showlegend=True, hoverinfo="skip",
        contours={"coloring": "none", "start": cut.level, "end": cut.level, "size": 1.0,
                  "showlabels": True, "labelfont": {"size": 11, "color": "black"}},
        line={"color": "black", "width": 2, "dash": CUTOFF_STYLES[cut.name]},
    )  # fmt: skip


def _cutoff_note(dmap: DecisionMap) -> str:
    missed = [CUTOFF_NAMES[c.name] for c in cutoffs(dmap) if not c.on_map]
    text = (
        f"bands: low ≤ {dmap.low_max:.3f} < medium ≤ {dmap.medium_max:.3f} < high; "
        f"threshold {dmap.threshold:.3f}"
    )
    return text + (f" (not reached here: {', '.join(missed)})" if missed else "")


def pair_options(columns: Sequence[str]) -> list[dict[str, str]]:
    return [{"label": short_name(c), "value": c} for c in columns]
