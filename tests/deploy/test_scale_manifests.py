"""The scale-out deploy files, checked without a Docker engine or a Kubernetes cluster
(neither runs here; `docker compose config` and kubeconform are not installed either).

deploy/compose.scale.yaml is read as Compose reads it, as an override of docker-compose.yml:
`${VAR:-default}` interpolated with an empty environment, `$$` as a literal `$`, the two files
merged. Then: every dependency, volume, config and network names something that exists; the
Spark image is the pyspark version pinned in requirements-spark.lock; the Redis nodes run in
cluster mode and the create command names every node; the platform services use a profile
that exists with every variable it reads. deploy/kubernetes/spark.yaml and redis-cluster.yaml
are parsed as multi-document YAML and checked for what the API server and the pods would need
to fit together: names, selectors that find pods, ports that exist, probes and resources.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

BASE_COMPOSE = REPO_ROOT / "docker-compose.yml"
SCALE_COMPOSE = REPO_ROOT / "deploy" / "compose.scale.yaml"
SPARK_MANIFEST = REPO_ROOT / "deploy" / "kubernetes" / "spark.yaml"
REDIS_MANIFEST = REPO_ROOT / "deploy" / "kubernetes" / "redis-cluster.yaml"
CRONJOBS_MANIFEST = REPO_ROOT / "deploy" / "kubernetes" / "cronjobs.yaml"
SPARK_LOCK = REPO_ROOT / "requirements-spark.lock"
DOCKERFILE = REPO_ROOT / "Dockerfile"

# The platform services of docker-compose.yml that serve from the online store.
PLATFORM = ("scorer", "admin", "scheduler")
REDIS_NODES = ("redis-node-1", "redis-node-2", "redis-node-3")
APP_HOME = Path("/app")  # the image's WORKDIR and project home (Dockerfile)
NAMESPACE = "collectwise"  # as deploy/kubernetes/cronjobs.yaml
SPARK_IMAGE = re.compile(r"^apache/spark:(?P<version>\d+\.\d+\.\d+)-scala2\.13-java17-ubuntu$")
REDIS_CONFIGS = {
    "redis-cluster-conf": "redis.conf",
    "redis-cluster-start-node": "start-node.sh",
    "redis-cluster-create": "create-cluster.sh",
}

# ------------------------------------------------------------------------------ compose


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}|(?P<bare>\w+))"
)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation of one value. A variable without a default that `env` does not
    set is an error here (Compose would warn and put an empty string)."""

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("name") or match.group("bare")
        op, default, value = match.group("op"), match.group("default") or "", env.get(name)
        if op == ":-":
            return value or default
        if op == "-":
            return default if value is None else value
        if value is None:
            raise AssertionError(f"${{{name}}} is not set and has no default")
        return value

    return _VARIABLE.sub(substitute, text)


