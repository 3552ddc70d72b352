"""The raw data quality report: what validation kept, what it quarantined and why.

Profiles are computed on the good rows with DuckDB over the parquet parts, so the report
scales with the data rather than with memory. Quantiles are exact up to QUANTILE_SAMPLE rows
and come from a uniform sample of that many rows above it (exact quantiles hold every value
in memory); counts, missing values, min, max, mean and outlier counts always use every row.
Written as ``quality.json`` (for machines and the admin console) and ``quality.md``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import duckdb

from ingestion import rawio
from ingestion.contract import FLOAT, INT, STRING, TABLES_BY_NAME, TIMESTAMP, Table
from ingestion.duckdb_text import ident, literal

log = logging.getLogger(__name__)

QUANTILES: Final = (("p01", 0.01), ("p25", 0.25), ("median", 0.5), ("p75", 0.75), ("p99", 0.99))
# Tukey's far-out fence: wide enough that skewed money amounts do not all look odd.
IQR_FENCE: Final = 3.0
QUANTILE_SAMPLE: Final = 1_000_000
TOP_VALUES: Final = 10
TOP_REASONS: Final = 10
JSON_NAME: Final = "quality.json"
MARKDOWN_NAME: Final = "quality.md"


@dataclass
class TableCounts:
    """Row counts of one table through validation. `reasons` counts rows per reason kind."""

    raw: int = 0
    good: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    status: str = "pending"

    @property
    def quarantined_share(self) -> float:
        return self.quarantined / self.raw if self.raw else 0.0

    def add_reasons(self, tally: Mapping[str, int]) -> None:
        for reason, rows in tally.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + int(rows)

    def top_reasons(self, n: int = TOP_REASONS) -> list[tuple[str, int]]:
        return sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _plain(value: Any) -> Any:
    """A JSON-safe scalar: NaN becomes null, times become ISO 8601 text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _aggregate_exprs(table: Table) -> list[tuple[tuple[str, ...], str]]:
    """(where the value goes in the profile, SQL aggregate) for one pass over a table."""
    exprs: list[tuple[tuple[str, ...], str]] = [(("rows",), "count(*)")]
    for col in table.columns:
        c = ident(col.name)
        exprs.append((("missing", col.name), f"count(*) - count({c})"))
        if col.dtype in (FLOAT, INT):
            exprs += [(("numeric", col.name, "min"), f"min({c})")]
            exprs += [(("numeric", col.name, "max"), f"max({c})")]
            exprs += [(("numeric", col.name, "mean"), f"avg({c})")]
        elif col.dtype == TIMESTAMP:
            exprs += [(("timestamps", col.name, "min"), f"min({c})")]
            exprs += [(("timestamps", col.name, "max"), f"max({c})")]
        elif col.dtype == STRING and not col.allowed:
            exprs += [(("identifiers", col.name, "distinct_approx"), f"approx_count_distinct({c})")]
    return exprs


