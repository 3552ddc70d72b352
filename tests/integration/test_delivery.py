"""Alert delivery against a real local HTTP server and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from collectwise.settings import MonitoringSettings
from monitoring.delivery import deliver
from monitoring.job_finish import finish_job
from monitoring.job_result import JobResult
from monitoring.monitor_db import MonitoringStore

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass
class Webhook:
    url: str
    statuses: list[int]  # answers to give, in order; 200 once they run out
    bodies: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    state = Webhook("", [])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            state.attempts += 1
            status = state.statuses.pop(0) if state.statuses else 200
            if status == 200:
                state.bodies.append(json.loads(self.rfile.read(length)))
            else:
                self.rfile.read(length)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"try later")

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook?token=secret"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MonitoringStore]:
    opened = MonitoringStore(f"sqlite:///{tmp_path / 'monitoring.db'}")
    yield opened
    opened.dispose()


def _settings(store: MonitoringStore, **values: Any) -> MonitoringSettings:
    base = {"db_url": str(store.engine.url), "webhook_backoff": 0.01, "webhook_timeout": 2.0}
    return MonitoringSettings(**{**base, **values})  # type: ignore[arg-type]


def _skew(value: float = 0.2) -> JobResult:
    return JobResult("skew", None, T0, {"skew.max_mismatch_rate": value})


def test_webhook_retries_until_it_gets_through(webhook: Webhook, store: MonitoringStore) -> None:
    webhook.statuses = [500, 503]
    settings = _settings(store, webhook_url=webhook.url, webhook_retries=3)
    (alert,) = finish_job(_skew(), settings, store=store)
    assert webhook.attempts == 3
    (body,) = webhook.bodies
    assert body["alert_id"] == alert.id and body["rule"] == "training-serving skew"
    assert (body["metric"], body["value"], body["threshold"]) == (
        "skew.max_mismatch_rate",
        0.2,
        0.01,
    )
    assert body["severity"] == "critical" and body["opened_at"] == alert.opened_at.isoformat()
    assert body["link"].endswith(f"/alerts/{alert.id}")
    events = store.alert_events(alert.id)
    assert [e.action for e in events] == ["opened", "delivered"]
    assert events[1].note == "webhook 127.0.0.1 after 3 attempt(s)"
    # The same condition on the next run is not delivered again.
    assert finish_job(_skew(0.3), settings, store=store) == []
    assert webhook.attempts == 3


def test_webhook_gives_up_after_the_retries(webhook: Webhook, store: MonitoringStore) -> None:
    webhook.statuses = [500] * 5
    settings = _settings(store, webhook_url=webhook.url, webhook_retries=2)
    (alert,) = finish_job(_skew(), settings, store=store)
    assert webhook.attempts == 3 and webhook.bodies == []
    assert store.alert_events(alert.id)[-1].action == "delivery_failed"


def test_a_client_error_is_not_retried(webhook: Webhook, store: MonitoringStore) -> None:
    webhook.statuses = [404]
    (alert,) = finish_job(_skew(), _settings(store, webhook_url=webhook.url), store=store)
    assert webhook.attempts == 1
    assert "HTTP 404" in (store.alert_events(alert.id)[-1].note or "")


def test_webhook_down_is_logged_and_the_job_finishes(
    store: MonitoringStore, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{_free_port()}/hook"  # nothing listens there
    settings = _settings(store, webhook_url=url, webhook_retries=1)
    with caplog.at_level(logging.WARNING, logger="monitoring"):
        opened = finish_job(_skew(), settings, store=store)
    assert len(opened) == 1 and opened[0].status == "open"
    assert "webhook delivery of alert" in caplog.text and "failed" in caplog.text
    assert "ALERT #" in caplog.text
    failed = store.alert_events(opened[0].id)[-1]
    assert (failed.action, failed.who) == ("delivery_failed", "system")
    assert "after 2 attempt(s)" in (failed.note or "")


def test_email_one_message_per_batch(
    smtp: tuple[Inbox, int], store: MonitoringStore, webhook: Webhook
) -> None:
    inbox, port = smtp
    settings = _settings(
        store,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_from="collectwise@example.org",
        smtp_to="risk@example.org, ops@example.org",
        webhook_url=webhook.url,
    )
    result = JobResult(
        "drift",
        None,
        T0,
        {"drift.share_drifted": 0.6, "drift.score_psi": 0.4, "drift.feature.a.drifted": 1.0},
    )
    opened = finish_job(result, settings, store=store)
    assert sorted(a.severity for a in opened) == ["info", "warning", "warning"]
    (message,) = inbox.messages
    assert message["Subject"] == "[Collectwise] 2 new alert(s), worst warning: drift share"
    assert message["To"] == "risk@example.org, ops@example.org"
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "drift.share_drifted = 0.6 > 0.3" in body and "drift.score_psi" in body
    assert "drift.feature.a.drifted" not in body  # info alerts are not pushed
    assert sorted(b["rule"] for b in webhook.bodies) == ["drift share", "score drift"]
    info = next(a for a in opened if a.severity == "info")
    assert [e.action for e in store.alert_events(info.id)] == ["opened"]
    pushed = next(a for a in opened if a.rule_name == "drift share")
    notes = [e.note or "" for e in store.alert_events(pushed.id) if e.action == "delivered"]
    assert sorted(notes) == [
        "email to risk@example.org, ops@example.org",
        "webhook 127.0.0.1 after 1 attempt(s)",
    ]


def test_mail_server_down_is_recorded(
    store: MonitoringStore, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(
        store,
        smtp_host="127.0.0.1",
        smtp_port=_free_port(),
        smtp_starttls=False,
        smtp_from="a@example.org",
        smtp_to="b@example.org",
        smtp_timeout=2.0,
    )
    opened = finish_job(_skew(), settings, store=store)
    (outcome,) = [r for r in deliver(opened, settings) if r.channel == "email"]
    assert not outcome.ok and outcome.alert_ids == (opened[0].id,)
    assert store.alert_events(opened[0].id)[-1].action == "delivery_failed"
    assert "email delivery of alerts" in caplog.text


# --------------------------------------------------------------------------- escalation


def test_a_failed_webhook_is_escalated_to_the_fallback_file(
    webhook: Webhook, store: MonitoringStore, tmp_path: Path
) -> None:
    webhook.statuses = [503]
    fallback = tmp_path / "fallback" / "escalated.jsonl"
    settings = _settings(
        store, webhook_url=webhook.url, webhook_retries=0, fallback_url=fallback.as_uri()
    )
    (alert,) = finish_job(_skew(), settings, store=store)
    (line,) = fallback.read_text().splitlines()
    record = json.loads(line)
    assert (record["alert_id"], record["rule"]) == (alert.id, "training-serving skew")
    (why,) = record["failed"]
    assert why.startswith("webhook: HTTP 503")
    events = store.alert_events(alert.id)
    assert [e.action for e in events] == ["opened", "delivery_failed", "escalated"]
    assert str(fallback) in (events[-1].note or "") and "secret" not in (events[-1].note or "")


def test_a_dead_webhook_is_escalated_to_a_second_webhook(
    webhook: Webhook, store: MonitoringStore
) -> None:
    dead = f"http://127.0.0.1:{_free_port()}/hook"  # nothing listens there
    settings = _settings(store, webhook_url=dead, webhook_retries=0, fallback_url=webhook.url)
    (alert,) = finish_job(_skew(), settings, store=store)
    (body,) = webhook.bodies
    assert body["alert_id"] == alert.id and "Connection refused" in body["failed"][0]
    assert store.alert_events(alert.id)[-1].action == "escalated"


def test_a_failed_escalation_is_recorded_and_the_job_still_finishes(
    store: MonitoringStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    unreachable = (blocker / "escalated.jsonl").as_uri()  # its parent is a file
    dead = f"http://127.0.0.1:{_free_port()}/hook"
    settings = _settings(store, webhook_url=dead, webhook_retries=0, fallback_url=unreachable)
    with caplog.at_level(logging.CRITICAL, logger="monitoring"):
        (alert,) = finish_job(_skew(), settings, store=store)
    assert [e.action for e in store.alert_events(alert.id)][-1] == "escalation_failed"
    assert "failed too" in caplog.text


def test_a_delivered_alert_is_not_escalated(
    webhook: Webhook, store: MonitoringStore, tmp_path: Path
) -> None:
    fallback = tmp_path / "escalated.jsonl"
    settings = _settings(store, webhook_url=webhook.url, fallback_url=fallback.as_uri())
    (alert,) = finish_job(_skew(), settings, store=store)
    assert not fallback.exists()
    assert [e.action for e in store.alert_events(alert.id)] == ["opened", "delivered"]
