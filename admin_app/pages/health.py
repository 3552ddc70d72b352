"""System health: the scorer's latency and error rate (its /metrics), the online store,
the last materialisation per feature view, feature freshness, pipeline runs, the scheduled
jobs with their heartbeats, and alert deliveries that failed or were escalated."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, dcc, html

from admin_app.backends import backends
from admin_app.components import columns, grid, header, section, stat
from admin_app.logic import health as logic
from admin_app.logic.monitoring import records
from collectwise.errors import backend_down

PATH = "/health"
NAME = "System health"
MIN_ROLE = "viewer"

log = logging.getLogger(__name__)
REFRESH_MS = 30_000


def layout(**_: Any) -> Any:
    return html.Div(
        [
            header("System health", "Refreshes every 30 seconds."),
            dcc.Interval(id="health-tick", interval=REFRESH_MS),
            dbc.Row(id="health-cards"),
            html.Div(id="health-problems"),
            section("Scorer routes", grid("health-routes", [], None, height=200, page_size=None)),
            dbc.Row([
                dbc.Col(section("Last materialisation per feature view",
                                grid("health-materialised", [], None, height=220,
                                     page_size=None)), md=6),
                dbc.Col(section("Feature freshness", grid("health-freshness", [], None,
                                                          height=220, page_size=None)), md=6),
            ]),
            section("Pipeline runs (latest per stage)", grid("health-runs", [], None, height=260)),
            section("Scheduled jobs and their heartbeats",
                    grid("health-scheduled", [], None, height=260, page_size=None)),
            section("Alert deliveries that failed or were escalated",
                    grid("health-deliveries", [], None, height=220)),
        ]
    )  # fmt: skip


def register(app: Dash) -> None:
    app.callback(
        Output("health-cards", "children"),
        Output("health-problems", "children"),
        Output("health-routes", "rowData"),
        Output("health-routes", "columnDefs"),
        Output("health-materialised", "rowData"),
        Output("health-materialised", "columnDefs"),
        Output("health-freshness", "rowData"),
        Output("health-freshness", "columnDefs"),
        Output("health-runs", "rowData"),
        Output("health-runs", "columnDefs"),
        Output("health-scheduled", "rowData"),
        Output("health-scheduled", "columnDefs"),
        Output("health-deliveries", "rowData"),
        Output("health-deliveries", "columnDefs"),
        Input("health-tick", "n_intervals"),
    )(_load)


def _store_card() -> logic.Card:
    b = backends()
    try:
        online = b.service().online
        healthy = online.probe()
        return logic.store_card(healthy, online.last_error)
    except Exception as exc:  # an unreachable store is what this card exists to show
        log.warning("online store probe failed: %s", exc)
        return logic.store_card(False, str(exc))


def _scheduled(b: Any) -> tuple[list[Any], list[Any]]:
    """The scheduled jobs' statuses and the troubled deliveries, from the monitoring store."""
    from monitoring.scheduler.status import read_delivery_problems, read_job_statuses  # noqa: PLC0415

    grace = timedelta(seconds=b.platform.scheduler.heartbeat_grace_seconds)
    store = b.monitoring()
    return read_job_statuses(store, grace, datetime.now(UTC)), read_delivery_problems(store)


def _backend_cards(b: Any) -> tuple[list[logic.Card], list[str]]:
    """The platform database and the MLflow registry, each "ok" or "unreachable"; and the
    one line per backend that is down (collectwise.errors.backend_down, as the CLI says it)."""
    from training.registry import CHAMPION, resolve_alias  # noqa: PLC0415

    checks = (
        ("platform database", lambda: b.monitoring().list_alerts(limit=1)),
        (
            "MLflow registry",
            lambda: resolve_alias(CHAMPION, client=b.mlflow(), settings=b.platform.mlflow),
        ),
    )
    cards, down = [], []
    for label, check in checks:
        try:
            check()
        except Exception as exc:
            problem = backend_down(exc)
            if problem is None:
                raise
            log.warning("%s", problem)
            cards.append(logic.Card(label, "unreachable", "danger"))
            down.append(str(problem))
            continue
        cards.append(logic.Card(label, "ok", "success"))
    return cards, down


def _load(_: Any) -> tuple[Any, ...]:
    b = backends()
    cards, down = _backend_cards(b)
    if down:
        # What is left to show needs the backends: say which is down, in one line each.
        empty: tuple[list[Any], list[Any]] = ([], [])
        cards = [*cards, _store_card()]
        alert = dbc.Alert([html.Strong("Backend down: "), "; ".join(down)], color="danger")
        return ([stat(c.label, c.value, c.colour) for c in cards], alert, *(empty * 6))
    return _load_all(b, cards)


def _load_all(b: Any, backend_cards: list[logic.Card]) -> tuple[Any, ...]:
    from admin_app.lookups import materialisations  # noqa: PLC0415
    from monitoring.health import system_health  # noqa: PLC0415

    url = b.metrics_url()
    health = system_health(b.monitoring(), b.features_dir, url)
    statuses, deliveries = _scheduled(b)
    cards = [*logic.scorer_cards(health.scorer, health.scorer_error, bool(url)), _store_card(),
             *backend_cards]  # fmt: skip
    cards.append(logic.Card("open alerts", str(health.open_alerts),
                            "warning" if health.open_alerts else "success"))  # fmt: skip
    cards.append(logic.scheduled_card(statuses))
    found = [*health.problems, *logic.scheduled_problems(statuses)]
    problems = (
        dbc.Alert([html.Strong("Problems: "), "; ".join(found)], color="warning")
        if found
        else dbc.Alert("No problems found.", color="success")
    )
    routes = records(health.scorer.routes) if health.scorer is not None else []
    materialised = logic.materialisation_rows(materialisations(b))
    freshness = records(health.freshness.drop(columns=["path"]))
    runs = records(health.runs)
    scheduled = logic.scheduled_rows(statuses)
    troubled = logic.delivery_rows(deliveries)
    return (
        [stat(c.label, c.value, c.colour) for c in cards], problems,
        routes, columns(routes), materialised, columns(materialised),
        freshness, columns(freshness), runs, columns(runs),
        scheduled, columns(scheduled), troubled, columns(troubled),
    )  # fmt: skip