def _interpolated(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: _interpolated(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolated(value, env) for value in node]
    return interpolate(node, env) if isinstance(node, str) else node


def _merged(base: Any, override: Any) -> Any:
    """Compose's merge for mappings (key by key, recursively); anything else is replaced.
    Enough here: the override sets only mappings on the base's services (tested below)."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _merged(base[key], value) if key in base else value
        return out
    return override


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


@cache
def scale_raw() -> dict[str, Any]:
    """The override as written (`$$` still doubled)."""
    return _load(SCALE_COMPOSE)


@cache
def scale() -> dict[str, Any]:
    interpolated: dict[str, Any] = _interpolated(scale_raw(), {})
    return interpolated


@cache
def base() -> dict[str, Any]:
    interpolated: dict[str, Any] = _interpolated(_load(BASE_COMPOSE), {})
    return interpolated


@cache
def project() -> dict[str, Any]:
    """docker-compose.yml with deploy/compose.scale.yaml over it, as `-f ... -f ...`."""
    merged: dict[str, Any] = _merged(base(), scale())
    return merged


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = project()["services"]
    return found


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    """Target -> condition (the list form means service_started)."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


def mounts(service: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume entry, short or long syntax."""
    out = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            out.append((str(entry.get("source", "")), str(entry["target"])))
        else:
            source, target, *_ = str(entry).split(":")
            out.append((source, target))
    return out


def named_volumes(service: Mapping[str, Any]) -> dict[str, str]:
    """Target -> volume name, for named volumes only (not bind mounts)."""
    return {t: s for s, t in mounts(service) if s and not s.startswith((".", "/", "~"))}


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) for item in raw)
    return {key: str(value) for key, value in raw.items()}


def flag(command: list[str], name: str) -> str:
    """The value after `name` in an argument list."""
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


def redis_conf() -> dict[str, str]:
    text = scale()["configs"]["redis-cluster-conf"]["content"]
    pairs = (line.split(None, 1) for line in text.splitlines() if line.strip())
    return {key: value.strip() for key, value in pairs if not key.startswith("#")}


def lock_pin(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)$", SPARK_LOCK.read_text(), re.MULTILINE)
    assert match, f"{package} is not pinned in {SPARK_LOCK.name}"
    return match.group(1)


def spark_app_dockerfile() -> str:
    dockerfile: str = services()["spark-worker"]["build"]["dockerfile_inline"]
    return dockerfile


def profile_variables(profile: Path) -> set[str]:
    """The ${VAR} a Feast profile reads (Feast expands them from the environment)."""
    return set(re.findall(r"\$\{(\w+)\}", profile.read_text()))


# ------------------------------------------------------------------------------ compose tests


def test_the_scale_file_overrides_base_services_only_with_mappings() -> None:
    # Compose merges mappings key by key; a list here (ports, volumes, command) would follow
    # other rules than this test's merge, and would change more than the profile.
    base_services = base()["services"]
    overridden = [name for name in scale()["services"] if name in base_services]
    assert set(overridden) == set(PLATFORM)
    for name in overridden:
        spec = scale()["services"][name]
        assert set(spec) == {"environment", "depends_on"}, name
        assert all(isinstance(value, dict) for value in spec.values()), name
    for name, spec in scale()["services"].items():
        if name not in base_services:
            assert spec.get("image"), f"new service {name} has no image"
    extra_keys = {key for key in scale() if not key.startswith("x-")}
    assert extra_keys <= {"services", "configs", "volumes"}


def test_every_variable_has_a_default() -> None:
    # The stack starts with nothing but the (git-ignored) .env: interpolating both files with
    # an empty environment must not meet a variable without a default.
    for path in (BASE_COMPOSE, SCALE_COMPOSE):
        for value in _strings(_load(path)):
            interpolate(value, {})


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def test_dependencies_exist_and_their_conditions_can_be_met() -> None:
    everything = services()
    edges = set()
    for name, spec in everything.items():
        for target, condition in depends_on(spec).items():
            edges.add((name, target))
            assert target in everything, f"{name} depends on unknown service {target}"
            target_spec = everything[target]
            if condition == "service_healthy":
                check = target_spec.get("healthcheck", {})
                assert check.get("test") and not check.get("disable"), (name, target)
            elif condition == "service_completed_successfully":
                # A one-shot: restarted containers never count as completed.
                assert target_spec.get("restart", "no") == "no", (name, target)
                assert "deploy" not in target_spec, (name, target)
            else:
                assert condition == "service_started", (name, target, condition)
            # `up` starts no service of a profile; nothing it starts may need one.
            if not spec.get("profiles"):
                assert not target_spec.get("profiles"), (name, target)
    # The order the scale-out stack starts in: master, workers, driver; nodes, the cluster,
    # then the services that read it.
    expected = {("spark-worker", "spark-master"), ("spark-driver", "spark-worker")}
    expected |= {("redis-cluster-init", node) for node in REDIS_NODES}
    expected |= {(name, "redis-cluster-init") for name in PLATFORM}
    assert expected <= edges


def test_dependencies_have_no_cycle() -> None:
    everything = services()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for target in depends_on(everything[name]):
            visit(target, (*path, name))
        done.add(name)

    for name in everything:
        visit(name, ())
    assert done == set(everything)


def test_volumes_and_configs_exist_and_are_used() -> None:
    declared_volumes = set(project().get("volumes") or {})
    declared_configs = set(project().get("configs") or {})
    used_volumes: set[str] = set()
    used_configs: set[str] = set()
    for name, spec in services().items():
        for source, target in mounts(spec):
            assert target.startswith("/"), (name, target)
            if source.startswith(("./", "/")):
                assert (REPO_ROOT / source).exists(), f"{name} bind-mounts missing {source}"
            else:
                assert source in declared_volumes, f"{name} mounts undeclared volume {source}"
                used_volumes.add(source)
        for config in spec.get("configs", []):
            source = config["source"] if isinstance(config, dict) else config
            assert source in declared_configs, f"{name} uses undeclared config {source}"
            used_configs.add(source)
    assert set(scale()["volumes"]) <= used_volumes
    assert set(scale()["configs"]) <= used_configs


def test_every_service_is_on_the_network_whose_names_the_nodes_announce() -> None:
    # Redis nodes announce, and Spark dials, Compose service names: those resolve only for
    # containers on a common network. None is declared, so all share the project's default.
    assert "networks" not in project()
    for name, spec in services().items():
        assert "networks" not in spec and "network_mode" not in spec, name


def test_published_host_ports_do_not_clash() -> None:
    published: dict[str, str] = {}
    for name, spec in services().items():
        for port in spec.get("ports", []):
            host_side = str(port).rsplit(":", 1)[0]
            assert host_side not in published, f"{name} and {published.get(host_side)}"
            published[host_side] = name
    assert "127.0.0.1:8080" in published  # the Spark master's UI, beside the base's ports


# ----------------------------------------------------------------------------------- spark


def test_the_spark_image_is_the_pinned_pyspark_version_on_java_17() -> None:
    pin = lock_pin("pyspark")
    master_image = services()["spark-master"]["image"]
    match = SPARK_IMAGE.match(master_image)
    assert match, master_image
    assert match.group("version") == pin
    # Workers and the driver carry the same distribution: their image is built from it.
    stages = re.findall(r"^FROM\s+(\S+)", spark_app_dockerfile(), re.MULTILINE)
    assert stages[0] == master_image
    assert stages[1] == base()["services"]["scorer"]["image"]  # the Collectwise image
    k8s_images = {c["image"] for c in _containers(SPARK_MANIFEST) if "apache/spark" in c["image"]}
    assert k8s_images == {master_image}


def test_the_driver_imports_pyspark_and_py4j_of_that_distribution() -> None:
    env = dict(re.findall(r"(\w+)=(\S+)", spark_app_dockerfile()))
    paths = env["PYTHONPATH"].split(":")
    assert paths[0] == str(APP_HOME)  # the Dockerfile's reason for PYTHONPATH still holds
    assert f"{env['SPARK_HOME']}/python" in paths
    assert f"{env['SPARK_HOME']}/python/lib/py4j-{lock_pin('py4j')}-src.zip" in paths
    assert env["PYSPARK_PYTHON"] == "/opt/venv/bin/python"  # the image's venv, on every side
    assert env["JAVA_HOME"] == "/opt/java/openjdk"  # where eclipse-temurin puts it


def test_workers_and_driver_share_the_data_path_the_spark_profile_writes() -> None:
    worker, driver = services()["spark-worker"], services()["spark-driver"]
    shared = set(named_volumes(worker).items()) & set(named_volumes(driver).items())
    assert shared, "the driver and the workers share no volume"
    profile = yaml.safe_load(
        (REPO_ROOT / environment(driver)["FEAST_FS_YAML_FILE_PATH"]).read_text()
    )
    assert profile["offline_store"]["type"] == "spark"
    staging = APP_HOME / profile["offline_store"]["staging_location"]  # read from the home
    features = APP_HOME / "data" / "features"  # PathSettings.features_dir under the home
    for path in (staging, features):
        assert any(path.is_relative_to(target) for target, _ in shared), path
    # The same on Kubernetes: one claim at one path in the workers and the driver.
    claims = {
        (volume["persistentVolumeClaim"]["claimName"], mount["mountPath"])
        for spec in _pod_specs(SPARK_MANIFEST)
        for volume in spec.get("volumes", [])
        if "persistentVolumeClaim" in volume
        for container in spec["containers"]
        for mount in container.get("volumeMounts", [])
        if mount["name"] == volume["name"]
    }
    assert claims == {("collectwise-data", "/app/data")}
    assert staging.is_relative_to("/app/data") and features.is_relative_to("/app/data")


def test_workers_and_driver_dial_the_master_by_its_advertised_name() -> None:
    master = services()["spark-master"]["command"]
    url = f"spark://{flag(master, '--host')}:{flag(master, '--port')}"
    assert flag(master, "--host") == "spark-master"  # the service's DNS name
    assert services()["spark-worker"]["command"][-1] == url
    assert flag(services()["spark-driver"]["command"], "--spark-master") == url
    assert flag(services()["spark-driver"]["command"], "--engine") == "spark"
    # Kubernetes: the master binds its pod host name, others reach it through the Service.
    objects = _objects(SPARK_MANIFEST)
    service = objects[("Service", "spark-master")]
    rpc_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "rpc")
    pod = objects[("Deployment", "spark-master")]["spec"]["template"]["spec"]
    assert flag(pod["containers"][0]["args"], "--host") == pod["hostname"] == "spark-master"
    k8s_url = f"spark://{service['metadata']['name']}:{rpc_port}"
    worker = objects[("Deployment", "spark-worker")]["spec"]["template"]["spec"]
    assert worker["containers"][0]["args"][-1] == k8s_url
    driver = objects[("CronJob", "collectwise-build-features-spark")]
    command = driver["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert flag(command, "--spark-master") == k8s_url
    assert "spark.driver.host=$(POD_IP)" in command


def test_the_driver_is_a_one_off_with_the_spark_profile_and_the_base_settings() -> None:
    driver = services()["spark-driver"]
    assert driver["profiles"] == ["jobs"]  # never started by `up`
    assert "ports" not in driver and "restart" not in driver
    env = environment(driver)
    assert (REPO_ROOT / env["FEAST_FS_YAML_FILE_PATH"]).is_file()
    base_env = environment(base()["services"]["scorer"])
    for key in ("COLLECTWISE_MLFLOW__TRACKING_URI", "COLLECTWISE_MLFLOW__ARTIFACT_LOCATION"):
        assert env[key] == base_env[key], key


def test_spark_containers_advertise_their_own_address() -> None:
    # The wrapper exports the container's IP as SPARK_LOCAL_HOSTNAME, then runs the command.
    entrypoint = services()["spark-worker"]["entrypoint"]
    assert entrypoint[:2] == ["sh", "-c"]
    script = entrypoint[2]
    assert "export SPARK_LOCAL_HOSTNAME" in script and script.endswith('exec "$@"')
    assert services()["spark-driver"]["entrypoint"] == entrypoint


# ----------------------------------------------------------------------------------- redis


def test_redis_nodes_run_in_cluster_mode_and_announce_their_service_names() -> None:
    conf = redis_conf()
    assert conf["cluster-enabled"] == "yes"
    assert conf["cluster-preferred-endpoint-type"] == "hostname"
    start = scale()["configs"]["redis-cluster-start-node"]["content"]
    assert '--cluster-announce-hostname "$REDIS_NODE_HOSTNAME"' in start
    volumes = set()
    for name in REDIS_NODES:
        node = services()[name]
        assert node["image"].startswith("redis:7"), name
        targets = {c["source"]: c["target"] for c in node["configs"]}
        assert targets["redis-cluster-start-node"] in node["command"], name
        assert start.count(targets["redis-cluster-conf"]) == 1, name  # the server reads it
        assert environment(node)["REDIS_NODE_HOSTNAME"] == name
        # nodes.conf (identity, slots) on the node's own volume, so a restart rejoins.
        data = named_volumes(node)
        assert any(Path(conf["cluster-config-file"]).is_relative_to(t) for t in data), name
        assert Path(conf["dir"]) in {Path(t) for t in data}, name
        volumes |= set(data.values())
        assert node["healthcheck"]["test"][-1] == "ping"
    assert len(volumes) == len(REDIS_NODES)


def test_the_cluster_create_command_names_every_node() -> None:
    init = services()["redis-cluster-init"]
    port = redis_conf()["port"]
    script_path = init["command"][1]
    assert {c["target"]: c["source"] for c in init["configs"]}[script_path]
    assert init["command"][2:] == [f"{name}:{port}" for name in REDIS_NODES]
    assert depends_on(init) == dict.fromkeys(REDIS_NODES, "service_healthy")
    script = scale()["configs"]["redis-cluster-create"]["content"]
    assert 'redis-cli --cluster create "$@" --cluster-replicas 0 --cluster-yes' in script
    # Kubernetes: the Job names every pod of the StatefulSet under its headless Service.
    objects = _objects(REDIS_MANIFEST)
    nodes = objects[("StatefulSet", "redis-cluster")]
    job = objects[("Job", "redis-cluster-create")]["spec"]["template"]["spec"]["containers"][0]
    service, replicas = nodes["spec"]["serviceName"], nodes["spec"]["replicas"]
    expected = [f"redis-cluster-{i}.{service}.{NAMESPACE}.svc:{port}" for i in range(replicas)]
    assert job["args"] == expected
    assert job["command"] == ["sh", "/etc/redis-cluster/create-cluster.sh"]


def test_compose_and_kubernetes_run_the_same_redis_files() -> None:
    config_map = _objects(REDIS_MANIFEST)[("ConfigMap", "redis-cluster-config")]["data"]
    for config, key in REDIS_CONFIGS.items():
        # Interpolated: `$$` written in the compose file is the `$` the script runs with.
        assert scale()["configs"][config]["content"] == config_map[key], key
    assert "$$" in scale_raw()["configs"]["redis-cluster-start-node"]["content"]


def test_the_platform_services_use_the_cluster_profile_and_its_variables() -> None:
    copied = re.search(r"^COPY (feature_store\S*\.yaml)", DOCKERFILE.read_text(), re.MULTILINE)
    assert copied, "the Dockerfile no longer copies the profiles"
    nodes = [f"{name}:{redis_conf()['port']}" for name in REDIS_NODES]
    for name in PLATFORM:
        service = services()[name]
        env = environment(service)
        profile = REPO_ROOT / env["FEAST_FS_YAML_FILE_PATH"]
        assert profile.is_file(), profile
        assert fnmatch.fnmatch(profile.name, copied.group(1))  # baked into the image
        online = yaml.safe_load(profile.read_text())["online_store"]
        assert online["redis_type"] == "redis_cluster"
        assert online["connection_string"] == "${REDIS_CLUSTER_NODES}"
        variables = profile_variables(profile)
        assert variables and variables <= set(env), (name, variables - set(env))
        assert env["REDIS_CLUSTER_NODES"].split(",") == nodes
        assert depends_on(service)["redis-cluster-init"] == "service_completed_successfully"
    # Kubernetes: the ConfigMap the pods take their profile and nodes from.
    objects = _objects(REDIS_MANIFEST)
    env_map = objects[("ConfigMap", "collectwise-redis-cluster-env")]["data"]
    profile = REPO_ROOT / env_map["FEAST_FS_YAML_FILE_PATH"]
    assert profile.is_file() and profile_variables(profile) <= set(env_map)
    job = objects[("Job", "redis-cluster-create")]["spec"]["template"]["spec"]["containers"][0]
    assert env_map["REDIS_CLUSTER_NODES"].split(",") == job["args"]


def test_redis_nodes_announce_names_that_resolve_to_their_pods() -> None:
    objects = _objects(REDIS_MANIFEST)
    nodes = objects[("StatefulSet", "redis-cluster")]
    service = objects[("Service", nodes["spec"]["serviceName"])]
    # Headless, with not-ready pods published: the nodes are ready only once the Job has
    # joined them, and the Job finds them by these names.
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert nodes["spec"]["podManagementPolicy"] == "Parallel"
    container = nodes["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    announced = f"$(POD_NAME).{service['metadata']['name']}.$(POD_NAMESPACE).svc"
    assert env["REDIS_NODE_HOSTNAME"] == announced
    readiness = " ".join(container["readinessProbe"]["exec"]["command"])
    assert "cluster_state:ok" in readiness


# ------------------------------------------------------------------------------ kubernetes


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _objects(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in _documents(path)}


def _pod_template(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: dict[str, Any] | None = spec.get("template")
    return template


def _pod_specs(path: Path) -> list[dict[str, Any]]:
    return [t["spec"] for doc in _documents(path) if (t := _pod_template(doc))]


def _containers(path: Path) -> list[dict[str, Any]]:
    return [c for spec in _pod_specs(path) for c in spec["containers"]]


MANIFESTS = pytest.mark.parametrize("path", [SPARK_MANIFEST, REDIS_MANIFEST], ids=lambda p: p.name)


@MANIFESTS
def test_every_object_is_named_in_the_namespace(path: Path) -> None:
    docs = _documents(path)
    assert docs
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), doc
        assert doc["metadata"]["name"] and doc["metadata"]["namespace"] == NAMESPACE
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "collectwise"
    assert len(_objects(path)) == len(docs)  # no kind/name twice


@MANIFESTS
def test_services_select_pods_that_carry_their_ports(path: Path) -> None:
    templates = [t for doc in _documents(path) if (t := _pod_template(doc))]
    services = [doc for doc in _documents(path) if doc["kind"] == "Service"]
    assert services
    for service in services:
        selector = service["spec"]["selector"]
        selected = [t for t in templates if selector.items() <= t["metadata"]["labels"].items()]
        assert selected, f"Service {service['metadata']['name']} selects no pod"
        for template in selected:
            ports = [p for c in template["spec"]["containers"] for p in c.get("ports", [])]
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                key = "name" if isinstance(target, str) else "containerPort"
                assert any(p.get(key) == target for p in ports), (service, target)


@MANIFESTS
def test_workload_and_budget_selectors_match_pod_templates(path: Path) -> None:
    templates = [t for doc in _documents(path) if (t := _pod_template(doc))]
    for doc in _documents(path):
        match_labels = doc.get("spec", {}).get("selector", {}).get("matchLabels")
        if match_labels is None:
            continue
        own = _pod_template(doc)
        candidates = [own] if own else templates
        assert any(
            match_labels.items() <= t["metadata"]["labels"].items() for t in candidates if t
        ), doc["metadata"]["name"]


@MANIFESTS
def test_containers_have_resources_probes_and_ports_they_name(path: Path) -> None:
    for doc in _documents(path):
        template = _pod_template(doc)
        if template is None:
            continue
        assert template["spec"]["securityContext"]["runAsNonRoot"] is True
        for container in template["spec"]["containers"]:
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), container["name"]
            named_ports = {p["name"] for p in container.get("ports", [])}
            probes = [container[k] for k in ("readinessProbe", "livenessProbe") if k in container]
            if doc["kind"] in ("Deployment", "StatefulSet"):
                assert "readinessProbe" in container and "livenessProbe" in container
            for probe in probes:
                for handler in ("httpGet", "tcpSocket"):
                    port = probe.get(handler, {}).get("port")
                    if isinstance(port, str):
                        assert port in named_ports, (container["name"], port)


def _words(container: Mapping[str, Any]) -> list[str]:
    return [str(word) for word in [*container.get("command", []), *container.get("args", [])]]


@MANIFESTS
def test_volumes_exist_and_scripts_are_in_the_mounted_config_maps(path: Path) -> None:
    config_maps = {name: doc for (kind, name), doc in _objects(path).items() if kind == "ConfigMap"}
    # Claims the platform's other manifests already expect (cronjobs.yaml), none new.
    known_claims = {
        v["persistentVolumeClaim"]["claimName"]
        for spec in _pod_specs(CRONJOBS_MANIFEST)
        for v in spec.get("volumes", [])
        if "persistentVolumeClaim" in v
    }
    scripts = 0
    for doc in _documents(path):
        template = _pod_template(doc)
        if template is None:
            continue
        volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
        claim_templates = {
            c["metadata"]["name"] for c in doc["spec"].get("volumeClaimTemplates", [])
        }
        for volume in volumes.values():
            config_map = volume.get("configMap", {}).get("name")
            assert config_map is None or config_map in config_maps, volume
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            assert claim is None or claim in known_claims, volume
        for container in template["spec"]["containers"]:
            mounted = {}
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes or mount["name"] in claim_templates, mount
                mounted[mount["mountPath"]] = volumes.get(mount["name"], {}).get("configMap")
            # A script the command runs from a mounted ConfigMap is a key of that ConfigMap.
            for word in _words(container):
                folder, _, key = word.rpartition("/")
                if mounted.get(folder):
                    assert key in config_maps[mounted[folder]["name"]]["data"], word
                    scripts += 1
    assert scripts == (2 if path == REDIS_MANIFEST else 0)


@MANIFESTS
def test_variable_references_name_variables_defined_before_them(path: Path) -> None:
    # Kubernetes expands $(VAR) only for a variable defined earlier in the same container;
    # any other stays literal text (a worker advertising the host "$(POD_IP)").
    references = 0
    for container in _containers(path):
        defined: list[str] = []
        for entry in container.get("env", []):
            for ref in re.findall(r"\$\((\w+)\)", str(entry.get("value", ""))):
                assert ref in defined, (container["name"], ref)
                references += 1
            defined.append(entry["name"])
        for word in _words(container):
            for ref in re.findall(r"\$\((\w+)\)", word):
                assert ref in defined, (container["name"], ref)
                references += 1
    assert references >= 2


def test_the_redis_scripts_parse_as_posix_sh() -> None:
    # The images run them with `sh FILE`: Debian's dash, as /bin/sh is here. `sh -n` parses
    # without running, so a quoting or `$$` slip fails here rather than in a container.
    sh = shutil.which("sh")
    assert sh, "no sh on this machine"
    for config, key in REDIS_CONFIGS.items():
        if not key.endswith(".sh"):
            continue
        text = scale()["configs"][config]["content"]
        assert text.startswith("#!/bin/sh\n") and "set -eu" in text, key
        parsed = subprocess.run(
            [sh, "-n"], input=text, capture_output=True, text=True, check=False, timeout=10
        )
        assert parsed.returncode == 0, (key, parsed.stderr)
