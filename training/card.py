"""A model card per registered version: one self-contained HTML page (no external assets).

The card reads the version's ModelMetadata and, when present, the evaluation report JSON.
The report's layout belongs to training/report.py, so sections are looked up under a few
likely keys and rendered generically (numbers, tables of dicts, lists of rows): a report that
gains or renames a section still yields a card, and a missing section says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

if TYPE_CHECKING:
    from training.registry.versions import ModelMetadata

log = logging.getLogger(__name__)

TOP_SHAP = 15
# Where each card section may sit in the report, first match wins.
_REPORT_KEYS: dict[str, tuple[str, ...]] = {
    "data": ("data", "dataset", "data_summary"),
    "metrics": ("metrics", "test_metrics", "test"),
    "calibration": ("calibration", "calibration_curve"),
    "fairness": ("fairness", "fairness_table"),
    "shap": (
        "importance",
        "global_shap",
        "shap",
        "mean_abs_shap",
        "explanations",
        "feature_importance",
    ),
    "comparison": ("comparison", "model_comparison", "models"),
}

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Model card: {{ meta.name }} v{{ meta.version }}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#1d2733;line-height:1.45}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #d5dbe3;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.92rem}
th,td{border:1px solid #d5dbe3;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f1f4f8} .muted{color:#687585} code{background:#f1f4f8;padding:0 .2rem}
.pill{display:inline-block;background:#e3ecf7;border-radius:1rem;padding:0 .6rem;margin-right:.3rem}
</style></head><body>
{% macro render(value) -%}
{%- if value is mapping -%}
<table>{% for k, v in value.items() %}<tr><th>{{ k }}</th><td>{{ render(v) }}</td></tr>{% endfor %}
</table>
{%- elif value is rows -%}
<table><tr>{% for c in value[0].keys() %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in value %}<tr>{% for c in value[0].keys() %}<td>{{ fmt(row.get(c)) }}</td>
{% endfor %}</tr>{% endfor %}</table>
{%- elif value is sequence and value is not string -%}{{ value | map("fmt") | join(", ") }}
{%- else -%}{{ fmt(value) }}{%- endif -%}
{%- endmacro %}
<h1>{{ meta.name }} v{{ meta.version }}</h1>
<p>{% for a in meta.aliases %}<span class="pill">{{ a }}</span>{% endfor %}
status <b>{{ meta.status }}</b> · registered {{ meta.created.strftime("%Y-%m-%d %H:%M UTC") }}
· card written {{ written }}</p>

<h2>Intended use</h2>
<p>Scores delinquent accounts already placed with collections for the risk that they make no
qualifying payment in the next 30 days, to prioritise and plan collection work (who to
contact first, which treatment). Decision at probability &ge; {{ fmt(meta.threshold) }};
risk bands: low &le; {{ fmt(meta.bands.get("low_max")) }} &lt; medium &le;
{{ fmt(meta.bands.get("medium_max")) }} &lt; high.</p>
<p><b>Not for</b> credit granting, pricing, limit setting or any decision about a person's
access to credit, nor for legal action without human review.</p>

<h2>Data</h2>
<table>
<tr><th>dataset fingerprint</th><td><code>{{ meta.data_fingerprint }}</code></td></tr>
<tr><th>test set fingerprint</th><td><code>{{ meta.test_set_fingerprint }}</code></td></tr>
<tr><th>DVC data hash</th><td><code>{{ meta.dvc_data_hash }}</code></td></tr>
</table>
{% if sections.data is not none %}{{ render(sections.data) }}{% else %}
<p class="muted">The report gives no data summary (snapshots, rows).</p>{% endif %}

<h2>Features</h2>
<p>Feature service <code>{{ meta.feature_service }}</code>, definitions fingerprint
<code>{{ meta.definitions_fingerprint }}</code>; {{ meta.feature_columns | length }} model
columns in order:</p>
<p>{% for c in meta.feature_columns %}<code>{{ c }}</code>{% if not loop.last %}, {% endif %}
{%- endfor %}</p>

<h2>Metrics (test set)</h2>
{{ render(meta.metrics) }}
{% if sections.metrics is not none %}<h3>From the evaluation report</h3>
{{ render(sections.metrics) }}{% endif %}
{% if sections.comparison is not none %}<h3>Models compared</h3>
{{ render(sections.comparison) }}{% endif %}

<h2>Calibration</h2>
<p>Calibrator fitted on validation data: <code>{{ meta.calibration }}</code>.</p>
{% if sections.calibration is not none %}{{ render(sections.calibration) }}{% else %}
<p class="muted">No calibration curve in the report.</p>{% endif %}

<h2>Fairness</h2>
{% if sections.fairness is not none %}{{ render(sections.fairness) }}{% else %}
<p class="muted">No fairness table in the report.</p>{% endif %}
<p>Protected attributes (age band, sex) are kept out of the features and used only here.</p>

<h2>Explanations</h2>
{% if shap %}<p>Top features by mean |SHAP| (global):</p>
<table><tr><th>feature</th><th>mean |SHAP|</th></tr>
{% for f, v in shap %}<tr><td><code>{{ f }}</code></td><td>{{ fmt(v) }}</td></tr>{% endfor %}
</table>{% elif sections.shap is not none %}{{ render(sections.shap) }}{% else %}
<p class="muted">No global SHAP values in the report.</p>{% endif %}

<h2>Limitations</h2>
<ul>
<li>Synthetic data follows a generator's assumptions; figures on it say the pipeline works,
not how the model fares on a real portfolio.</li>
<li>The real-data profile uses the UCI "default of credit card clients" data (Taiwan, 2005):
credit-card customers one month ahead, not accounts already in collections; its population,
era and label differ from the intended use, so validate on your own portfolio first.</li>
<li>Protected attributes are excluded from the features, but proxies (income, region,
product, payment behaviour) may still carry them: read the fairness table before use.</li>
<li>Scores assume features as the feature service defines them; a changed definitions
fingerprint means the model must not serve.</li>
<li>Performance drifts as collection strategy and the economy change: watch monitoring.</li>
</ul>

<h2>Lineage</h2>
<table>
<tr><th>git commit</th><td><code>{{ meta.git_commit }}</code>
{% if meta.tags.get("git_dirty") == "true" %}(with uncommitted changes){% endif %}</td></tr>
<tr><th>DVC data hash</th><td><code>{{ meta.dvc_data_hash }}</code></td></tr>
<tr><th>MLflow run</th><td><code>{{ meta.run_id }}</code></td></tr>
{% if meta.promoted_at %}<tr><th>promoted</th><td>{{ meta.promoted_at }} by
{{ meta.promoted_by }}: {{ meta.promotion_reason }}</td></tr>{% endif %}
</table>
{% if meta.params %}<h3>Parameters</h3>{{ render(meta.params) }}{% endif %}
</body></html>
"""


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "–"
    return str(value)


