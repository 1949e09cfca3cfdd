"""The production compose file is valid for Debian's docker-compose and complete.

Nothing is started: images cannot be pulled where the tests run.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"

# MLflow's client variables, passed from the host to the services.
_PASSED_THROUGH = (
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
)
# The Kafka security variables: this file's Kafka has PLAINTEXT listeners only.
_KAFKA_SECURITY = {
    "MODELBUS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "MODELBUS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "MODELBUS_KAFKA_SASL_USERNAME": "svc",
    "MODELBUS_KAFKA_SASL_PASSWORD": "kafka-pw",
    "MODELBUS_KAFKA_SSL_CAFILE": "/run/secrets/ca.pem",
    "MODELBUS_KAFKA_SSL_CERTFILE": "/run/secrets/client.pem",
    "MODELBUS_KAFKA_SSL_KEYFILE": "/run/secrets/client.key",
    "MODELBUS_KAFKA_SSL_PASSWORD": "key-pw",
    "MODELBUS_KAFKA_SSL_CHECK_HOSTNAME": "false",
}
# Variables of the host that the file reads: the defaults are checked without them.
_HOST_VARIABLES = (
    *_PASSED_THROUGH, *_KAFKA_SECURITY, "MODELBUS_PUBLISH_ADDRESS", "MODELBUS_METRICS_PORT",
    "MODELBUS_KAFKA_ADVERTISED_HOST",
)
_SERVICES = ("discovery", "catalog", "worker", "worker-2", "gateway")


def _compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed (deploy/setup.sh installs it)", pytrace=False)
    host = {k: v for k, v in os.environ.items() if k not in _HOST_VARIABLES}
    return subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
        env={**host, **(env or {})},
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    result = _compose("config")
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = yaml.safe_load(result.stdout)
    return parsed


def test_the_file_is_valid_and_has_every_service(config: dict[str, Any]) -> None:
    expected = {"kafka", "mlflow", "discovery", "catalog", "worker", "worker-2", "gateway"}
    assert set(config["services"]) == expected
    listed = _compose("config", "--services")
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) == expected


def test_kafka_is_apache_kafka_in_kraft_mode(config: dict[str, Any]) -> None:
    kafka = config["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "INTERNAL://kafka:9092" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]


def test_mlflow_keeps_sqlite_in_a_volume_and_allows_the_service_host(
    config: dict[str, Any],
) -> None:
    mlflow = config["services"]["mlflow"]
    command = " ".join(mlflow["command"])
    assert "sqlite:////var/lib/modelbus/mlflow/mlflow.db" in command
    assert "--allowed-hosts=" in command and "mlflow:5000" in command
    assert any("mlflow-data" in str(volume) for volume in mlflow["volumes"])


@pytest.mark.parametrize("service", _SERVICES)
def test_services_point_at_kafka_and_mlflow(config: dict[str, Any], service: str) -> None:
    spec = config["services"][service]
    assert spec["build"]["dockerfile"] == "deploy/Dockerfile"
    commands = {"catalog": ["catalog", "serve"], "worker-2": ["worker"]}
    assert spec["command"] == commands.get(service, [service])
    assert spec["environment"]["MODELBUS_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert spec["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


@pytest.mark.parametrize("service", _SERVICES)
def test_services_serve_metrics_and_are_healthy_when_ready(
    config: dict[str, Any], service: str
) -> None:
    spec = config["services"][service]
    assert spec["environment"]["MODELBUS_METRICS_PORT"] == "9400"
    probe = spec["healthcheck"]["test"]
    assert probe[:3] == ["CMD", "python", "-c"]
    assert "/readyz" in probe[3] and "9400" not in probe[3]  # the port is the variable's
    # Scraped on the compose network, not published; the gateway publishes its HTTP port.
    published = [str(p) for p in spec.get("ports", [])]
    assert all(":8080" in p and "9400" not in p for p in published)
    assert bool(published) == (service == "gateway")


def test_the_gateway_listens_in_its_container_and_is_published_on_loopback(
    config: dict[str, Any]
) -> None:
    gateway = config["services"]["gateway"]
    assert gateway["environment"]["MODELBUS_GATEWAY_HOST"] == "0.0.0.0"
    assert gateway["environment"]["MODELBUS_GATEWAY_PORT"] == "8080"
    assert [str(p) for p in gateway["ports"]] == ["127.0.0.1:8080:8080/tcp"]


def test_the_healthcheck_follows_the_metrics_port() -> None:
    result = _compose("config", env={"MODELBUS_METRICS_PORT": "9555"})
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for service in _SERVICES:
        assert services[service]["environment"]["MODELBUS_METRICS_PORT"] == "9555"
        assert "9400" not in str(services[service]["healthcheck"])


class _Readyz(http.server.BaseHTTPRequestHandler):
    ready = True

    def do_GET(self) -> None:
        found = self.path == "/readyz"
        self.send_response((200 if type(self).ready else 503) if found else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_the_healthcheck_probes_readyz_on_the_port_its_container_was_given(
    config: dict[str, Any],
) -> None:
    """The probe's own code, run as the container runs it, against a /readyz on the port
    that MODELBUS_METRICS_PORT names: healthy while it answers 200, not when it says 503."""
    code = config["services"]["worker"]["healthcheck"]["test"][3]
    handler = type("Handler", (_Readyz,), {})
    with http.server.HTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            port = server.server_address[1]
            ready = _probe(code, port)
            handler.ready = False
            not_ready = _probe(code, port)
        finally:
            server.shutdown()
    assert ready.returncode == 0, ready.stderr
    assert not_ready.returncode != 0
    assert "HTTP Error 503" in not_ready.stderr


def _probe(code: str, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "MODELBUS_METRICS_PORT": str(port)},
        capture_output=True, text=True, timeout=30, check=False,
    )


@pytest.mark.parametrize("service", ["worker", "worker-2"])
def test_the_workers_reach_the_docker_engine_and_a_shared_cache(
    config: dict[str, Any], service: str
) -> None:
    worker = config["services"][service]
    volumes = [str(volume) for volume in worker["volumes"]]
    assert any("/var/run/docker.sock" in volume for volume in volumes)
    cache = worker["environment"]["MODELBUS_WORKER_CACHE_DIR"]
    assert f"{cache}:{cache}:rw" in volumes


def test_two_workers_share_the_requests_of_twelve_partitions(config: dict[str, Any]) -> None:
    workers = [config["services"][name] for name in ("worker", "worker-2")]
    assert [w["command"] for w in workers] == [["worker"], ["worker"]]
    assert {w["environment"]["MODELBUS_TOPIC_PARTITIONS"] for w in workers} == {"12"}


@pytest.mark.parametrize(("service", "port"), [("kafka", 9094), ("mlflow", 5000)])
def test_published_ports_are_bound_to_loopback_by_default(
    config: dict[str, Any], service: str, port: int
) -> None:
    published = [str(entry) for entry in config["services"][service]["ports"]]
    assert published == [f"127.0.0.1:{port}:{port}/tcp"]


def test_no_service_publishes_a_port_on_every_interface(config: dict[str, Any]) -> None:
    for name, spec in config["services"].items():
        for entry in spec.get("ports", []):
            assert str(entry).startswith("127.0.0.1:"), f"{name} publishes {entry}"


@pytest.mark.parametrize("service", _SERVICES)
def test_services_use_plaintext_like_the_kafka_of_the_file(
    config: dict[str, Any], service: str
) -> None:
    env = config["services"][service]["environment"]
    assert env["MODELBUS_KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert not (set(_KAFKA_SECURITY) - {"MODELBUS_KAFKA_SECURITY_PROTOCOL"}) & set(env)
    listeners = config["services"]["kafka"]["environment"]["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    assert {entry.split(":")[1] for entry in listeners.split(",")} == {"PLAINTEXT"}
    # Unset on the host: empty, or not set at all where an empty value would be invalid.
    for name in _PASSED_THROUGH:
        assert env[name] in ("", None), (name, env[name])


def test_the_file_says_plainly_it_has_no_sasl_or_tls_variant() -> None:
    header = COMPOSE_FILE.read_text().split("x-modelbus-env")[0]
    assert "No SASL or TLS here: this Kafka has PLAINTEXT listeners only, and there is no " \
        "SASL/TLS\n# variant of this file." in header
    assert [p.name for p in REPO.glob("docker-compose*.y*ml")] == ["docker-compose.yml"]


def test_kafka_security_settings_of_the_host_do_not_reach_the_services() -> None:
    """Set on the host, they would make the services speak SASL or TLS to a PLAINTEXT
    listener: they are not passed."""
    result = _compose("config", env=_KAFKA_SECURITY)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for service in _SERVICES:
        env = services[service]["environment"]
        assert env["MODELBUS_KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT", service
        assert not (set(_KAFKA_SECURITY) - {"MODELBUS_KAFKA_SECURITY_PROTOCOL"}) & set(env)


def test_mlflow_credentials_pass_through_from_the_host() -> None:
    values = {
        "MLFLOW_TRACKING_TOKEN": "tok",
        "MLFLOW_TRACKING_USERNAME": "mluser",
        "MLFLOW_TRACKING_PASSWORD": "ml-pw",
    }
    result = _compose("config", env=values)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for service in _SERVICES:
        env = services[service]["environment"]
        assert {name: env[name] for name in values} == values, service


def test_kafka_advertises_localhost_to_outside_clients_by_default(
    config: dict[str, Any],
) -> None:
    advertised = config["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert advertised == "INTERNAL://kafka:9092,EXTERNAL://localhost:9094"


def test_the_advertised_host_for_remote_clients_can_be_set() -> None:
    result = _compose("config", env={"MODELBUS_KAFKA_ADVERTISED_HOST": "kafka.example.net",
                                     "MODELBUS_PUBLISH_ADDRESS": "0.0.0.0"})
    assert result.returncode == 0, result.stderr
    kafka = yaml.safe_load(result.stdout)["services"]["kafka"]
    assert kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"] == (
        "INTERNAL://kafka:9092,EXTERNAL://kafka.example.net:9094"
    )
    assert [str(p) for p in kafka["ports"]] == ["0.0.0.0:9094:9094/tcp"]


def test_the_publish_address_can_be_overridden() -> None:
    result = _compose("config", env={"MODELBUS_PUBLISH_ADDRESS": "0.0.0.0"})
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert [str(p) for p in services["kafka"]["ports"]] == ["0.0.0.0:9094:9094/tcp"]

