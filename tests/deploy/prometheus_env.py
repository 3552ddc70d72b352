"""A real Prometheus (Debian's package: .ci/services installs it) for the tests: the stack's
own deploy/prometheus/prometheus.yml with its rules, pointed at a scorer the test started,
scraping every second, on a free port with its own storage; and its HTTP API."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests
import yaml

from benchmarks.scorer_harness import free_port
from tests.conftest import REPO_ROOT

log = logging.getLogger(__name__)

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
SCORER_JOB = "collectwise-scorer"
SCRAPE = "1s"
START_TIMEOUT_S = 60.0

T = TypeVar("T")


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"{name} is not installed: run `bash .ci/services` (Debian's prometheus)"
        )
    return found


def stack_config(scorer: str, port: int) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with the scorer at `scorer` (host:port), itself at
    `port`, every interval one second, and the rule files by absolute path."""
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] |= {"scrape_interval": SCRAPE, "scrape_timeout": SCRAPE,
                         "evaluation_interval": SCRAPE}  # fmt: skip
    config["rule_files"] = [str(PROMETHEUS_DIR / pattern) for pattern in config["rule_files"]]
    targets = {SCORER_JOB: scorer, "prometheus": f"127.0.0.1:{port}"}
    for job in config["scrape_configs"]:
        job["scrape_interval"] = SCRAPE
        for static in job["static_configs"]:
            static["targets"] = [targets[job["job_name"]]]
    return config


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def api(self, path: str, **params: Any) -> Any:
        answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = answer.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('errorType')} {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_range(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        data = self.api("query_range", query=expr, start=start, end=end, step=SCRAPE)
        result: list[dict[str, Any]] = data["result"]
        return result

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    """probe() until its answer is truthy (an empty list or a count of 0 is waited past,
    as a rate over a new series has no value until its second scrape); that answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f}s for {what}")
        time.sleep(0.25)


@contextmanager
def running_prometheus(scorer: str, workdir: Path) -> Iterator[Prometheus]:
    """A Prometheus scraping `scorer` (host:port) until the block ends; its log stays in
    workdir for a failing test to show."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(stack_config(scorer, port)))
    check = subprocess.run(
        [binary("promtool"), "check", "config", str(config_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_for("Prometheus to be ready", lambda: _ready(server), START_TIMEOUT_S)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ready(server: Prometheus) -> bool:
    if server.process.poll() is not None:
        raise RuntimeError(f"prometheus exited:\n{server.log_tail()}")
    try:
        return requests.get(f"{server.url}/-/ready", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False
