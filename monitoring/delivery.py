"""Deliver newly opened alerts: to the log always, then to a webhook and by email if configured.

Delivery never fails the job that found the problem: a webhook or mail server that is down
is logged, recorded in the alert's history (action delivery_failed) and left at that; the
alert is in the store and on the console either way. Only alerts at or above
settings.notify_min_severity are pushed (info alerts are context, not pages).

The webhook gets one HTTP POST of JSON per alert, retried with exponential backoff on
connection errors, timeouts, 429 and 5xx (a 4xx will not fix itself, so it is not retried).
Email sends one message per batch of new alerts, so a bad run is one mail, not twenty.

An alert that a channel failed to deliver is escalated to settings.fallback_url (by default
a JSON-lines file beside the monitoring database; or a second webhook), each step recorded
in the alert's history (escalated, or escalation_failed when the fallback fails too), so the
console's health page can show what did not get through.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from collectwise.errors import UnavailableError
from collectwise.settings import MonitoringSettings
from monitoring.alerts import SEVERITY_RANK, Alert

if TYPE_CHECKING:
    from monitoring.monitor_db import MonitoringStore

log = logging.getLogger(__name__)

_LOG_LEVEL = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}
_MAX_WAIT_SECONDS = 30.0
# The alert-history actions that say a push did not get through, and what became of it.
DELIVERY_PROBLEMS = ("delivery_failed", "escalated", "escalation_failed")


class WebhookError(RuntimeError):
    """The webhook answered with an HTTP error status."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status


