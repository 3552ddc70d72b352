"""The import graph follows the layers of DESIGN.md and has no cycle.

Layers, bottom up: the core (collectwise.settings, collectwise.errors) -> feature_repo ->
ingestion -> training -> serving, monitoring -> admin_app -> the `collectwise` console
script (every other module of the collectwise package), the composition root. A module may
import its own layer or any layer below. Every import statement counts, including those
under TYPE_CHECKING and inside functions: a cycle through an annotation is still a cycle a
reader has to untangle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("collectwise", "feature_repo", "ingestion", "training", "serving", "monitoring",
            "admin_app")  # fmt: skip
CORE = {"collectwise.settings", "collectwise.errors"}
# What each layer may import besides itself.
ALLOWED = {
    "core": set(),
    "feature_repo": {"core"},
    "ingestion": {"core", "feature_repo"},
    "training": {"core", "feature_repo", "ingestion"},
    "serving": {"core", "feature_repo", "ingestion", "training"},
    "monitoring": {"core", "feature_repo", "ingestion", "training"},
    "admin_app": {"core", "feature_repo", "ingestion", "training", "serving", "monitoring"},
    "cli": {"core", "feature_repo", "ingestion", "training", "serving", "monitoring",
            "admin_app"},
}  # fmt: skip


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def _edges() -> dict[str, set[str]]:
    return {
        name: {t for t in _imports(path) if t in MODULES and t != name}
        for name, path in MODULES.items()
    }


def layer(module: str) -> str:
    if module in CORE:
        return "core"
    top = module.split(".", maxsplit=1)[0]
    return "cli" if top == "collectwise" else top


def test_no_import_goes_against_the_layers() -> None:
    against = sorted(
        f"{a} -> {b}"
        for a, targets in _edges().items()
        for b in targets
        if layer(b) != layer(a) and layer(b) not in ALLOWED[layer(a)]
    )
    assert against == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import one another, directly or through others."""
    graph = nx.DiGraph([(a, b) for a, targets in edges.items() for b in targets])
    return sorted(sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1)


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back_through_others() -> None:
    assert _cycles(_edges()) == []
