"""The console's reads that need I/O: one account scored the API's way, a version's SHAP
sample and decision views (PD, ICE, decision maps), its evaluation report and model card,
the store's materialisation record.

Thin adapters over the other packages' public functions; the only thing written here that
could live elsewhere is `evaluation_report` (training.registry downloads the report only
privately, for the model card): a candidate for a public registry function.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from admin_app.logic.explain import by_source
from collectwise.errors import NotFoundError

if TYPE_CHECKING:
    from admin_app.backends import Backends
    from serving.model_set import ServedModel
    from serving.scoring import Scored
    from training.inspection import DecisionMap, FeatureCurves
    from training.scoring_model import ScoringModel

log = logging.getLogger(__name__)

SHAP_SAMPLE = 600
# Reference rows the decision views average over: PD costs a prediction per row per grid point.
DECISION_ROWS = 500


class NotFound(NotFoundError, LookupError):  # noqa: N818 - reads as the condition
    """The account or the artefact asked for does not exist."""


@dataclass(frozen=True)
class Lookup:
    """One account scored by the champion, with every feature's contribution."""

    scored: Scored
    served: ServedModel
    x: pd.Series
    contributions: pd.Series
    base_value: float


def lookup(b: Backends, account_id: str, income: float | None = None) -> Lookup:
    """Online features -> serving.scoring.score_rows, exactly as POST /v1/score does."""
    from serving.scoring import score_rows  # noqa: PLC0415
    from training.model_matrix import column_sources, model_matrix  # noqa: PLC0415

    service = b.service()
    models = service.watcher.current
    served = models.require_champion()
    rows = service.online.read([account_id], datetime.now(UTC), income)
    known = [r for r in rows if r.known]
    if not known:
        raise NotFound(f"account {account_id!r} has no features in the online store")
    scored = score_rows(known, models, service.options)[0]
    x = model_matrix(pd.DataFrame([known[0].features]))
    raw = served.contributions(x)
    if raw is None or served.explainer is None:
        contributions, base = pd.Series(dtype=float), float("nan")
    else:
        sources = column_sources(served.model.feature_service)
        contributions, base = by_source(raw.iloc[0], sources), served.explainer.base_value
    return Lookup(scored, scored.served, x.iloc[0], contributions, base)


@dataclass(frozen=True)
class ShapSample:
    """A version's reference rows as the model sees them, with their SHAP values."""

    version: int
    x: pd.DataFrame
    shap: pd.DataFrame
    base_value: float


def shap_sample(b: Backends, version: int) -> ShapSample:
    """Cached per version: a registered version never changes."""
    return b.cached(f"shap:{version}", lambda: _shap_sample(b, version))


def _shap_sample(b: Backends, version: int) -> ShapSample:
    from training.explain import explain_rows  # noqa: PLC0415
    from training.model_matrix import model_matrix  # noqa: PLC0415
    from training.registry import load_reference  # noqa: PLC0415

    reference = load_reference(version, client=b.mlflow())
    if len(reference) > SHAP_SAMPLE:
        reference = reference.sample(n=SHAP_SAMPLE, random_state=0)
    model = loaded_model(b, version).model
    x = model_matrix(reference.reset_index(drop=True), model.feature_service)
    x = x.loc[:, model.feature_columns]
    shap = explain_rows(model.estimator, x, background=x)
    return ShapSample(version, x, shap, float(shap.attrs.get("base_value", float("nan"))))


def loaded_model(b: Backends, version: int) -> Any:
    from training.registry import load_version  # noqa: PLC0415

    return b.cached(f"model:{version}", lambda: load_version(version, client=b.mlflow()))


def reference_matrix(b: Backends, version: int) -> pd.DataFrame:
    """The version's whole reference as a model matrix (counterfactual grids)."""

    def make() -> pd.DataFrame:
        from training.model_matrix import model_matrix  # noqa: PLC0415
        from training.registry import load_reference  # noqa: PLC0415

        return model_matrix(load_reference(version, client=b.mlflow()))

    return b.cached(f"reference:{version}", make)


def evaluation_report(b: Backends, version: int) -> dict[str, Any] | None:
    """The version's evaluation report (report_json/*.json of its run), or None."""
    from training.registry import evaluation_report as logged_report  # noqa: PLC0415

    return logged_report(version, client=b.mlflow())


def latest_fairness(b: Backends, versions: list[int]) -> tuple[int, dict[str, Any]] | None:
    """The newest version (of `versions`, newest first) whose report has a fairness table."""
    for version in versions:
        report = b.cached(f"report:{version}", partial(evaluation_report, b, version))
        fairness = (report or {}).get("fairness") or {}
        if fairness.get("attributes"):
            return version, fairness
    return None


def model_card(b: Backends, version: int) -> str:
    from training.registry import card_for_version  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="collectwise-card-") as tmp:
        path = card_for_version(version, Path(tmp) / "card.html", client=b.mlflow())
        return path.read_text(encoding="utf-8")


def materialisations(b: Backends) -> list[tuple[str, list[tuple[datetime, datetime]]]]:
    """(view, [(start, end), ...]) from the Feast registry's record of materialisations."""
    store = b.store()
    return [
        (view.name, [(i[0], i[1]) for i in view.materialization_intervals])
        for view in store.list_feature_views()
    ]


@dataclass(frozen=True)
class DecisionBasis:
    """What a version's decision views are computed from: its model, a fixed sample of its
    reference rows as the model sees them, and its columns ranked by mean |SHAP|."""

    version: int
    model: ScoringModel
    x: pd.DataFrame
    importance: pd.Series
    constraints: dict[str, int]


def decision_basis(b: Backends, version: int) -> DecisionBasis:
    """Cached per version. The rows are drawn from the SHAP sample's (itself a fixed sample
    of the reference), so the views and the importance ranking read the same accounts."""

    def make() -> DecisionBasis:
        from admin_app.logic.explain import importance_from_shap  # noqa: PLC0415
        from training.inspection import enforced_constraints, sample_rows  # noqa: PLC0415

        sample = shap_sample(b, version)
        model = loaded_model(b, version).model
        x = sample_rows(sample.x, DECISION_ROWS)
        importance = importance_from_shap(sample.shap)
        return DecisionBasis(version, model, x, importance, enforced_constraints(model))

    return b.cached(f"decisions:{version}", make)


def decision_curves(b: Backends, version: int, column: str) -> FeatureCurves:
    """PD and ICE of one column, cached per version and column (a larger k adds, never redoes)."""

    def make() -> FeatureCurves:
        from training.inspection import feature_curves  # noqa: PLC0415

        basis = decision_basis(b, version)
        started = time.perf_counter()
        curves = feature_curves(basis.model, basis.x, column, constraints=basis.constraints)
        log.info("PD/ICE of v%d %s over %d rows: %.2f s", version, column, len(basis.x),
                 time.perf_counter() - started)  # fmt: skip
        return curves

    return b.cached(f"pd:{version}:{column}", make)


def decision_map(b: Backends, version: int, x_column: str, y_column: str) -> DecisionMap:
    """The two-feature decision map, cached per version and pair."""

    def make() -> DecisionMap:
        from training.inspection import decision_map as pd_map  # noqa: PLC0415

        basis = decision_basis(b, version)
        started = time.perf_counter()
        result = pd_map(basis.model, basis.x, x_column, y_column)
        log.info("decision map of v%d %s x %s over %d rows: %.2f s", version, x_column, y_column,
                 len(basis.x), time.perf_counter() - started)  # fmt: skip
        return result

    return b.cached(f"map:{version}:{x_column}:{y_column}", make)