def _nest(into: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = into
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = _plain(value)


def _add_quantiles(con: duckdb.DuckDBPyConnection, source: str, numeric: dict[str, Any]) -> None:
    """Put p01 ... p99 between min and max of each numeric column's summary."""
    if not numeric:
        return
    wanted = "[" + ", ".join(str(q) for _, q in QUANTILES) + "]"
    exprs = ", ".join(f"quantile_cont({ident(n)}, {wanted})" for n in numeric)
    columns = ", ".join(ident(n) for n in numeric)
    row = con.execute(
        f"SELECT {exprs} FROM (SELECT {columns} FROM {source})"  # nosec B608  # identifiers and literals quoted (ident, literal)
        f" USING SAMPLE reservoir({QUANTILE_SAMPLE} ROWS) REPEATABLE (7)"
    ).fetchone()
    for name, values in zip(list(numeric), row or (), strict=True):
        stats = numeric[name]
        keys = [k for k, _ in QUANTILES]
        quantiles = dict(zip(keys, values or [None] * len(keys), strict=True))
        numeric[name] = {
            "min": stats["min"],
            **quantiles,
            "max": stats["max"],
            "mean": stats["mean"],
        }


def _add_outliers(con: duckdb.DuckDBPyConnection, source: str, numeric: dict[str, Any]) -> None:
    """Count values beyond the IQR fences of each numeric column (one more pass)."""
    fences: dict[str, tuple[float, float]] = {}
    for name, stats in numeric.items():
        if stats.get("p25") is None or stats.get("p75") is None:
            stats["outliers"] = 0
            continue
        iqr = stats["p75"] - stats["p25"]
        fences[name] = (stats["p25"] - IQR_FENCE * iqr, stats["p75"] + IQR_FENCE * iqr)
    if not fences:
        return
    counts = [
        f"count(*) FILTER (WHERE {ident(n)} < {lo!r} OR {ident(n)} > {hi!r})"
        for n, (lo, hi) in fences.items()
    ]
    row = con.execute(f"SELECT {', '.join(counts)} FROM {source}").fetchone() or ()  # nosec B608  # identifiers and literals quoted (ident, literal)
    for (name, (lo, hi)), count in zip(fences.items(), row, strict=True):
        numeric[name]["outliers"] = int(count)
        numeric[name]["outlier_fences"] = [lo, hi]


def _top_values(con: duckdb.DuckDBPyConnection, source: str, table: Table) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in table.columns:
        if not col.allowed:
            continue
        c = ident(col.name)
        rows = con.execute(
            f"SELECT {c}, count(*) AS n FROM {source} GROUP BY {c} ORDER BY n DESC, {c} "  # nosec B608  # identifiers and literals quoted (ident, literal)
            f"LIMIT {TOP_VALUES}"
        ).fetchall()
        out[col.name] = [{"value": _plain(v), "rows": int(n)} for v, n in rows]
    return out


def profile_table(con: duckdb.DuckDBPyConnection, good_dir: Path, table: Table) -> dict[str, Any]:
    """Missing values, distributions, outliers, top values and time ranges of a table."""
    source = f"read_parquet({literal(rawio.table_glob(good_dir, table.name))})"
    exprs = _aggregate_exprs(table)
    row = con.execute(f"SELECT {', '.join(sql for _, sql in exprs)} FROM {source}").fetchone()  # nosec B608  # identifiers and literals quoted (ident, literal)
    profile: dict[str, Any] = {
        "rows": 0,
        "missing": {},
        "numeric": {},
        "timestamps": {},
        "identifiers": {},
    }
    for (path, _), value in zip(exprs, row or (), strict=True):
        _nest(profile, path, value)
    rows = profile["rows"] or 0
    profile["missing"] = {
        name: {"count": int(n), "share": n / rows if rows else 0.0}
        for name, n in profile["missing"].items()
    }
    profile["quantiles_sampled"] = rows > QUANTILE_SAMPLE
    _add_quantiles(con, source, profile["numeric"])
    _add_outliers(con, source, profile["numeric"])
    profile["categorical"] = _top_values(con, source, table)
    return profile


def _profiles(good_dir: Path | None, names: Sequence[str]) -> dict[str, Any]:
    """Profiles of the tables that have good parts; a table that cannot be profiled gets None."""
    out: dict[str, Any] = dict.fromkeys(names)
    if good_dir is None:
        return out
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name in names:
            if rawio.has_table(good_dir, name):
                out[name] = profile_table(con, good_dir, TABLES_BY_NAME[name])
    finally:
        con.close()
    return out


def build_report(
    counts: Mapping[str, TableCounts],
    good_dir: Path | None,
    *,
    status: str,
    error: str | None = None,
    max_bad_share: float | None = None,
) -> dict[str, Any]:
    """The quality report as a JSON-ready dict; profiles cover tables with good parts."""
    profiles = _profiles(good_dir, [n for n, c in counts.items() if c.status == "passed"])
    tables = {
        name: {
            "status": c.status,
            "counts": {
                "raw": c.raw,
                "good": c.good,
                "quarantined": c.quarantined,
                "quarantined_share": c.quarantined_share,
            },
            "quarantine_reasons": [{"reason": r, "rows": n} for r, n in c.top_reasons()],
            "profile": profiles.get(name),
        }
        for name, c in counts.items()
    }
    top = sorted(
        ((name, r, n) for name, c in counts.items() for r, n in c.reasons.items()),
        key=lambda t: (-t[2], t[0], t[1]),
    )[:TOP_REASONS]
    return {
        "status": status,
        "error": error,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "max_bad_share": max_bad_share,
        "totals": {
            key: sum(getattr(c, key) for c in counts.values())
            for key in ("raw", "good", "quarantined")
        },
        "tables": tables,
        "top_quarantine_reasons": [{"table": t, "reason": r, "rows": n} for t, r, n in top],
    }


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def _pct(share: float) -> str:
    return f"{share:.2%}"


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _md_overview(report: Mapping[str, Any]) -> list[str]:
    lines = ["# Raw data quality report", ""]
    share = report.get("max_bad_share")
    lines.append(f"Status: **{report['status']}**, generated {report['generated_at']}")
    if share is not None:
        lines[-1] += f", max bad share per table {share:.1%}"
    lines.append("")
    if report.get("error"):
        lines += [f"Error: {report['error']}", ""]
    counts = [
        (name, t["status"], c["raw"], c["good"], c["quarantined"], _pct(c["quarantined_share"]))
        for name, t in report["tables"].items()
        for c in [t["counts"]]
    ]
    lines += ["## Row counts", ""]
    lines += _md_table(("table", "status", "raw", "good", "quarantined", "share"), counts)
    top = [(r["table"], r["reason"], r["rows"]) for r in report["top_quarantine_reasons"]]
    lines += ["## Top quarantine reasons", ""]
    return lines + _md_table(("table", "reason", "rows"), top)


def _md_profile(name: str, profile: Mapping[str, Any]) -> list[str]:
    lines = [f"## {name}", "", f"{profile['rows']:,} good rows.", "", "### Missing values", ""]
    missing = [(c, m["count"], _pct(m["share"])) for c, m in profile["missing"].items()]
    lines += _md_table(("column", "missing", "share"), missing)
    keys = ("min", *(k for k, _ in QUANTILES), "max", "mean", "outliers")
    numeric = [(c, *(s.get(k) for k in keys)) for c, s in profile["numeric"].items()]
    sampled = (
        f" (quantiles from {QUANTILE_SAMPLE:,} sampled rows)"
        if profile["quantiles_sampled"]
        else ""
    )
    lines += [f"### Numeric columns{sampled}", "", *_md_table(("column", *keys), numeric)]
    top = [
        (c, v["value"], v["rows"]) for c, values in profile["categorical"].items() for v in values
    ]
    lines += [
        "### Categorical columns (top values)",
        "",
        *_md_table(("column", "value", "rows"), top),
    ]
    times = [(c, s["min"], s["max"]) for c, s in profile["timestamps"].items()]
    lines += ["### Timestamps", "", *_md_table(("column", "min", "max"), times)]
    ids = [(c, s["distinct_approx"]) for c, s in profile["identifiers"].items()]
    return [*lines, "### Identifiers", "", *_md_table(("column", "distinct (approx.)"), ids)]


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as readable markdown tables."""
    lines = _md_overview(report)
    for name, table in report["tables"].items():
        if table.get("profile"):
            lines += _md_profile(name, table["profile"])
    return "\n".join(lines).rstrip() + "\n"


def write_report(report: Mapping[str, Any], report_dir: Path) -> tuple[Path, Path]:
    """Write quality.json and quality.md into report_dir; return their paths."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = report_dir / JSON_NAME, report_dir / MARKDOWN_NAME
    json_path.write_text(json.dumps(report, indent=2, default=_plain) + "\n")
    md_path.write_text(render_markdown(report))
    log.info("quality report written to %s and %s", json_path, md_path)
    return json_path, md_path


def write_quality_report(
    report_dir: Path,
    counts: Mapping[str, TableCounts],
    good_dir: Path | None,
    *,
    status: str,
    error: str | None = None,
    max_bad_share: float | None = None,
) -> dict[str, Any]:
    """Build the report on the good rows under good_dir and write it; return the report."""
    report = build_report(counts, good_dir, status=status, error=error, max_bad_share=max_bad_share)
    write_report(report, report_dir)
    return report