def _is_rows(value: Any) -> bool:
    """A non-empty list of dicts: rendered as a table with the first row's keys as columns."""
    return isinstance(value, list) and bool(value) and all(isinstance(r, Mapping) for r in value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.globals["fmt"] = _fmt
    env.filters["fmt"] = _fmt
    env.tests["rows"] = _is_rows
    return env


def _sections(report: Mapping[str, Any] | None) -> dict[str, Any]:
    found: dict[str, Any] = dict.fromkeys(_REPORT_KEYS)
    for section, keys in _REPORT_KEYS.items():
        for key in keys:
            if report and report.get(key) is not None:
                found[section] = report[key]
                break
    return found


def _top_shap(value: Any) -> list[tuple[str, float]]:
    """The largest mean |SHAP| values, from {feature: value} or rows with feature / value."""
    pairs: list[tuple[str, float]] = []
    if isinstance(value, Mapping):
        pairs = [(str(k), float(v)) for k, v in value.items() if isinstance(v, int | float)]
    elif _is_rows(value):
        for row in value:
            number = next((v for k, v in row.items() if k != "feature"), None)
            if "feature" in row and isinstance(number, int | float):
                pairs.append((str(row["feature"]), float(number)))
    return sorted(pairs, key=lambda kv: abs(kv[1]), reverse=True)[:TOP_SHAP]


def render_model_card(meta: ModelMetadata, report: Mapping[str, Any] | None) -> str:
    sections = _sections(report)
    template = _environment().from_string(_TEMPLATE)
    return template.render(
        meta=meta,
        sections=sections,
        shap=_top_shap(sections["shap"]),
        written=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def write_model_card(meta: ModelMetadata, report: Mapping[str, Any] | None, out: Path) -> Path:
    """Write the HTML card of one version to `out` (parents created) and return the path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_model_card(meta, report), encoding="utf-8")
    log.info("model card of %s v%s written to %s", meta.name, meta.version, out)
    return out


def load_report(path: Path | None) -> dict[str, Any] | None:
    """The evaluation report JSON at `path`, or None when there is none."""
    if path is None or not path.exists():
        return None
    loaded = json.loads(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else None