class WebhookFailed(UnavailableError, RuntimeError):  # noqa: N818
    """Every attempt failed (or one that is not worth repeating); `attempts` says how many."""

    def __init__(self, attempts: int, cause: BaseException) -> None:
        super().__init__(f"{cause} (after {attempts} attempt(s))")
        self.attempts = attempts


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one push: which channel, which alerts, how many tries, why not."""

    channel: str
    alert_ids: tuple[int, ...]
    ok: bool
    attempts: int = 1
    error: str | None = None


def alert_link(alert: Alert, console_url: str) -> str:
    return f"{console_url.rstrip('/')}/{alert.id}"


def alert_payload(alert: Alert, console_url: str) -> dict[str, Any]:
    """The JSON body of a webhook call (stable keys: receivers parse them)."""
    return {
        "alert_id": alert.id,
        "rule": alert.rule_name,
        "metric": alert.metric,
        "value": alert.value,
        "comparison": alert.comparison,
        "threshold": alert.threshold,
        "severity": alert.severity,
        "status": alert.status,
        "job": alert.job,
        "opened_at": alert.opened_at.isoformat(),
        "summary": alert.summary,
        "link": alert_link(alert, console_url),
    }


def _retriable(exc: BaseException) -> bool:
    if isinstance(exc, WebhookError):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, requests.ConnectionError | requests.Timeout)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning("webhook attempt %d failed (%s); retrying", state.attempt_number, error)


def post_webhook(
    url: str, payload: dict[str, Any], *, timeout: float, retries: int, backoff: float
) -> int:
    """POST payload as JSON; returns the attempts it took, raises WebhookFailed."""
    retrying = Retrying(
        stop=stop_after_attempt(retries + 1),
        wait=wait_exponential(multiplier=backoff, max=_MAX_WAIT_SECONDS),
        retry=retry_if_exception(_retriable),
        before_sleep=_log_retry,
        reraise=True,
    )
    attempts = 0
    try:
        for attempt in retrying:
            with attempt:
                attempts += 1
                response = requests.post(url, json=payload, timeout=timeout)
                if response.status_code >= 400:
                    raise WebhookError(response.status_code, response.text)
    except (requests.RequestException, WebhookError) as exc:
        raise WebhookFailed(attempts, exc) from exc
    return attempts


def email_message(alerts: Sequence[Alert], settings: MonitoringSettings) -> EmailMessage:
    worst = max(alerts, key=lambda a: SEVERITY_RANK[a.severity])
    message = EmailMessage()
    message["Subject"] = (
        f"[Collectwise] {len(alerts)} new alert(s), worst {worst.severity}: {worst.rule_name}"
    )
    message["From"] = settings.smtp_from or ""
    message["To"] = ", ".join(settings.smtp_to)
    lines = [
        f"#{a.id} [{a.severity}] {a.rule_name}: {a.summary} (job {a.job or '-'}, "
        f"opened {a.opened_at:%Y-%m-%d %H:%M} UTC)\n    {alert_link(a, settings.console_url)}"
        for a in alerts
    ]
    message.set_content("New Collectwise alerts:\n\n" + "\n".join(lines) + "\n")
    return message


def send_email(alerts: Sequence[Alert], settings: MonitoringSettings) -> None:
    """One message for the batch; STARTTLS when settings.smtp_starttls (port 465 = SMTPS)."""
    host, port = settings.smtp_host or "", settings.smtp_port
    if port == 465:
        client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=settings.smtp_timeout)
    else:
        client = smtplib.SMTP(host, port, timeout=settings.smtp_timeout)
    with client:
        if settings.smtp_starttls and port != 465:
            client.starttls(context=ssl.create_default_context())
        if settings.smtp_user and settings.smtp_password:
            client.login(settings.smtp_user, settings.smtp_password.get_secret_value())
        client.send_message(email_message(alerts, settings))


def log_alert(alert: Alert) -> None:
    log.log(
        _LOG_LEVEL.get(alert.severity, logging.WARNING),
        "ALERT #%d [%s] %s: %s",
        alert.id,
        alert.severity,
        alert.rule_name,
        alert.summary,
    )


def _deliver_webhook(
    alert: Alert, settings: MonitoringSettings, store: MonitoringStore | None
) -> DeliveryResult:
    url = settings.webhook_url or ""
    # The URL may embed a token (Slack, Teams): log only its host.
    host = urlsplit(url).hostname or "?"
    try:
        attempts = post_webhook(
            url,
            alert_payload(alert, settings.console_url),
            timeout=settings.webhook_timeout,
            retries=settings.webhook_retries,
            backoff=settings.webhook_backoff,
        )
    except Exception as exc:  # delivery must never fail the job that found the problem
        tries = exc.attempts if isinstance(exc, WebhookFailed) else 1
        log.error("webhook delivery of alert %d to %s failed: %s", alert.id, host, exc)
        _record(store, alert.id, "delivery_failed", f"webhook {host}: {exc}")
        return DeliveryResult("webhook", (alert.id,), False, tries, str(exc))
    _record(store, alert.id, "delivered", f"webhook {host} after {attempts} attempt(s)")
    return DeliveryResult("webhook", (alert.id,), True, attempts)


def _deliver_email(
    alerts: Sequence[Alert], settings: MonitoringSettings, store: MonitoringStore | None
) -> DeliveryResult:
    ids = tuple(a.id for a in alerts)
    try:
        send_email(alerts, settings)
    except Exception as exc:  # delivery must never fail the job that found the problem
        log.error("email delivery of alerts %s via %s failed: %s", ids, settings.smtp_host, exc)
        for alert_id in ids:
            _record(store, alert_id, "delivery_failed", f"email: {exc}")
        return DeliveryResult("email", ids, False, 1, str(exc))
    for alert_id in ids:
        _record(store, alert_id, "delivered", f"email to {', '.join(settings.smtp_to)}")
    return DeliveryResult("email", ids, True)


def _record(store: MonitoringStore | None, alert_id: int, action: str, note: str) -> None:
    if store is not None:
        store.record_event(alert_id, action, "system", note)


def _fallback_target(url: str) -> str:
    """The fallback channel as a log may name it (a webhook's host only: it may hold a token)."""
    if url.startswith("file:"):
        return f"file {url2pathname(urlsplit(url).path)}"
    return f"webhook {urlsplit(url).hostname or '?'}"


def _append_lines(url: str, records: Sequence[dict[str, Any]]) -> None:
    path = Path(url2pathname(urlsplit(url).path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.writelines(json.dumps(record) + "\n" for record in records)


def escalate(
    alerts: Sequence[Alert],
    failures: Sequence[DeliveryResult],
    settings: MonitoringSettings,
    store: MonitoringStore | None = None,
) -> DeliveryResult:
    """Send alerts that a channel failed to deliver to settings.fallback_url, saying which
    channels failed and why; never raises (a failure is logged and recorded)."""
    url = settings.fallback_url or ""
    target = _fallback_target(url)
    records = []
    for alert in alerts:
        failed = [f"{r.channel}: {r.error}" for r in failures if alert.id in r.alert_ids]
        body = alert_payload(alert, settings.console_url)
        records.append({**body, "failed": failed, "escalated_at": datetime.now(UTC).isoformat()})
    ids = tuple(a.id for a in alerts)
    try:
        if url.startswith("file:"):
            _append_lines(url, records)
        else:
            for record in records:
                post_webhook(
                    url,
                    record,
                    timeout=settings.webhook_timeout,
                    retries=settings.webhook_retries,
                    backoff=settings.webhook_backoff,
                )
    except Exception as exc:  # the last resort: say so as loudly as the log can
        log.critical("escalation of alerts %s to %s failed too: %s", ids, target, exc)
        for alert_id in ids:
            _record(store, alert_id, "escalation_failed", f"{target}: {exc}")
        return DeliveryResult("fallback", ids, False, error=str(exc))
    for alert_id, record in zip(ids, records, strict=True):
        _record(store, alert_id, "escalated", f"{target}; failed: {'; '.join(record['failed'])}")
    log.warning("alerts %s escalated to %s after a failed delivery", ids, target)
    return DeliveryResult("fallback", ids, True)


def deliver(
    alerts: Sequence[Alert],
    settings: MonitoringSettings,
    store: MonitoringStore | None = None,
) -> list[DeliveryResult]:
    """Log every alert; push those at or above notify_min_severity to webhook and email;
    escalate what a channel failed to deliver to the fallback channel."""
    for alert in alerts:
        log_alert(alert)
    floor = SEVERITY_RANK[settings.notify_min_severity]
    pushable = [a for a in alerts if SEVERITY_RANK.get(a.severity, 0) >= floor]
    results: list[DeliveryResult] = []
    if settings.webhook_url:
        results.extend(_deliver_webhook(a, settings, store) for a in pushable)
    if settings.smtp_configured and pushable:
        results.append(_deliver_email(pushable, settings, store))
    failures = [r for r in results if not r.ok]
    undelivered = [a for a in pushable if any(a.id in r.alert_ids for r in failures)]
    if undelivered and settings.fallback_url:
        results.append(escalate(undelivered, failures, settings, store))
    return results
