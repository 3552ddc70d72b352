"""`collectwise alerts ...`: alert rules, the alert lifecycle, pipeline runs and system health.

Thin shells over monitoring.monitor_db and monitoring.health; the store validates rules and
lifecycle steps, and its errors become one clear line and exit code 1.
"""

from __future__ import annotations

import getpass
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from collectwise.errors import InvalidInputError
from collectwise.shell import new_app

app = new_app(
    help="Alert rules, alerts (list, acknowledge, resolve), pipeline runs and health.",
    no_args_is_help=True,
)
rules_app = new_app(help="List, add, change, enable, disable and delete alert rules.")
app.add_typer(rules_app, name="rules", no_args_is_help=True)
log = logging.getLogger("collectwise.alerts")

WhoOpt = Annotated[str | None, typer.Option(help="who did it (default: the OS user)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
NameArg = Annotated[str, typer.Argument(help="the rule's name")]


@contextmanager
def _store() -> Iterator[Any]:
    """The configured store, disposed of afterwards."""
    from collectwise.settings import get_settings  # noqa: PLC0415
    from monitoring.monitor_db import MonitoringStore  # noqa: PLC0415

    store = MonitoringStore(get_settings().monitoring.database_url)
    try:
        yield store
    finally:
        store.dispose()


def _who(who: str | None) -> str:
    return who if who is not None else getpass.getuser()


def _threshold(text: str) -> float:
    from monitoring.alerts import RuleFieldError  # noqa: PLC0415

    try:
        return float(text)
    except ValueError as exc:
        raise RuleFieldError(f"rule field 'threshold': {text!r} is not a number") from exc


def _rule_line(rule: Any) -> str:
    state = "on " if rule.enabled else "off"
    window = f" over {rule.window}" if rule.window else ""
    return (
        f"{state} {rule.severity:<8} {rule.name:<24} {rule.metric} {rule.comparison} "
        f"{rule.threshold:g}{window}"
    )


def _alert_line(alert: Any) -> str:
    who = alert.resolved_by or alert.acknowledged_by or ""
    return (
        f"#{alert.id:<5} {alert.status:<12} {alert.severity:<8} {alert.rule_name:<24} "
        f"{alert.summary}  x{alert.occurrences}  opened {alert.opened_at:%Y-%m-%d %H:%M}"
        + (f"  by {who}" if who else "")
    )


@rules_app.command("list")
def list_rules(as_json: JsonOpt = False) -> None:
    """Every rule, enabled or not."""
    with _store() as store:
        rules = store.list_rules()
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in rules], indent=2, default=str))
        return
    for rule in rules:
        typer.echo(_rule_line(rule))


@rules_app.command("add")
def add_rule(
    name: NameArg,
    metric: Annotated[str, typer.Option(help="metric name or glob, e.g. drift.feature.*.psi")],
    comparison: Annotated[str, typer.Option(help=">, >=, < or <=")],
    threshold: Annotated[str, typer.Option(help="the value to compare with")],
    severity: Annotated[str, typer.Option(help="info, warning or critical")] = "warning",
    window: Annotated[str | None, typer.Option(help="mean over e.g. 7d, 12h or 5pts")] = None,
    description: Annotated[str, typer.Option(help="why the rule exists")] = "",
    who: WhoOpt = None,
) -> None:
    """Add a rule."""
    from monitoring.alerts import Rule  # noqa: PLC0415

    with _store() as store:
        rule = Rule(
            name=name,
            metric=metric,
            comparison=comparison,
            threshold=_threshold(threshold),
            severity=severity,
            window=window,
            description=description,
            created_by=_who(who),
        )
        typer.echo(_rule_line(store.add_rule(rule)))


