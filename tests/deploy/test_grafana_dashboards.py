"""The Grafana files in deploy/grafana, checked without Grafana (none runs here): each
dashboard against a JSON schema of what Grafana needs, then what a schema cannot say
(unique panel ids, panels that fit the grid and do not overlap, data source uids that the
provisioning defines, variables that exist), and the provisioning wired the way the compose
file mounts it. That every query returns data is tests/deploy/test_monitoring_stack.py's."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.deploy import dashboards

pytestmark = pytest.mark.unit

SCHEMA = Path(__file__).with_name("grafana_dashboard.schema.json")
GRID_COLUMNS = 24
FILES = dashboards.dashboard_files()


def _provisioned_datasources() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted((dashboards.PROVISIONING_DIR / "datasources").glob("*.y*ml")):
        found += yaml.safe_load(path.read_text()).get("datasources", [])
    return found


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return data


def _mounts(service: str) -> dict[str, str]:
    """Container path -> host path of the service's bind mounts."""
    out = {}
    for volume in _compose()["services"][service]["volumes"]:
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            out[target] = source
    return out


def _datasource_refs(node: Any) -> list[dict[str, Any]]:
    """Every {type, uid} data source reference anywhere in the dashboard."""
    if isinstance(node, dict):
        found = [node["datasource"]] if isinstance(node.get("datasource"), dict) else []
        return found + [r for v in node.values() for r in _datasource_refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _datasource_refs(v)]
    return []


def test_there_are_dashboards_to_check() -> None:
    assert FILES, f"no dashboard JSON in {dashboards.DASHBOARD_DIR}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_dashboard_matches_the_schema(path: Path) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(dashboards.load(path)),
        key=lambda e: list(e.absolute_path),
    )
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_panel_ids_are_unique_and_refids_unique_per_panel(path: Path) -> None:
    panels = list(dashboards.panels(dashboards.load(path)))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"repeated panel ids: {sorted(ids)}"
    for panel in panels:
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), f"panel {panel['id']}: repeated refIds {refs}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_panels_fit_the_grid_without_overlap(path: Path) -> None:
    top = dashboards.load(path)["panels"]  # nested panels of collapsed rows are laid out apart
    for panel in top:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= GRID_COLUMNS, f"panel {panel['id']} is wider than the grid"

    def cells(p: dict[str, Any]) -> set[tuple[int, int]]:
        g = p["gridPos"]
        return {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }

    for a, b in itertools.combinations(top, 2):
        assert not cells(a) & cells(b), f"panels {a['id']} and {b['id']} overlap"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_datasource_is_one_the_provisioning_defines(path: Path) -> None:
    dashboard = dashboards.load(path)
    provisioned = {d["uid"]: d["type"] for d in _provisioned_datasources()}
    variables = dashboards.variables(dashboard)
    refs = _datasource_refs(dashboard)
    assert refs
    for ref in refs:
        if ref["type"] == "grafana":  # the built-in annotation source
            assert ref["uid"] == "-- Grafana --"
            continue
        uid = ref["uid"]
        names = dashboards.referenced(uid)
        if names:
            # a data source variable: of the same plugin type, defaulting to a provisioned uid
            (name,) = names
            variable = variables[name]
            assert variable["type"] == "datasource" and variable["query"] == ref["type"]
            uid = variable["current"]["value"]
        assert provisioned.get(uid) == ref["type"], f"data source {ref} is not provisioned"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_queries_use_only_defined_variables(path: Path) -> None:
    dashboard = dashboards.load(path)
    defined = set(dashboards.variables(dashboard)) | set(dashboards.BUILTINS)
    for query in dashboards.queries(dashboard):
        unknown = dashboards.referenced(query.expr) - defined
        assert not unknown, f"{query.name} uses undefined {sorted(unknown)}"
    for variable in dashboards.variables(dashboard).values():
        if variable["type"] == "query":
            metric, label = dashboards.label_values_query(variable)
            assert label and metric, f"variable {variable['name']} has no metric to ask"


def test_dashboard_uids_are_unique() -> None:
    uids = [dashboards.load(p)["uid"] for p in FILES]
    assert len(uids) == len(set(uids)), uids


def test_provisioning_matches_the_compose_mounts() -> None:
    sources = _provisioned_datasources()
    assert sum(bool(d.get("isDefault")) for d in sources) == 1
    assert len({d["uid"] for d in sources}) == len(sources)
    mounts = _mounts("grafana")
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    # the dashboard provider reads the folder compose mounts the dashboards into
    provider_file = dashboards.PROVISIONING_DIR / "dashboards" / "dashboards.yml"
    (provider,) = yaml.safe_load(provider_file.read_text())["providers"]
    folder = provider["options"]["path"]
    assert mounts[folder] == "./deploy/grafana/dashboards"
    # the home dashboard compose names is one of ours
    home = _compose()["services"]["grafana"]["environment"][
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    ]
    assert Path(home).parent.as_posix() == folder
    assert (dashboards.DASHBOARD_DIR / Path(home).name).is_file()
    # the data source points at the compose service Prometheus listens on
    prometheus = next(d for d in sources if d["type"] == "prometheus")
    assert prometheus["url"] == "http://prometheus:9090"
    assert "prometheus" in _compose()["services"]
