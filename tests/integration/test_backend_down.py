"""A backend cut for real, through a local TCP proxy the test closes: the commands say which
backend is down in one line (exit 3, no traceback) and work again once it is back, with
nothing restarted.

The platform database is a fresh PostgreSQL database behind the proxy; the MLflow registry
is a real `mlflow server` (SQLite backend in a temp dir) behind another.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from typer.testing import CliRunner

from admin_app.app import create_app
from admin_app.backends import Backends, backends
from admin_app.pages import health
from collectwise.cli import app
from collectwise.errors import EXIT_UNAVAILABLE
from collectwise.settings import get_settings
from tests.mlflow_env import running_mlflow_server
from tests.tcp_proxy import TcpProxy, tcp_proxy

pytestmark = pytest.mark.integration

runner = CliRunner()


def _through(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    netloc = f"{user}127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _one_line_naming(caplog: pytest.LogCaptureFixture, backend: str, port: int) -> str:
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, errors
    (line,) = errors
    assert backend in line and str(port) in line, line
    assert "Traceback" not in line and "\n" not in line, line
    return line


@contextmanager
def platform_db_behind_proxy(
    pg_url: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TcpProxy]:
    """A home whose platform database is pg_url reached through a proxy the test can cut."""
    target = urlsplit(pg_url)
    with tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        monkeypatch.setenv("COLLECTWISE_HOME", str(home))
        monkeypatch.setenv("COLLECTWISE_MONITORING__DB_URL", _through(pg_url, proxy))
        get_settings.cache_clear()
        yield proxy


def test_the_cli_names_the_platform_database_when_it_is_down(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with platform_db_behind_proxy(pg_url, tmp_path, monkeypatch) as proxy:
        code, output = _run("alerts", "list")
        assert code == 0, output

        proxy.cut()
        caplog.clear()
        code, output = _run("alerts", "list")
        assert code == EXIT_UNAVAILABLE, output
        _one_line_naming(caplog, "the platform database is unreachable", proxy.port)

        proxy.restore()
        assert _run("alerts", "list")[0] == 0


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    with running_mlflow_server(tmp_path / "mlflow") as url:
        yield url


def test_the_cli_names_the_mlflow_registry_when_it_is_down(
    mlflow_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with tcp_proxy("127.0.0.1", int(urlsplit(mlflow_server).port or 0)) as proxy:
        monkeypatch.setenv("COLLECTWISE_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("COLLECTWISE_MLFLOW__TRACKING_URI", _through(mlflow_server, proxy))
        monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
        get_settings.cache_clear()
        code, output = _run("models", "list")
        assert code == 0, output

        proxy.cut()
        caplog.clear()
        started = time.monotonic()
        code, output = _run("models", "list")
        took = time.monotonic() - started
        assert code == EXIT_UNAVAILABLE, output
        _one_line_naming(caplog, "the MLflow registry is unreachable", proxy.port)
        # The settings' retries (2, backoff factor 2), not MLflow's minutes of them.
        assert took < 30, took

        proxy.restore()
        assert _run("models", "list")[0] == 0


def test_the_console_health_page_names_the_backend_that_is_down(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with platform_db_behind_proxy(pg_url, tmp_path, monkeypatch) as proxy:
        app = create_app(Backends())
        with app.server.app_context():
            assert _backends_up() == ["ok", "ok"]

            proxy.cut()
            cards, problems, *tables = health._load(0)
            line = problems.children[1]
            assert line.startswith("the platform database is unreachable"), line
            assert str(proxy.port) in line and "\n" not in line, line
            assert "unreachable" in str(cards) and all(t == [] for t in tables)

            proxy.restore()
            assert _backends_up() == ["ok", "ok"]


def _backends_up() -> list[str]:
    """The health page's backend cards: (platform database, MLflow registry)."""
    cards, down = health._backend_cards(backends())
    assert [c.label for c in cards] == ["platform database", "MLflow registry"]
    return down or [c.value for c in cards]