@rules_app.command("update")
def update_rule(
    name: NameArg,
    metric: Annotated[str | None, typer.Option()] = None,
    comparison: Annotated[str | None, typer.Option()] = None,
    threshold: Annotated[str | None, typer.Option()] = None,
    severity: Annotated[str | None, typer.Option()] = None,
    window: Annotated[str | None, typer.Option(help="'' removes the window")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    who: WhoOpt = None,
) -> None:
    """Change some fields of a rule (the others stay)."""
    given = {
        "metric": metric,
        "comparison": comparison,
        "severity": severity,
        "window": window,
        "description": description,
    }
    changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    with _store() as store:
        if threshold is not None:
            changes["threshold"] = _threshold(threshold)
        if not changes:
            raise InvalidInputError("nothing to change: give at least one option")
        typer.echo(_rule_line(store.update_rule(name, _who(who), **changes)))


@rules_app.command("enable")
def enable_rule(name: NameArg, who: WhoOpt = None) -> None:
    """Evaluate a rule again."""
    with _store() as store:
        typer.echo(_rule_line(store.enable_rule(name, _who(who))))


@rules_app.command("disable")
def disable_rule(name: NameArg, who: WhoOpt = None) -> None:
    """Stop evaluating a rule (its live alerts stay for you to resolve)."""
    with _store() as store:
        typer.echo(_rule_line(store.disable_rule(name, _who(who))))


@rules_app.command("delete")
def delete_rule(name: NameArg, who: WhoOpt = None) -> None:
    """Delete a rule; its live alerts are resolved in your name."""
    with _store() as store:
        store.delete_rule(name, _who(who))
    typer.echo(f"deleted rule {name!r}")


@app.command("list")
def list_alerts(
    status: Annotated[
        str | None, typer.Option(help="open, acknowledged or resolved (default: all)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Alerts, newest first."""
    with _store() as store:
        alerts = store.list_alerts(status=status, limit=limit)
    if as_json:
        typer.echo(json.dumps([a.to_dict() for a in alerts], indent=2))
        return
    if not alerts:
        typer.echo("no alerts")
    for alert in alerts:
        typer.echo(_alert_line(alert))


@app.command("ack")
def acknowledge(
    alert_id: Annotated[int, typer.Argument(help="the alert's id")],
    who: WhoOpt = None,
    note: Annotated[str | None, typer.Option(help="what is being done about it")] = None,
) -> None:
    """Acknowledge an open alert: it stays live but quiet while someone works on it."""
    with _store() as store:
        typer.echo(_alert_line(store.acknowledge(alert_id, _who(who), note)))


@app.command("resolve")
def resolve(
    alert_id: Annotated[int, typer.Argument(help="the alert's id")],
    who: WhoOpt = None,
    note: Annotated[str | None, typer.Option(help="what was found or done")] = None,
) -> None:
    """Resolve an open or acknowledged alert."""
    with _store() as store:
        typer.echo(_alert_line(store.resolve(alert_id, _who(who), note)))


@app.command("history")
def history(alert_id: Annotated[int, typer.Argument(help="the alert's id")]) -> None:
    """Everything that happened to one alert."""
    with _store() as store:
        alert = store.get_alert(alert_id)
        events = store.alert_events(alert_id)
    typer.echo(_alert_line(alert))
    for event in events:
        typer.echo(
            f"  {event.at:%Y-%m-%d %H:%M:%S} {event.action:<18} {event.who}  {event.note or ''}"
        )


@app.command("runs")
def runs(
    stage: Annotated[str | None, typer.Option(help="only this stage")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
) -> None:
    """Recorded pipeline runs, newest first."""
    with _store() as store:
        found = store.list_runs(stage=stage, limit=limit)
    if not found:
        typer.echo("no pipeline runs recorded")
    for run in found:
        rows = "" if run.rows is None else f" rows={run.rows}"
        typer.echo(
            f"#{run.id:<5} {run.stage:<20} {run.status:<10} {run.started_at:%Y-%m-%d %H:%M:%S}"
            f"{rows}  {run.message or ''}"
        )


@app.command("health")
def health(
    features: Annotated[Path | None, typer.Option(help="feature tables directory")] = None,
    scorer_url: Annotated[
        str | None, typer.Option(help="the scorer's /metrics URL (default from settings)")
    ] = None,
) -> None:
    """Last run per stage, feature freshness per view and scorer latency / errors."""
    import pandas as pd  # noqa: PLC0415

    from collectwise.settings import get_settings  # noqa: PLC0415
    from monitoring.health import system_health  # noqa: PLC0415

    url = scorer_url or get_settings().monitoring.scorer_metrics_url
    with _store() as store:
        report = system_health(store, features or get_settings().paths.features_dir, url)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        typer.echo("pipeline runs:\n" + (report.runs.to_string(index=False) or "none"))
        typer.echo("\nfeature freshness:\n" + report.freshness.to_string(index=False))
        if report.scorer is not None:
            rate = report.scorer.error_rate
            typer.echo("\nscorer:\n" + report.scorer.routes.to_string(index=False))
            typer.echo(f"errors {report.scorer.errors}  error rate {rate}")
            typer.echo(f"scores by band {report.scorer.scores}")
    typer.echo(f"\nopen alerts: {report.open_alerts}")
    for problem in report.problems:
        typer.echo(f"problem: {problem}")
