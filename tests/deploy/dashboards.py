"""The Grafana dashboards in deploy/grafana as the tests read them: panels (rows' nested
panels included), their PromQL targets, and template variables expanded the way Grafana
expands them for a Prometheus data source."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT

GRAFANA_DIR = REPO_ROOT / "deploy" / "grafana"
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"
PROVISIONING_DIR = GRAFANA_DIR / "provisioning"

# Grafana's built-in variables, given the values it would use for a 6-hour view of data
# scraped every 15 s (the data source's timeInterval).
BUILTINS = {
    "__interval": "15s",
    "__interval_ms": "15000",
    "__rate_interval": "1m",
    "__range": "6h",
    "__range_s": "21600",
    "__range_ms": "21600000",
}
# $var, ${var}, ${var:format} and the deprecated [[var]].
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
LABEL_VALUES = re.compile(r"^label_values\(\s*(?:(?P<metric>[^,]+?)\s*,\s*)?(?P<label>\w+)\s*\)$")
# What Grafana escapes in a variable's value used inside a Prometheus regex matcher.
REGEX_SPECIALS = re.compile(r"[\\^$.|?*+()\[\]{}]")


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel_id: int
    panel_title: str
    ref_id: str
    expr: str
    instant: bool

    @property
    def name(self) -> str:
        return f"{self.dashboard} panel {self.panel_id} '{self.panel_title}' {self.ref_id}"


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: Mapping[str, Any]) -> list[Query]:
    """The PromQL targets of every panel (a row has none)."""
    return [
        Query(
            dashboard["uid"],
            panel["id"],
            panel.get("title", ""),
            target["refId"],
            target["expr"],
            bool(target.get("instant")) and not target.get("range"),
        )
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def variables(dashboard: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def referenced(text: str) -> set[str]:
    """The variable names a query or field uses."""
    return {next(g for g in m.groups() if g) for m in VARIABLE.finditer(text)}


def label_values_query(variable: Mapping[str, Any]) -> tuple[str | None, str]:
    """(metric or None, label) of a `label_values(...)` query variable."""
    query = variable.get("query")
    text = query.get("query", "") if isinstance(query, Mapping) else str(query or "")
    found = LABEL_VALUES.match(text.strip() or str(variable.get("definition", "")).strip())
    if not found:
        raise ValueError(f"variable {variable['name']}: only label_values() queries are handled")
    return found["metric"], found["label"]


def regex_escape(value: str) -> str:
    # Inside a PromQL string a regex backslash is written twice.
    return REGEX_SPECIALS.sub(lambda m: "\\\\" + m.group(0), value)


def choices(variable: Mapping[str, Any], values: Sequence[str]) -> list[str]:
    """What a query variable can stand for: each value alone, and All where offered (its
    allValue, else every value as one alternation, as Grafana does)."""
    escaped = [regex_escape(v) for v in values]
    out = list(escaped)
    if variable.get("includeAll"):
        out.append(variable.get("allValue") or "(" + "|".join(escaped) + ")")
    return out


def expansions(
    query: Query,
    dashboard: Mapping[str, Any],
    values_of: Callable[[str | None, str], list[str]],
) -> list[str]:
    """The query once for every combination of its variables' choices; values_of(metric,
    label) answers a label_values() variable from the data source."""
    defined = variables(dashboard)
    names = sorted(referenced(query.expr) - set(BUILTINS))
    unknown = [n for n in names if n not in defined]
    if unknown:
        raise ValueError(f"{query.name} uses undefined variables {unknown}")
    options: list[list[str]] = []
    for name in names:
        variable = defined[name]
        if variable.get("type") != "query":
            raise ValueError(f"{query.name}: variable {name} of type {variable.get('type')}")
        found = values_of(*label_values_query(variable))
        if not found:
            raise ValueError(f"{query.name}: variable {name} has no values")
        options.append(choices(variable, found))
    return [
        substitute(query.expr, dict(zip(names, combo, strict=True)))
        for combo in itertools.product(*options)
    ]


def substitute(text: str, values: Mapping[str, str]) -> str:
    table = {**BUILTINS, **values}
    return VARIABLE.sub(lambda m: table[next(g for g in m.groups() if g)], text)
