"""A real three-node Redis Cluster of the tests' own, and the scorer world they share.

Each node is a `redis-server --cluster-enabled yes` on a port chosen at run time, so two
runs on one machine (or two pytest-xdist workers) never meet; `redis-cli --cluster create`
joins them with no replicas, and every node is stopped by its pid afterwards. A node can be
frozen (SIGSTOP), thawed, killed and restarted on its own port and config, for the fault
tests to take one away for real.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from tests.integration import conftest as integration
from tests.serving import conftest as serving

log = logging.getLogger(__name__)

# The fixtures of the integration and serving tiers, shared rather than rebuilt: generated
# feature tables, a temporary MLflow, and a SQLite world with a registered champion.
feature_data = integration.feature_data
mlflow_env = serving.mlflow_env
world = serving.world

NODES = 3
HOST = "127.0.0.1"
# A node listens on its port and on port + 10000 for the cluster bus (Redis' fixed offset).
BUS_OFFSET = 10_000
START_S = 10.0
CLUSTER_OK_S = 30.0
STOP_S = 10.0


@dataclass
class NodeProcess:
    """One redis-server of the cluster, with what it takes to start it again as itself."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        # Written by the node: its id, epoch and slots, so a restart rejoins as the same node.
        return self.workdir / f"nodes-{self.port}.conf"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"node {self.port} is not running")
        return self.process.pid

    def start(self) -> None:
        command = [
            "redis-server", "--port", str(self.port), "--bind", HOST,
            "--cluster-enabled", "yes", "--cluster-config-file", str(self.config),
            "--dir", str(self.workdir), "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--logfile", str(self.workdir / f"node-{self.port}.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        with redis.Redis(host=HOST, port=self.port, socket_timeout=1.0) as client:
            deadline = time.monotonic() + START_S
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server on {self.port} exited: {self._log_tail()}")
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                    if client.ping():
                        return
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not answer in {START_S:.0f} s")

    def freeze(self) -> None:
        """SIGSTOP: the node keeps its sockets but answers nothing (connections hang)."""
        self.process_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, as a crashed machine: connections are refused until start() again."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=STOP_S)
            self.process = None

    def stop(self) -> None:
        """Terminate by pid, then kill if it does not go."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            # A frozen process cannot act on SIGTERM until it is continued.
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
        try:
            self.process.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_S)
        self.process = None

    def process_signal(self, signum: int) -> None:
        if self.process is None:
            raise RuntimeError(f"node {self.port} is not running")
        self.process.send_signal(signum)

    def cluster_state(self) -> str | None:
        """cluster_state from CLUSTER INFO (ok or fail), None when the node does not answer."""
        client = redis.Redis(host=HOST, port=self.port, socket_timeout=1.0)
        try:
            info = client.execute_command("CLUSTER INFO")
        except (redis.ConnectionError, redis.TimeoutError):
            return None
        finally:
            client.close()
        # redis-py parses the reply into a dict of the "name:value" lines.
        state = info.get("cluster_state") if isinstance(info, dict) else None
        return None if state is None else str(state)

    def _log_tail(self) -> str:
        path = self.workdir / f"node-{self.port}.log"
        lines = path.read_text(errors="replace").splitlines()[-5:] if path.exists() else []
        return f"{path}: " + " | ".join(lines)


@dataclass
class LocalRedisCluster:
    """Three masters, no replicas, on 127.0.0.1."""

    nodes: list[NodeProcess]
    workdir: Path
    _client: RedisCluster | None = field(default=None, repr=False)

    @property
    def connection_string(self) -> str:
        """Feast's form for redis_type redis_cluster: host:port of each startup node."""
        return ",".join(f"{HOST}:{node.port}" for node in self.nodes)

    @property
    def online_store(self) -> dict[str, object]:
        return {
            "type": "redis",
            "redis_type": "redis_cluster",
            "connection_string": self.connection_string,
        }

    def client(self) -> RedisCluster:
        if self._client is None:
            self._client = RedisCluster(host=HOST, port=self.nodes[0].port)
        return self._client

    def node_of(self, key: bytes) -> NodeProcess:
        """The node that serves the hash slot of key, as the cluster itself says."""
        served_by = self.client().get_node_from_key(key)
        if served_by is None:
            raise AssertionError(f"the cluster names no node for key {key!r}")
        return next(node for node in self.nodes if node.port == int(served_by.port))

    def keys_per_node(self) -> dict[int, int]:
        counts = {}
        for node in self.nodes:
            with redis.Redis(host=HOST, port=node.port) as client:
                counts[node.port] = int(client.dbsize())
        return counts

    def set_node_timeout(self, milliseconds: int) -> None:
        """How long a node may not answer before the others mark it failed; with no
        replicas to fail over to, the whole cluster then refuses (CLUSTERDOWN)."""
        for node in self.nodes:
            if node.process is not None:
                with redis.Redis(host=HOST, port=node.port) as client:
                    client.config_set("cluster-node-timeout", milliseconds)

    def wait_state(self, state: str, nodes: list[NodeProcess], seconds: float) -> None:
        """Until each of `nodes` says cluster_state:<state>."""
        deadline = time.monotonic() + seconds
        states: list[str | None] = []
        while time.monotonic() < deadline:
            states = [node.cluster_state() for node in nodes]
            if all(found == state for found in states):
                return
            time.sleep(0.1)
        ports = [node.port for node in nodes]
        raise RuntimeError(f"nodes {ports} not {state} after {seconds:.0f} s: states {states}")

    def wait_ok(self, seconds: float = CLUSTER_OK_S) -> None:
        """Until every node says cluster_state:ok (all slots served, every node agrees)."""
        self.wait_state("ok", self.nodes, seconds)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        for node in self.nodes:
            node.stop()


def _free_ports(count: int) -> list[int]:
    """Ports that are free now, each with its cluster-bus port (+10000) free too: a port
    above 55535 has no bus port at all, so the OS's pick is retried until one fits."""
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            held = socket.socket()
            held.bind((HOST, 0))
            sockets.append(held)  # held until all are chosen, so no port comes twice
            port = held.getsockname()[1]
            if port + BUS_OFFSET > 65535:
                continue
            bus = socket.socket()
            try:
                bus.bind((HOST, port + BUS_OFFSET))
            except OSError:
                bus.close()
                continue
            sockets.append(bus)
            ports.append(port)
    finally:
        for held in sockets:
            held.close()
    return ports


@contextlib.contextmanager
def local_redis_cluster(workdir: Path) -> Iterator[LocalRedisCluster]:
    """Start three cluster-enabled nodes, create the cluster, wait until it is ok; stop
    every node by its pid afterwards, whatever happened."""
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            pytest.fail(
                f"{tool} not found: the Redis Cluster tests start their own nodes "
                "(`make services` installs Redis; Debian package redis-server)"
            )
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = LocalRedisCluster([NodeProcess(p, workdir) for p in _free_ports(NODES)], workdir)
    try:
        for node in cluster.nodes:
            node.start()
        create = subprocess.run(
            ["redis-cli", "--cluster", "create",
             *(f"{HOST}:{node.port}" for node in cluster.nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {create.stdout}{create.stderr}")
        cluster.wait_ok()
        log.info("redis cluster up on %s", cluster.connection_string)
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """A cluster per test module: a fault test's frozen or killed node never reaches
    another module's tests."""
    with local_redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster
