"""The production compose file is valid for Debian's docker-compose and complete.

Nothing is started: images cannot be pulled where the tests run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"

_PASSED_THROUGH = (
    "MODELBUS_KAFKA_SECURITY_PROTOCOL",
    "MODELBUS_KAFKA_SASL_MECHANISM",
    "MODELBUS_KAFKA_SASL_USERNAME",
    "MODELBUS_KAFKA_SASL_PASSWORD",
    "MODELBUS_KAFKA_SSL_CAFILE",
    "MODELBUS_KAFKA_SSL_CERTFILE",
    "MODELBUS_KAFKA_SSL_KEYFILE",
    "MODELBUS_KAFKA_SSL_PASSWORD",
    "MODELBUS_KAFKA_SSL_CHECK_HOSTNAME",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
)
# Variables of the host that the file reads: the defaults are checked without them.
_HOST_VARIABLES = (*_PASSED_THROUGH, "MODELBUS_PUBLISH_ADDRESS")


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
    expected = {"kafka", "mlflow", "discovery", "catalog", "worker", "worker-2"}
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


@pytest.mark.parametrize("service", ["discovery", "catalog", "worker", "worker-2"])
def test_services_point_at_kafka_and_mlflow(config: dict[str, Any], service: str) -> None:
    spec = config["services"][service]
    assert spec["build"]["dockerfile"] == "deploy/Dockerfile"
    commands = {"catalog": ["catalog", "serve"], "worker-2": ["worker"]}
    assert spec["command"] == commands.get(service, [service])
    assert spec["environment"]["MODELBUS_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert spec["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


@pytest.mark.parametrize("service", ["discovery", "catalog", "worker", "worker-2"])
def test_services_serve_metrics_and_are_healthy_when_ready(
    config: dict[str, Any], service: str
) -> None:
    spec = config["services"][service]
    assert spec["environment"]["MODELBUS_METRICS_PORT"] == "9400"
    probe = spec["healthcheck"]["test"]
    assert probe[:3] == ["CMD", "python", "-c"]
    assert "http://localhost:9400/readyz" in probe[3]
    assert "ports" not in spec  # scraped on the compose network, not published


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


@pytest.mark.parametrize("service", ["discovery", "catalog", "worker", "worker-2"])
def test_services_default_to_plaintext_with_no_credentials(
    config: dict[str, Any], service: str
) -> None:
    env = config["services"][service]["environment"]
    assert set(_PASSED_THROUGH) <= set(env)
    assert env["MODELBUS_KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert env["MODELBUS_KAFKA_SSL_CHECK_HOSTNAME"] == "true"
    # Unset on the host: empty, or not set at all where an empty value would be invalid.
    for name in _PASSED_THROUGH:
        if name not in ("MODELBUS_KAFKA_SECURITY_PROTOCOL", "MODELBUS_KAFKA_SSL_CHECK_HOSTNAME"):
            assert env[name] in ("", None), (name, env[name])


def test_security_variables_pass_through_from_the_host() -> None:
    values = {
        "MODELBUS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "MODELBUS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "MODELBUS_KAFKA_SASL_USERNAME": "svc",
        "MODELBUS_KAFKA_SASL_PASSWORD": "kafka-pw",
        "MODELBUS_KAFKA_SSL_CAFILE": "/run/secrets/ca.pem",
        "MODELBUS_KAFKA_SSL_CERTFILE": "/run/secrets/client.pem",
        "MODELBUS_KAFKA_SSL_KEYFILE": "/run/secrets/client.key",
        "MODELBUS_KAFKA_SSL_PASSWORD": "key-pw",
        "MODELBUS_KAFKA_SSL_CHECK_HOSTNAME": "false",
        "MLFLOW_TRACKING_TOKEN": "tok",
        "MLFLOW_TRACKING_USERNAME": "mluser",
        "MLFLOW_TRACKING_PASSWORD": "ml-pw",
    }
    result = _compose("config", env=values)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for service in ("discovery", "catalog", "worker", "worker-2"):
        env = services[service]["environment"]
        assert {name: env[name] for name in values} == values, service


def test_the_publish_address_can_be_overridden() -> None:
    result = _compose("config", env={"MODELBUS_PUBLISH_ADDRESS": "0.0.0.0"})
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert [str(p) for p in services["kafka"]["ports"]] == ["0.0.0.0:9094:9094/tcp"]

