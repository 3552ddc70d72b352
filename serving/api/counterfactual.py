"""POST /v1/counterfactual: what would lower this account's band.

The console's search (training.counterfactual), run by the scorer on the model that answers
the account's scores: the fewest, smallest changes of actionable features, over values real
training accounts have, that bring the probability under the next band's cutoff.

A search scores up to counterfactual_rounds x 8 features x 19 values rows, far more than a
score, so its work is bounded by settings and it runs inside an admission place like any
score. The training reference it searches over is read from the registry once per version.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from fastapi import APIRouter

from serving.api.deps import AUTH_RESPONSES, BODY_ERRORS, ExplainCaller, ServiceDep
from serving.api.score import (
    NOT_FOUND,
    UNAVAILABLE,
    score_event,
    score_one,
)
from serving.errors import NoCounterfactualError
from serving.model_set import ServedModel
from serving.runtime import Service
from serving.schemas import (
    CounterfactualRequest,
    CounterfactualResponse,
    ErrorBody,
    FeatureChange,
    ModelRef,
)
from serving.scoring import Scored
from training.counterfactual import (
    BandGoal,
    Counterfactual,
    Space,
    actionable_space,
    find_counterfactual,
    lower_band_goal,
)
from training.model_matrix import column_sources, model_matrix, records_matrix
from training.reason_codes import reason_for
from training.registry import load_reference

log = logging.getLogger(__name__)

ROUTE = "/v1/counterfactual"

router = APIRouter(prefix="/v1", tags=["explanations"], responses=AUTH_RESPONSES)

NO_COUNTERFACTUAL: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorBody,
        "description": "no lower band to reach (no_counterfactual), or the version has no "
        "training reference to search over (registry)",
    }
}


@router.post(
    "/counterfactual",
    response_model=CounterfactualResponse,
    responses={**BODY_ERRORS, **NOT_FOUND, **NO_COUNTERFACTUAL, **UNAVAILABLE},
)
def counterfactual(
    body: CounterfactualRequest, service: ServiceDep, caller: ExplainCaller
) -> CounterfactualResponse:
    """The smallest change of actionable features found that lowers the account's band by
    one; the other features held fixed. The model's view, not a promise about the account."""
    started = time.perf_counter()
    scored, when = _score(service, body)
    goal = lower_band_goal(scored.band, scored.served.model.low_max, scored.served.model.medium_max)
    result = _search(service, scored, goal) if goal is not None else None
    request_id, now = uuid.uuid4().hex, datetime.now(UTC)
    # Recorded whatever the outcome: even a refusal tells the caller the account's band.
    latency_ms = (time.perf_counter() - started) * 1000.0
    if service.recorder is not None:
        event = score_event(scored, request_id, ROUTE, caller.name, when, now, latency_ms)
        service.recorder.record([event])
    if goal is None or result is None:
        raise NoCounterfactualError(
            f"account {body.account_id!r} is in the lowest band ({scored.band}) already"
        )
    if not result.found:
        raise NoCounterfactualError(
            f"account {body.account_id!r} ({scored.band}): {result.message} "
            f"to get under {goal.cutoff:.4f} ({goal.target_band})"
        )
    return _response(scored, goal, result, request_id)


def _score(service: Service, body: CounterfactualRequest) -> tuple[Scored, datetime]:
    """The account read and scored as POST /v1/score does it (same model, same checks)."""
    models = service.watcher.current
    models.require_champion()
    when = body.as_of or datetime.now(UTC)
    options = replace(service.options, reasons=0)
    income = body.reported_monthly_income
    return score_one(service, models, body.account_id, when, income, options), when


def _search(service: Service, scored: Scored, goal: BandGoal) -> Counterfactual:
    model = scored.served.model
    # Read before taking a place: the first request of a version waits for the registry.
    space = _space(scored.served)
    x = records_matrix([scored.row.features], model.feature_service).iloc[0]
    x = x.reindex(model.feature_columns)
    with service.admission.place():
        return find_counterfactual(
            x,
            model.predict_proba,
            goal.cutoff,
            space,
            max_changes=service.settings.counterfactual_changes,
            max_rounds=service.settings.counterfactual_rounds,
        )


def _space(served: ServedModel) -> Space:
    meta = served.loaded.meta
    return _reference_space(
        meta.run_id or "",
        meta.version,
        tuple(served.model.feature_columns),
        served.model.feature_service,
    )


@lru_cache(maxsize=8)
def _reference_space(
    run_id: str, version: int, columns: tuple[str, ...], feature_service: str
) -> Space:
    # Keyed by run id too: a version number means another model in another registry.
    reference = model_matrix(load_reference(version), feature_service)
    log.info("counterfactual space of version %s from %d reference rows", version, len(reference))
    return actionable_space(reference, columns)


def _response(
    scored: Scored, goal: BandGoal, result: Counterfactual, request_id: str
) -> CounterfactualResponse:
    served = scored.served
    sources = column_sources(served.model.feature_service)
    changes = [
        FeatureChange(
            code=reason_for(sources.get(c.feature, c.feature)).code,
            feature=c.feature,
            before=c.before if math.isfinite(c.before) else None,
            after=c.after,
            percentile_before=round(100 * c.rank_before, 2),
            percentile_after=round(100 * c.rank_after, 2),
        )
        for c in result.changes
    ]
    return CounterfactualResponse(
        request_id=request_id,
        account_id=scored.row.account_id,
        model=ModelRef(name=served.name, version=served.version, alias=served.alias),
        probability=scored.probability,
        band=scored.band,
        target_band=goal.target_band,
        cutoff=goal.cutoff,
        probability_after=result.probability_after,
        band_after=served.model.band(result.probability_after),
        changes=changes,
        cost=result.cost,
        message=result.message,
    )
