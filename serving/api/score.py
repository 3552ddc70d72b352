"""POST /v1/score and /v1/score/batch."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter

from serving.api.deps import AUTH_RESPONSES, ScoreCaller, ServiceDep
from serving.errors import StaleFeaturesError, UnknownAccountError
from serving.events import ScoreEvent
from serving.online import OnlineRow
from serving.schemas import (
    BatchError,
    BatchRequest,
    BatchResponse,
    ErrorBody,
    ModelRef,
    ReasonCode,
    ScoreRequest,
    ScoreResponse,
)
from serving.scoring import Scored, score_rows
from serving.service import Service

router = APIRouter(prefix="/v1", tags=["scoring"], responses=AUTH_RESPONSES)

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "the account has no online features"}
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "store or model unavailable (Retry-After set)"}
}


@router.post("/score", response_model=ScoreResponse, responses={**NOT_FOUND, **UNAVAILABLE})
def score(body: ScoreRequest, service: ServiceDep, caller: ScoreCaller) -> ScoreResponse:
    """Score one account: probability, band, decision, reasons and the model behind them."""
    started = time.perf_counter()
    models = service.watcher.current  # taken once: the request ends on the model it began with
    models.require_champion()
    when = body.as_of or datetime.now(UTC)
    row = service.online.read([body.account_id], when, body.reported_monthly_income)[0]
    if not row.known:
        raise UnknownAccountError(body.account_id)
    _check_fresh(service, [row])
    options = service.options if body.explain else replace(service.options, reasons=0)
    scored = score_rows([row], models, options)[0]
    request_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    _record(service, [scored], request_id, "/v1/score", caller.name, when, now, started)
    return _response(scored, request_id, now)


@router.post("/score/batch", response_model=BatchResponse, responses=UNAVAILABLE)
def score_batch(body: BatchRequest, service: ServiceDep, caller: ScoreCaller) -> BatchResponse:
    """Score up to 1,000 accounts with one batched online read; unknown ones are listed."""
    started = time.perf_counter()
    models = service.watcher.current
    models.require_champion()
    when = body.as_of or datetime.now(UTC)
    rows = _read_batch(service, body, when)
    known = [r for r in rows if r.known]
    errors = [
        BatchError(
            account_id=r.account_id, status=404, detail=str(UnknownAccountError(r.account_id))
        )
        for r in rows
        if not r.known
    ]
    _check_fresh(service, known)
    options = service.options if body.explain else replace(service.options, reasons=0)
    scored = score_rows(known, models, options)
    request_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    _record(service, scored, request_id, "/v1/score/batch", caller.name, when, now, started)
    return BatchResponse(
        request_id=request_id,
        results=[_response(s, request_id, now) for s in scored],
        errors=errors,
    )


def _read_batch(service: Service, body: BatchRequest, when: datetime) -> list[OnlineRow]:
    # Income is request data shared by a read; accounts without one (the usual case) go
    # in one read, and each distinct income reported in the batch adds one.
    by_income: dict[float | None, list[str]] = {}
    for item in body.accounts:
        by_income.setdefault(item.reported_monthly_income, []).append(item.account_id)
    rows: dict[str, OnlineRow] = {}
    for income, ids in by_income.items():
        for row in service.online.read(ids, when, income):
            rows[row.account_id] = row
    return [rows[item.account_id] for item in body.accounts]


def _check_fresh(service: Service, rows: Sequence[OnlineRow]) -> None:
    stale = sorted({v for r in rows for v in r.stale_views})
    if stale and service.settings.stale_policy == "refuse":
        raise StaleFeaturesError(
            f"features older than their TTL in {', '.join(stale)}: refusing to score "
            "(COLLECTWISE_STALE_POLICY=refuse)"
        )


def _response(s: Scored, request_id: str, now: datetime) -> ScoreResponse:
    return ScoreResponse(
        request_id=request_id,
        account_id=s.row.account_id,
        probability=s.probability,
        band=s.band,
        decision=s.decision,
        threshold=s.served.model.threshold,
        model=ModelRef(name=s.served.name, version=s.served.version, alias=s.served.alias),
        reasons=[ReasonCode(**vars(r)) for r in s.reasons],
        features_as_of=s.row.as_of,
        degraded=bool(s.degraded),
        degraded_reasons=s.degraded,
        missing_features=s.row.missing,
        scored_at=now,
    )


def _record(
    service: Service,
    scored: Sequence[Scored],
    request_id: str,
    route: str,
    caller: str,
    when: datetime,
    now: datetime,
    started: float,
) -> None:
    latency_ms = (time.perf_counter() - started) * 1000.0
    for s in scored:
        service.metrics.scores.labels(s.band, s.served.alias).inc()
        for view, seen in s.row.as_of.items():
            if seen is not None:
                service.metrics.staleness.labels(view).set((now - seen).total_seconds())
    if service.recorder is None:
        return
    service.recorder.record(
        [_event(s, request_id, route, caller, when, now, latency_ms) for s in scored]
    )


def _event(
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
