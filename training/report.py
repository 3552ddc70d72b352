"""The evaluation report of a run: one JSON document and a self-contained HTML page.

The JSON holds every figure (metrics per split, curves, calibration, lift, bands,
global SHAP importance, fairness, model comparison); the HTML is rendered from that JSON alone, with
matplotlib figures embedded as base64 PNG so the page can be attached to an MLflow run or
mailed without its files.

Matplotlib is used through `matplotlib.figure.Figure` directly, never pyplot, so no GUI
backend or global figure state is touched (safe in servers and threads).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment
from matplotlib.axes import Axes
from matplotlib.figure import Figure

log = logging.getLogger(__name__)

HEADLINE = ("roc_auc", "pr_auc", "f1", "precision", "recall", "brier", "threshold")
ORACLE = ("oracle_auc", "model_auc_on_oracle_rows", "auc_ratio_to_oracle")
COMPARISON_COLUMNS = (
    "kind", "imbalance", "select_k", "roc_auc", "pr_auc", "f1", "brier", "fit_seconds",
)  # fmt: skip
TOP_FEATURES = 20


# --- the document ---------------------------------------------------------------------


def build_report(
    *,
    run: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Any]],
    importance: Mapping[str, float] | None = None,
    fairness: Mapping[str, Any] | None = None,
    comparison: Sequence[Mapping[str, Any]] | None = None,
    calibration: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the report: `metrics` maps a split name ("test", "valid") to evaluate()."""
    report = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run": dict(run),
        "metrics": {split: dict(values) for split, values in metrics.items()},
        "calibration": dict(calibration or {}),
        "importance": dict(importance or {}),
        "fairness": dict(fairness or {}),
        "comparison": [dict(row) for row in comparison or []],
    }
    return jsonable(report)


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars unwrapped, NaN / inf as None, tuples as lists."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(
    report: Mapping[str, Any], out_dir: str | Path, stem: str = "evaluation"
) -> tuple[Path, Path]:
    """Write `<stem>.json` and `<stem>.html` into `out_dir`; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / f"{stem}.json", out / f"{stem}.html"
    json_path.write_text(json.dumps(jsonable(report), indent=2, allow_nan=False))
    html_path.write_text(render_html(report))
    log.info("evaluation report written: %s, %s", json_path, html_path)
    return json_path, html_path


def primary_split(report: Mapping[str, Any]) -> str | None:
    """The split the figures show: test when present, else the first one."""
    splits = list(report.get("metrics", {}))
    return "test" if "test" in splits else (splits[0] if splits else None)


# --- figures --------------------------------------------------------------------------


def figures(report: Mapping[str, Any]) -> dict[str, str]:
    """Base64 PNGs by name; a figure whose data is missing is left out."""
    split = primary_split(report)
    m = report["metrics"][split] if split else {}
    drawers: dict[str, tuple[Callable[..., None], Any]] = {
        "roc": (_roc, m.get("curves", {}).get("roc")),
        "pr": (_pr, m.get("curves", {}).get("pr")),
        "calibration": (_calibration, m.get("calibration_curve")),
        "lift_gains": (_lift_gains, m.get("deciles")),
        "confusion": (_confusion, m.get("confusion_matrix")),
        "importance": (_importance, report.get("importance")),
    }
    out = {}
    for name, (draw, data) in drawers.items():
        if data:
            fig = Figure(figsize=(5.5, 4.0), layout="constrained")
            draw(fig, data, m)
            out[name] = _png(fig)
    return out


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _roc(fig: Figure, roc: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    ax = fig.subplots()
    ax.plot(roc["fpr"], roc["tpr"], label=f"model (AUC {_fmt(m.get('roc_auc'))})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    _labels(ax, "ROC curve", "false positive rate", "true positive rate")


def _pr(fig: Figure, pr: Mapping[str, Any], m: Mapping[str, Any]) -> None:
    ax = fig.subplots()
    ax.plot(pr["recall"], pr["precision"], label=f"model (AP {_fmt(m.get('pr_auc'))})")
    ax.axhline(m.get("default_rate") or 0, linestyle="--", color="grey", label="base rate")
    _labels(ax, "Precision-recall curve", "recall", "precision")


def _calibration(fig: Figure, rows: Sequence[Mapping[str, Any]], m: Mapping[str, Any]) -> None:
    ax = fig.subplots()
    ax.plot([r["mean_predicted"] for r in rows], [r["observed_rate"] for r in rows], "o-",
            label=f"model (Brier {_fmt(m.get('brier'))})")  # fmt: skip
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    _labels(ax, "Calibration (10 bins)", "mean predicted probability", "observed default rate")


def _lift_gains(fig: Figure, rows: Sequence[Mapping[str, Any]], m: Mapping[str, Any]) -> None:
    fig.set_size_inches(9.0, 4.0)
    left, right = fig.subplots(1, 2)
    deciles = [r["decile"] for r in rows]
    left.bar(deciles, [r["lift"] or 0 for r in rows])
    left.axhline(1.0, linestyle="--", color="grey")
    _labels(left, "Lift by decile", "decile (1 = highest risk)", "lift", legend=False)
    shares = [0.0] + [d / len(rows) for d in deciles]
    right.plot(shares, [0.0] + [r["cumulative_gain"] for r in rows], "o-", label="model")
    right.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    _labels(right, "Cumulative gains", "share of accounts", "share of defaulters")


def _confusion(fig: Figure, cm: Mapping[str, int], m: Mapping[str, Any]) -> None:
    ax = fig.subplots()
    grid = np.array([[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]])
    ax.imshow(grid, cmap="Blues")
    for (row, col), value in np.ndenumerate(grid):
        colour = "white" if value > grid.max() / 2 else "black"
        ax.text(col, row, f"{value:,}", ha="center", va="center", color=colour)
    ax.set_xticks([0, 1], ["pays (pred.)", "defaults (pred.)"])
    ax.set_yticks([0, 1], ["paid", "defaulted"])
    ax.set_title(f"Confusion matrix at threshold {_fmt(m.get('threshold'))}")


def _importance(fig: Figure, importance: Mapping[str, float], m: Mapping[str, Any]) -> None:
    top = list(importance.items())[:TOP_FEATURES][::-1]
    fig.set_size_inches(6.5, 0.25 * len(top) + 1.2)
    ax = fig.subplots()
    ax.barh([_short(name) for name, _ in top], [value for _, value in top])
    ax.set_title("Global importance: mean |SHAP| (log-odds)")
    ax.tick_params(axis="y", labelsize=7)


def _labels(ax: Axes, title: str, xlabel: str, ylabel: str, legend: bool = True) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if legend:
        ax.legend(loc="best", fontsize=8)


def _short(name: str) -> str:
    # Feast prefixes every column with its view; the feature name alone reads better.
    return name.split("__", 1)[-1]


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# --- HTML -----------------------------------------------------------------------------


def render_html(report: Mapping[str, Any]) -> str:
    """The self-contained HTML page of a report (figures inline, no external assets)."""
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    env.filters["short"] = _short
    template = env.from_string(TEMPLATE)
    split = primary_split(report)
    return template.render(
        report=report,
        split=split,
        primary=report["metrics"].get(split, {}) if split else {},
        headline=HEADLINE,
        oracle=ORACLE,
        columns=COMPARISON_COLUMNS,
        figures=figures(report),
    )


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Collectwise evaluation {{ report.run.get("name", "") }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.fail { color: #b00020; font-weight: bold; } .pass { color: #1b5e20; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; } img { border: 1px solid #eee; }
</style></head><body>
<h1>Evaluation report</h1>
<table>{% for key, value in report.run.items() %}
<tr><th class="l">{{ key }}</th><td class="l">{{ value | fmt }}</td></tr>{% endfor %}
<tr><th class="l">created</th><td class="l">{{ report.created_at }}</td></tr></table>

<h2>Metrics</h2>
<table><tr><th class="l">split</th>{% for k in headline %}<th>{{ k }}</th>{% endfor %}
{% for k in oracle %}<th>{{ k }}</th>{% endfor %}<th>n</th><th>default rate</th></tr>
{% for name, m in report.metrics.items() %}<tr><td class="l">{{ name }}</td>
{% for k in headline %}<td>{{ m.get(k) | fmt }}</td>{% endfor %}
{% for k in oracle %}<td>{{ m.get(k) | fmt }}</td>{% endfor %}
<td>{{ m.get("n") }}</td><td>{{ m.get("default_rate") | fmt }}</td></tr>{% endfor %}</table>
{% if report.calibration %}<p>Calibration: <b>{{ report.calibration.get("method") }}</b>
(validation Brier by method: {% for k, v in report.calibration.get("brier", {}).items() %}
{{ k }} {{ v | fmt(4) }}{% if not loop.last %}, {% endif %}{% endfor %})</p>{% endif %}

<h2>Figures ({{ split }})</h2>
<div class="grid">{% for name, png in figures.items() %}
<img alt="{{ name }}" src="data:image/png;base64,{{ png }}">{% endfor %}</div>

{% if primary.get("bands") %}<h2>Risk bands ({{ split }})</h2>
<p>Cutoffs: {{ primary.bands.cutoffs[0] | fmt(4) }} / {{ primary.bands.cutoffs[1] | fmt(4) }}</p>
<table><tr><th class="l">band</th><th>accounts</th><th>share</th><th>default rate</th>
<th>collection success rate</th><th>mean score</th></tr>
{% for band in ["low", "medium", "high"] %}{% set b = primary.bands[band] %}
<tr><td class="l">{{ band }}</td><td>{{ b["count"] }}</td><td>{{ b.share | fmt }}</td>
<td>{{ b.default_rate | fmt }}</td><td>{{ b.collection_success_rate | fmt }}</td>
<td>{{ b.mean_score | fmt }}</td></tr>{% endfor %}</table>{% endif %}

{% if primary.get("deciles") %}<h2>Lift and gains ({{ split }})</h2>
<table><tr><th>decile</th><th>accounts</th><th>defaults</th><th>default rate</th><th>lift</th>
<th>cumulative gain</th><th>cumulative lift</th></tr>
{% for d in primary.deciles %}<tr><td>{{ d.decile }}</td><td>{{ d["count"] }}</td>
<td>{{ d.defaults }}</td><td>{{ d.default_rate | fmt }}</td><td>{{ d.lift | fmt(2) }}</td>
<td>{{ d.cumulative_gain | fmt }}</td><td>{{ d.cumulative_lift | fmt(2) }}</td></tr>
{% endfor %}</table>{% endif %}

{% if report.fairness.get("attributes") %}<h2>Fairness</h2>
<p>Selected = flagged at threshold {{ report.fairness.threshold | fmt(4) }}; four-fifths rule:
disparate impact (min / max selection rate, groups of at least
{{ report.fairness.min_group_size }}) must be at least {{ report.fairness.min_ratio }}.</p>
{% for attr, f in report.fairness.attributes.items() %}
<h3>{{ attr }}: disparate impact {{ f.disparate_impact | fmt }},
{% if f.passes_four_fifths is none %}not assessed{% elif f.passes_four_fifths %}
<span class="pass">passes</span>{% else %}<span class="fail">fails</span>{% endif %}</h3>
<table><tr><th class="l">group</th><th>accounts</th><th>defaults</th><th>selection rate</th>
<th>TPR</th><th>FPR</th><th>AUC</th></tr>
{% for g, r in f.groups.items() %}<tr><td class="l">{{ g }}</td><td>{{ r["count"] }}</td>
<td>{{ r.defaults }}</td><td>{{ r.selection_rate | fmt }}</td><td>{{ r.tpr | fmt }}</td>
<td>{{ r.fpr | fmt }}</td><td>{{ r.auc | fmt }}</td></tr>{% endfor %}</table>
{% endfor %}{% endif %}

{% if report.comparison %}<h2>Model comparison (validation)</h2>
<table><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in report.comparison %}<tr>{% for c in columns %}
<td>{{ row.get(c) | fmt }}</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}

{% if report.importance %}<h2>Feature importance (mean |SHAP|)</h2>
<table><tr><th class="l">feature</th><th>mean |SHAP|</th></tr>
{% for name, v in report.importance.items() %}<tr><td class="l">{{ name }}</td>
<td>{{ v | fmt(4) }}</td></tr>{% endfor %}</table>{% endif %}
</body></html>
"""
