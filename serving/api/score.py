"""POST /v1/score and /v1/score/batch."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel

from serving.api.deps import AUTH_RESPONSES, BODY_ERRORS, ScoreCaller, ServiceDep
from serving.auth import Caller, RateLimitedError
from serving.errors import ModelFailedError, StaleFeaturesError, UnknownAccountError, invalid
from serving.events import ScoreEvent
from serving.model_set import ModelSet, ServedModel
from serving.online import OnlineRow
from serving.runtime import Service
from serving.schemas import (
    BatchError,
    BatchRequest,
    BatchResponse,
    BatchResult,
    ErrorBody,
    ModelRef,
    ReasonCode,
    ScoreRequest,
    ScoreResponse,
)
from serving.scoring import Scored, ScoringOptions, score_rows

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["scoring"], responses=AUTH_RESPONSES)

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "the account has no online features"}
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorBody,
        "description": "store or model unavailable, or the scorer busy (Retry-After set)",
    },
    500: {"model": ErrorBody, "description": "the served model raised (model_failed)"},
}


@router.post(
    "/score", response_model=ScoreResponse, responses={**BODY_ERRORS, **NOT_FOUND, **UNAVAILABLE}
)
def score(body: ScoreRequest, service: ServiceDep, caller: ScoreCaller) -> Response:
    """Score one account: probability, band, decision, reasons and the model behind them."""
    started = time.perf_counter()
    models = service.watcher.current  # taken once: the request ends on the model it began with
    models.require_champion()
    when = body.as_of or datetime.now(UTC)
    options = service.options if body.explain else replace(service.options, reasons=0)
    scored = score_one(
        service, models, body.account_id, when, body.reported_monthly_income, options
    )
    request_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    _record(service, models, [scored], request_id, "/v1/score", caller.name, when, now, started)
    return json_response(ScoreResponse(**_answer(scored, request_id, now)))


@router.post("/score/batch", response_model=BatchResponse, responses={**BODY_ERRORS, **UNAVAILABLE})
def score_batch(body: BatchRequest, service: ServiceDep, caller: ScoreCaller) -> Response:
    """Score up to serving.max_batch accounts (default 1,000) in one batched online read.

    Results and errors carry each account's position in the request; an account that is
    listed twice with the same income is read and scored once. Each account costs one
    request of the key's rate limit.
    """
    started = time.perf_counter()
    _admit(service, caller, len(body.accounts))
    models = service.watcher.current
    models.require_champion()
    when = body.as_of or datetime.now(UTC)
    pairs = list(dict.fromkeys((i.account_id, i.reported_monthly_income) for i in body.accounts))
    with service.admission.place():
        rows = service.online.read([a for a, _ in pairs], when, [income for _, income in pairs])
        refused = {pair: _refusal(row, when) for pair, row in zip(pairs, rows, strict=True)}
        fit = [row for pair, row in zip(pairs, rows, strict=True) if refused[pair] is None]
        check_fresh(service, fit)
        options = service.options if body.explain else replace(service.options, reasons=0)
        scored = scored_rows(service, fit, models, options)
    request_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    _record(service, models, scored, request_id, "/v1/score/batch", caller.name, when, now, started)
    by_pair = {(s.row.account_id, s.row.reported_income): s for s in scored}
    response = BatchResponse(request_id=request_id, results=[], errors=[])
    for index, item in enumerate(body.accounts):
        pair = (item.account_id, item.reported_monthly_income)
        if pair in by_pair:
            answer = _answer(by_pair[pair], request_id, now)
            response.results.append(BatchResult(index=index, **answer))
        else:
            status, detail = refused[pair] or (500, "not scored")
            response.errors.append(BatchError(index=index, account_id=item.account_id,
                                              status=status, detail=detail))  # fmt: skip
    return json_response(response)


def json_response(answer: BaseModel) -> Response:
    """The answer as JSON bytes, validated once (when it was built). Returned as a Response,
    FastAPI skips its own response-model pass, which for a `def` route validates the answer
    again on a second thread-pool hand-over; response_model still documents the route."""
    return Response(answer.model_dump_json(), media_type="application/json")


def _admit(service: Service, caller: Caller, accounts: int) -> None:
    """The batch-size bound of this deployment, and the rate limit charged per account."""
    limit = service.settings.max_batch
    if accounts > limit:
        raise invalid(
            "accounts",
            f"a batch holds at most {limit} accounts (serving.max_batch), not {accounts}",
            "too_long",
        )
    per_minute = service.limiter.per_minute(caller.rate_per_minute)
    if accounts > per_minute:
        raise RateLimitedError(
            60,
            f"a batch of {accounts} accounts costs more than the key's {per_minute} requests "
            "per minute: send smaller batches",
        )
    # The route's dependency already charged the request itself.
    service.limiter.take(caller.name, caller.rate_per_minute, cost=accounts - 1)


def score_one(
    service: Service,
    models: ModelSet,
    account_id: str,
    when: datetime,
    income: float | None,
    options: ScoringOptions,
) -> Scored:
    """One account read and scored inside an admission place, or refused: unknown (404),
    features recorded after `when` (422), stale under the refuse policy (503)."""
    with service.admission.place():
        row = service.online.read([account_id], when, income)[0]
        if not row.known:
            raise UnknownAccountError(account_id)
        problem = features_after(row, when)
        if problem:
            raise invalid("as_of", problem, "as_of_before_features")
        check_fresh(service, [row])
        return scored_rows(service, [row], models, options)[0]


def _refusal(row: OnlineRow, when: datetime) -> tuple[int, str] | None:
    if not row.known:
        return 404, str(UnknownAccountError(row.account_id))
    problem = features_after(row, when)
    return (422, problem) if problem else None


def features_after(row: OnlineRow, when: datetime) -> str | None:
    """Why a row cannot be scored at `when`: the online store holds only the newest snapshot,
    and features recorded after the scoring moment would leak the future into the score."""
    later = {view: seen for view, seen in row.as_of.items() if seen is not None and seen > when}
    if not later:
        return None
    view, seen = min(later.items(), key=lambda kv: kv[1])
    return (
        f"as_of {when:%Y-%m-%d %H:%M} is before the online features of {view} "
        f"({seen:%Y-%m-%d %H:%M}); the online store holds only the latest snapshot, so "
        "score past moments from offline features (`collectwise score-batch`)"
    )


def check_fresh(service: Service, rows: Sequence[OnlineRow]) -> None:
    stale = sorted({v for r in rows for v in r.stale_views})
    if stale and service.settings.stale_policy == "refuse":
        raise StaleFeaturesError(
            f"features older than their TTL in {', '.join(stale)}: refusing to score "
            "(COLLECTWISE_SERVING__STALE_POLICY=refuse)"
        )


def scored_rows(
    service: Service, rows: Sequence[OnlineRow], models: ModelSet, options: ScoringOptions
) -> list[Scored]:
    """score_rows, with a model that raised counted against its version (its probation)."""
    try:
        return score_rows(rows, models, options, partial(_challenger_failed, service))
    except Exception as exc:
        champion = models.require_champion()
        _count(service, champion, "error")
        log.exception("%s v%s raised while scoring", champion.name, champion.version)
        raise ModelFailedError(champion.name, champion.version, exc) from exc


def _challenger_failed(service: Service, challenger: ServedModel, exc: Exception) -> None:
    _count(service, challenger, "error")
    log.warning("%s v%s (%s) raised; its rows were answered by the champion: %s",
                challenger.name, challenger.version, challenger.alias, exc)  # fmt: skip


def _count(service: Service, served: ServedModel, outcome: str) -> None:
    """One request answered (ok) or failed (error) by this model version, for its probation."""
    service.metrics.model_requests.labels(served.alias, str(served.version), outcome).inc()


def _answer(s: Scored, request_id: str, now: datetime) -> dict[str, Any]:
    """ScoreResponse's fields for one scored account (BatchResult adds its index)."""
    return {
        "request_id": request_id,
        "account_id": s.row.account_id,
        "probability": s.probability,
        "band": s.band,
        "decision": s.decision,
        "threshold": s.served.model.threshold,
        "model": ModelRef(name=s.served.name, version=s.served.version, alias=s.served.alias),
        "reasons": [ReasonCode(**vars(r)) for r in s.reasons],
        "features_as_of": s.row.as_of,
        "degraded": bool(s.degraded),
        "degraded_reasons": s.degraded,
        "missing_features": s.row.missing,
        "scored_at": now,
    }


