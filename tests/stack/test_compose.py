"""The production compose file is valid for Debian's docker-compose and complete.

Nothing is started: images cannot be pulled where the tests run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"


def _compose(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed (deploy/setup.sh installs it)", pytrace=False)
    return subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    result = _compose("config")
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = yaml.safe_load(result.stdout)
    return parsed


def test_the_file_is_valid_and_has_every_service(config: dict[str, Any]) -> None:
    expected = {"kafka", "mlflow", "discovery", "catalog", "worker"}
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


@pytest.mark.parametrize("service", ["discovery", "catalog", "worker"])
def test_services_point_at_kafka_and_mlflow(config: dict[str, Any], service: str) -> None:
    spec = config["services"][service]
    assert spec["build"]["dockerfile"] == "deploy/Dockerfile"
    assert spec["command"] == (["catalog", "serve"] if service == "catalog" else [service])
    assert spec["environment"]["MODELBUS_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert spec["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_the_worker_reaches_the_docker_engine_and_a_shared_cache(config: dict[str, Any]) -> None:
    worker = config["services"]["worker"]
    volumes = [str(volume) for volume in worker["volumes"]]
    assert any("/var/run/docker.sock" in volume for volume in volumes)
    cache = worker["environment"]["MODELBUS_WORKER_CACHE_DIR"]
    assert f"{cache}:{cache}:rw" in volumes
