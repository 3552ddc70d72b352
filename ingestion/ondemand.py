"""A feature service's on-demand views applied to an online read, without Feast's round trip.

Feast's get_online_features runs a pandas on-demand view by turning the whole response into
an Arrow table, then a DataFrame, calling the function, and converting back: 3.4 ms for one
account, against 0.6 ms for reading the three feature views (benchmarks/online_latency.py).
Here the scorer reads the views with Feast and calls the *registered* view's own
transformation (the function stored in the Feast registry, the one offline retrieval runs)
on a frame of just its inputs. Same function, same inputs, so the same numbers: the serving
parity tests hold it to get_historical_features.

Only views this can reproduce exactly are taken over: pandas mode, no aggregations, not
written to the online store. For any other service `for_service` returns None and the scorer
lets Feast do the whole read.
"""

from __future__ import annotations

import ast
import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore, OnDemandFeatureView


@dataclass(frozen=True)
class _View:
    # The registered view's transformation (Feast's PandasTransformation.transform).
    transform: Callable[[pd.DataFrame], pd.DataFrame]
    # Input column name -> where its value comes from: a full feature name or a request field.
    inputs: dict[str, str]
    # Output column of the function -> the full name the service returns it under.
    outputs: dict[str, str]


@dataclass(frozen=True)
class OnDemandPlan:
    """What to read from the feature views, and how to add the on-demand features."""

    refs: list[str]  # feature references to read ("view:feature"), sources included
    returned: frozenset[str]  # full names the service itself returns
    views: tuple[_View, ...]

    def apply(self, values: dict[str, list[Any]], request: dict[str, list[Any]]) -> None:
        """Add each on-demand view's features to `values` (full names, in place); the
        source features only the views needed are dropped again."""
        if len(next(iter(values.values()), [])) == 0:  # lists or numpy arrays
            return
        columns = {**values, **request}
        for view in self.views:
            frame = pd.DataFrame({name: columns[src] for name, src in view.inputs.items()})
            out = view.transform(frame)
            for column, full in view.outputs.items():
                values[full] = [_feast_value(v) for v in out[column].tolist()]
        for name in [n for n in values if _only_an_input(n, self.returned)]:
            del values[name]


def for_service(store: FeatureStore, service: FeatureService) -> OnDemandPlan | None:
    """The plan for `service`, or None when one of its on-demand views needs Feast itself."""
    names = {v.name for v in store.list_on_demand_feature_views()}
    refs: dict[str, None] = {}
    returned: set[str] = set()
    views = []
    for projection in service.feature_view_projections:
        if projection.name not in names:
            for feature in projection.features:
                refs[f"{projection.name}:{feature.name}"] = None
                returned.add(f"{projection.name_to_use()}__{feature.name}")
            continue
        odfv = store.get_on_demand_feature_view(projection.name)
        if not _reproducible(odfv):
            return None
        view = _plan_view(odfv, [f.name for f in projection.features], projection.name_to_use())
        for src in view.inputs.values():
            if "__" in src:
                refs[src.replace("__", ":", 1)] = None
        returned.update(view.outputs.values())
        views.append(view)
    return OnDemandPlan(list(refs), frozenset(returned), tuple(views))


def _reproducible(odfv: OnDemandFeatureView) -> bool:
    return (
        odfv.mode == "pandas"
        and not odfv.aggregations
        and not odfv.write_to_online_store
        and odfv.feature_transformation is not None
    )


def _plan_view(odfv: OnDemandFeatureView, features: Sequence[str], prefix: str) -> _View:
    # Feast hands a pandas view each source feature under its short and its full name.
    inputs: dict[str, str] = {}
    for source in odfv.source_feature_view_projections.values():
        for feature in source.features:
            full = f"{source.name_to_use()}__{feature.name}"
            inputs[feature.name] = full
            inputs[full] = full
    for request_source in odfv.source_request_sources.values():
        for field in request_source.schema:
            inputs[field.name] = field.name
    transformation = odfv.feature_transformation
    if transformation is None:  # _reproducible() ruled this out
        raise ValueError(f"on-demand view {odfv.name} has no transformation")
    read = columns_read(transformation.udf_string or "")
    if read is not None and read <= inputs.keys():
        # Building a frame costs per column: give the function only what it reads.
        inputs = {name: inputs[name] for name in inputs if name in read}
    return _View(transformation.transform, inputs, {n: f"{prefix}__{n}" for n in features})


def columns_read(source: str) -> set[str] | None:
    """The columns a transformation reads from its input frame, from its source: each use
    of the parameter must be `param["constant"]` or `param.index`; anything else (a
    variable key, passing the frame on, iterating it) gives None, meaning "all of them"."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return None
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if len(functions) != 1 or len(functions[0].args.args) != 1:
        return None
    param = functions[0].args.args[0].arg
    parents = {id(c): n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
    read: set[str] = set()
    for node in ast.walk(functions[0]):
        if not (isinstance(node, ast.Name) and node.id == param):
            continue
        parent = parents.get(id(node))
        if isinstance(parent, ast.Attribute) and parent.attr == "index":
            continue
        key = parent.slice if isinstance(parent, ast.Subscript) else None
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            return None
        read.add(key.value)
    return read


def _only_an_input(name: str, returned: frozenset[str]) -> bool:
    feature = name.removesuffix("__ts")
    return "__" in feature and feature not in returned


def _feast_value(value: Any) -> Any:
    # Feast's round trip through Arrow turns a float NaN into null: keep that.
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
