"""The Jinja2 template of the validation report (HTML, printed to PDF as is)."""

# ruff: noqa: E501  # template lines are HTML; wrapping them would change the markup

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Validation report: {{ r.model.label }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; font-size: 12px; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
h2 { break-before: auto; } section { break-inside: auto; }
table { border-collapse: collapse; margin: 0.4em 0 1.2em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.fail { color: #b00020; font-weight: bold; } .pass { color: #1b5e20; }
img { border: 1px solid #eee; max-width: 100%; break-inside: avoid; }
code { background: #f3f3f3; padding: 0 0.2em; } .muted { color: #687585; }
@page { size: A4; margin: 12mm; }
</style></head><body>
{% macro kv(d) %}<table>{% for k, v in d.items() %}<tr><th class="l">{{ k }}</th>
<td class="l">{% if v is mapping %}{% for k2, v2 in v.items() %}{{ k2 }}: {{ v2 | fmt }}<br>{% endfor %}
{% elif v is iterable and v is not string %}{{ v | join(", ") }}{% else %}{{ v | fmt(4) }}{% endif %}
</td></tr>{% endfor %}</table>{% endmacro %}
{% macro figs(cols, rows, first="l") %}<table><tr>{% for c in cols %}
<th{% if loop.first %} class="l"{% endif %}>{{ c }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for c in cols %}<td{% if loop.first %} class="l"{% endif %}>
{{ row.get(c) | fmt }}</td>{% endfor %}</tr>{% endfor %}</table>{% endmacro %}
{% set perf_cols = ["n", "defaults", "default_rate", "mean_score", "roc_auc", "pr_auc", "f1", "brier", "ece"] %}
<h1>Model validation report</h1>
<p><b>{{ r.model.label }}</b> · {{ r.model.kind }} · feature service
<code>{{ r.data.feature_service }}</code> · threshold {{ r.model.threshold | fmt(4) }} ·
generated {{ r.created_at }}</p>
<p class="muted">Sections follow supervisory guidance on model risk (SR 11-7): data and lineage,
conceptual soundness, outcomes analysis, benchmarking, stability, sensitivity, fairness,
limitations.</p>

<section id="data"><h2>1. Data and lineage</h2>
{{ kv({"sources": r.data.sources, "splitter": r.data.splitter, "synthetic data": r.data.synthetic}) }}
<h3>Fingerprints</h3>{{ kv(r.data.fingerprints) }}
<h3>Rows</h3>{{ kv(r.data.rows) }}
<h3>Snapshots and label</h3>
{{ kv({"first snapshot": r.data.snapshots.min, "last snapshot": r.data.snapshots.max,
       "snapshots": r.data.snapshots.count, "months": r.data.snapshots.months}) }}
{{ kv(r.data.label) }}
<h3>Data quality</h3>
{% if r.data.quality %}<p>Validation status <b>{{ r.data.quality.status }}</b>
({{ r.data.quality.generated_at }}); rows read {{ r.data.quality.totals.get("raw") }}, kept
{{ r.data.quality.totals.get("good") }}, quarantined {{ r.data.quality.totals.get("quarantined") }}.</p>
{{ figs(["table", "raw", "good", "quarantined", "quarantined_share", "status"], r.data.quality.tables) }}
{% if r.data.quality.top_reasons %}{{ figs(["table", "reason", "rows"], r.data.quality.top_reasons) }}{% endif %}
{% else %}<p class="muted">No data quality report was found for these raw tables.</p>{% endif %}
</section>

<section id="soundness"><h2>2. Conceptual soundness</h2>
<p>{{ r.soundness.model_columns }} model columns from the features below; model
{{ r.soundness.model_kind }} (imbalance: {{ r.soundness.imbalance }}, calibration:
{{ r.soundness.calibration }}). Monotone constraints are
{% if r.soundness.constraints_enforced %}<b>enforced</b> by the booster{% else %}
<b>not enforced</b> by this model kind (see the sensitivity section){% endif %}.
Increasing (+1): {{ r.soundness.monotone_reasons.increasing }}. Decreasing (-1):
{{ r.soundness.monotone_reasons.decreasing }}.
Protected attributes used as inputs: {{ r.soundness.protected_inputs | length }}.</p>
<table><tr><th class="l">feature</th><th class="l">type</th><th class="l">description</th>
<th>columns</th><th>monotone</th><th class="l">why</th></tr>
{% for f in r.soundness.features %}<tr><td class="l"><code>{{ f.feature }}</code></td>
<td class="l">{{ f.type }}</td><td class="l">{{ f.description }}</td><td>{{ f.model_columns }}</td>
<td>{{ f.monotone }}</td><td class="l">{{ f.why }}</td></tr>{% endfor %}</table>
</section>

<section id="performance"><h2>3. Discrimination and calibration</h2>
<h3>Overall</h3>
<table><tr><th class="l">rows</th>{% for c in perf_cols %}<th>{{ c }}</th>{% endfor %}</tr>
{% for name, m in r.performance.overall.items() %}<tr><td class="l">{{ name }}</td>
{% for c in perf_cols %}<td>{{ m.get(c) | fmt }}</td>{% endfor %}</tr>{% endfor %}</table>
{% if figures.calibration %}<img alt="calibration" src="data:image/png;base64,{{ figures.calibration }}">{% endif %}
<h3>By segment (test rows)</h3>
{% for segment, groups in r.performance.segments.items() %}<h4>{{ segment }}</h4>
{{ figs(["group"] + perf_cols, groups) }}{% endfor %}
{% if figures.segments %}<img alt="segments" src="data:image/png;base64,{{ figures.segments }}">{% endif %}
<h3>Per snapshot month (out-of-time stability)</h3>
{{ figs(["month", "part"] + perf_cols, r.performance.months) }}
{% if figures.months %}<img alt="months" src="data:image/png;base64,{{ figures.months }}">{% endif %}
</section>

<section id="benchmarks"><h2>4. Benchmarks</h2>
{{ figs(["model", "what", "threshold", "roc_auc", "pr_auc", "f1", "brier", "ece"], r.benchmarks.rows) }}
{% if figures.benchmark_roc %}<img alt="benchmark ROC" src="data:image/png;base64,{{ figures.benchmark_roc }}">{% endif %}
{% if r.benchmarks.candidates_on_validation %}<h3>Candidates compared at fit (validation)</h3>
{{ figs(["kind", "imbalance", "roc_auc", "pr_auc", "f1", "brier"], r.benchmarks.candidates_on_validation) }}{% endif %}
</section>

<section id="stability"><h2>5. Stability</h2>
<p>Population stability index against the {{ r.stability.reference }}: below 0.1 stable,
0.1-0.25 a shift, above 0.25 a change.</p>
{{ figs(["month", "rows", "score_psi", "reading", "worst_feature", "worst_feature_psi"], r.stability.months) }}
{% if figures.stability %}<img alt="stability" src="data:image/png;base64,{{ figures.stability }}">{% endif %}
{{ figs(["feature", "max_psi", "reading"], r.stability.features) }}
</section>

<section id="sensitivity"><h2>6. Sensitivity</h2>
<p>Each feature's model columns moved by {{ r.sensitivity.step_std }} standard deviations up
and down on {{ r.sensitivity.rows_scored }} test rows; change of the score.</p>
{{ figs(["feature", "mean_abs_change", "max_abs_change", "mean_change_up", "monotone", "against_direction"], r.sensitivity.features) }}
{% if figures.sensitivity %}<img alt="sensitivity" src="data:image/png;base64,{{ figures.sensitivity }}">{% endif %}
</section>

<section id="fairness"><h2>7. Fairness</h2>
<p>Selected = flagged at threshold {{ r.fairness.threshold | fmt(4) }}. Four-fifths rule:
lowest / highest selection rate over groups of at least {{ r.fairness.min_group_size }}
accounts must be at least {{ r.fairness.min_ratio }}. Equalized-odds difference (fairlearn):
the larger of the TPR and FPR gaps between groups. Protected attributes used as model inputs:
{{ r.fairness.protected_are_inputs | length }}.</p>
{% for name, a in r.fairness.attributes.items() %}
<h3>{{ name }}: disparate impact {{ a.disparate_impact | fmt }},
{% if a.passes_four_fifths is none %}not assessed{% elif a.passes_four_fifths %}
<span class="pass">passes</span>{% else %}<span class="fail">fails</span>{% endif %};
equalized-odds difference {{ a.equalized_odds_difference | fmt }}</h3>
<table><tr><th class="l">group</th><th>accounts</th><th>defaults</th><th>selection rate</th>
<th>TPR</th><th>FPR</th><th>AUC</th></tr>
{% for g, row in a.groups.items() %}<tr><td class="l">{{ g }}</td><td>{{ row["count"] }}</td>
<td>{{ row.defaults }}</td><td>{{ row.selection_rate | fmt }}</td><td>{{ row.tpr | fmt }}</td>
<td>{{ row.fpr | fmt }}</td><td>{{ row.auc | fmt }}</td></tr>{% endfor %}</table>{% endfor %}
</section>

<section id="limitations"><h2>8. Limitations</h2>
<ul>{% for item in r.limitations %}<li>{{ item }}</li>{% endfor %}</ul>
</section>
</body></html>
"""