def _record(
    service: Service,
    models: ModelSet,
    scored: Sequence[Scored],
    request_id: str,
    route: str,
    caller: str,
    when: datetime,
    now: datetime,
    started: float,
) -> None:
    seconds = time.perf_counter() - started
    latency_ms = seconds * 1000.0
    if service.recorder is not None:
        # Returns once the audit records are committed, else raises (503): no score is
        # answered without its record (serving.recorder).
        service.recorder.record(
            [score_event(s, request_id, route, caller, when, now, latency_ms) for s in scored]
        )
    champion = models.require_champion()
    _count(service, champion, "ok")
    service.metrics.model_latency.labels(champion.alias, str(champion.version)).observe(seconds)
    for s in scored:
        service.metrics.scores.labels(s.band, s.served.alias, str(s.served.version)).inc()
        for view, seen in s.row.as_of.items():
            if seen is not None:
                service.metrics.staleness.labels(view).set((now - seen).total_seconds())


def score_event(
    s: Scored,
    request_id: str,
    route: str,
    caller: str,
    when: datetime,
    now: datetime,
    latency_ms: float,
) -> ScoreEvent:
    return ScoreEvent(
        request_id=request_id,
        scored_at=now,
        route=route,
        caller=caller,
        account_id=s.row.account_id,
        customer_id=s.row.customer_id,
        scoring_time=when,
        reported_monthly_income=s.row.reported_income,
        features=s.row.features,
        feature_timestamps=s.row.as_of,
        vector=s.vector,
        model_name=s.served.name,
        model_version=s.served.version,
        model_alias=s.served.alias,
        probability=s.probability,
        band=s.band,
        decision=s.decision,
        challenger_version=s.challenger_version,
        challenger_probability=s.challenger_probability,
        degraded=bool(s.degraded),
        imputed=s.row.missing,
        latency_ms=latency_ms,
    )
