"""The retraining trigger: a new alert named in settings.retrain_on runs the training command.

The command (default `dvc repro register`) trains, evaluates and registers a new version,
which the registry makes `challenger`. This module NEVER promotes: promotion is a person's
decision through the gate (`collectwise models promote`), because a model trained on data
that just drifted is exactly the one to look at before it serves. Three guards hold that:
MonitoringSettings refuses a retrain_command that mentions "promote"; nothing here calls
training.registry.promote; and the champion alias is read before and after the command, a
move being recorded as a failure of the request and logged as an error.

Every request is a retrain_requests row: why (the alert), the command, the outcome, the tail
of its output and the version it registered (the newest version, if it is new).
One request runs at a time: a trigger while another request is running is skipped (one
still "running" after retrain_timeout died with its process and is marked failed).
The command runs synchronously in the monitoring job's process, with cwd the repo root and
the job's environment (so COLLECTWISE_MLFLOW__TRACKING_URI etc. reach the training).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING

from collectwise.settings import MonitoringSettings, get_settings
from monitoring.alerts import Alert

if TYPE_CHECKING:
    from collectwise.settings import MlflowSettings
    from monitoring.monitor_db import MonitoringStore, RetrainRequest

log = logging.getLogger(__name__)

LOG_TAIL_CHARS = 4000


@dataclass(frozen=True)
class RegistryState:
    """The newest registered version and the champion, None where unknown or absent."""

    newest: int | None
    champion: int | None


def should_retrain(alert: Alert, retrain_on: Sequence[str]) -> bool:
    """True when the alert's severity or its rule name (a glob) is listed."""
    return any(
        alert.severity == entry or fnmatchcase(alert.rule_name, entry) for entry in retrain_on
    )


def retrain_reason(alerts: Sequence[Alert]) -> str:
    return "; ".join(f"alert #{a.id} {a.rule_name} [{a.severity}]: {a.summary}" for a in alerts)


def registry_state(training_settings: MlflowSettings | None = None) -> RegistryState:
    """Read the registry; an unreachable one gives unknowns rather than stopping the trigger."""
    from training.registry import CHAMPION, list_versions, resolve_alias  # noqa: PLC0415

    try:
        versions = list_versions(settings=training_settings)
        champion = resolve_alias(CHAMPION, settings=training_settings)
    except Exception as exc:  # the trigger must still run and record, whatever MLflow does
        log.warning("could not read the model registry: %s", exc)
        return RegistryState(None, None)
    return RegistryState(versions[0].version if versions else None, champion)


def run_command(command: Sequence[str], cwd: Path, timeout: float) -> tuple[int | None, str]:
    """Run to completion; (exit code or None if it never finished, tail of its output)."""
    try:
        done = subprocess.run(  # nosec B603  # the configured retrain command, no shell
            list(command),
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.output if isinstance(exc.output, str) else ""
        return None, (output + f"\n[timed out after {timeout:.0f} s]")[-LOG_TAIL_CHARS:]
    except OSError as exc:
        return None, f"could not start {command[0]!r}: {exc}"
    return done.returncode, (done.stdout or "")[-LOG_TAIL_CHARS:]


def _outcome(
    exit_code: int | None, tail: str, before: RegistryState, after: RegistryState
) -> tuple[str, int | None, str]:
    """(status, registered version, log tail) from what the command did to the registry."""
    registered = (
        after.newest if after.newest is not None and after.newest != before.newest else None
    )
    status = "succeeded" if exit_code == 0 else "failed"
    if after.champion != before.champion:
        # Never expected: the command is checked not to promote. Make it loud and visible.
        log.error(
            "the champion moved from %s to %s during retraining: retraining must never promote",
            before.champion,
            after.champion,
        )
        status = "failed"
        tail = f"{tail}\n[champion moved from {before.champion} to {after.champion}]"
    return status, registered, tail[-LOG_TAIL_CHARS:]


def run_retrain(
    store: MonitoringStore,
    alerts: Sequence[Alert],
    settings: MonitoringSettings,
    training_settings: MlflowSettings | None = None,
) -> RetrainRequest:
    """Run the retrain command for these alerts and record the request; never promotes."""
    before = registry_state(training_settings)
    reason = retrain_reason(alerts)
    request_id = store.start_retrain(
        alerts[0].id if alerts else None, reason, settings.retrain_command
    )
    for alert in alerts:
        store.record_event(alert.id, "retrain_requested", "system", f"retrain request {request_id}")
    log.info("retraining (request %d) because %s: %s", request_id, reason, settings.retrain_command)
    started = datetime.now(UTC)
    exit_code, tail = run_command(
        settings.retrain_command, get_settings().home, settings.retrain_timeout
    )
    status, registered, tail = _outcome(exit_code, tail, before, registry_state(training_settings))
    store.finish_retrain(
        request_id, status=status, exit_code=exit_code, registered_version=registered, log_tail=tail
    )
    seconds = (datetime.now(UTC) - started).total_seconds()
    log.info(
        "retrain request %d %s in %.0f s (exit %s); registered version %s, not promoted",
        request_id,
        status,
        seconds,
        exit_code,
        registered,
    )
    return store.get_retrain(request_id)


def _running_request(store: MonitoringStore, timeout: float) -> list[RetrainRequest]:
    """The request still running, if any; one older than the timeout died with its process."""
    running = store.list_retrains(limit=1, status="running")
    cutoff = datetime.now(UTC) - timedelta(seconds=timeout)
    if running and running[0].started_at < cutoff:
        log.warning("retrain request %d never finished; marking it failed", running[0].id)
        store.finish_retrain(running[0].id, status="failed", log_tail="[abandoned: never finished]")
        return []
    return running


def trigger_retrain(
    store: MonitoringStore,
    alerts: Sequence[Alert],
    settings: MonitoringSettings,
    training_settings: MlflowSettings | None = None,
) -> RetrainRequest | None:
    """Retrain when a new alert qualifies (settings.retrain_on) and none is running."""
    chosen = [a for a in alerts if should_retrain(a, settings.retrain_on)]
    if not chosen:
        return None
    running = _running_request(store, settings.retrain_timeout)
    if running:
        log.warning(
            "retrain request %d is still running; not starting another for %s",
            running[0].id,
            retrain_reason(chosen),
        )
        for alert in chosen:
            store.record_event(alert.id, "retrain_skipped", "system", f"request {running[0].id}")
        return None
    return run_retrain(store, chosen, settings, training_settings)


def retrain_pending(
    store: MonitoringStore,
    settings: MonitoringSettings,
    training_settings: MlflowSettings | None = None,
) -> RetrainRequest | None:
    """The scheduled retrain: retrain for live alerts that settings.retrain_on names and
    that never had a retrain request (their trigger was skipped while another request ran,
    or they opened before retrain_on named them). None when there is nothing to do."""
    if not settings.retrain_on:
        return None
    handled = {"retrain_requested"}
    waiting = [
        alert
        for alert in store.open_alerts()
        if should_retrain(alert, settings.retrain_on)
        and not handled & {e.action for e in store.alert_events(alert.id)}
    ]
    if not waiting:
        log.info("no live alert waits for retraining")
        return None
    return trigger_retrain(store, waiting, settings, training_settings)
