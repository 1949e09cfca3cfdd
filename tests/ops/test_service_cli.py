"""``--metrics-port`` of the service commands, run as a user runs them (a subprocess)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.support.waiting import wait_for

from modelbus.stack import free_tcp_port

pytestmark = pytest.mark.integration


def _env(kafka_bootstrap: str, mlflow_tracking_uri: str) -> dict[str, str]:
    env = {
        **os.environ,
        "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "MLFLOW_TRACKING_URI": mlflow_tracking_uri,
        "MODELBUS_TOPIC_PREFIX": f"cli-metrics-{uuid.uuid4().hex[:12]}.",
        "MODELBUS_POLL_INTERVAL_S": "1",
        "MODELBUS_METRICS_HOST": "127.0.0.1",
    }
    env.pop("MODELBUS_METRICS_PORT", None)
    return env


def _readyz(port: int) -> tuple[int, dict[str, object]] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None  # not listening yet


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for proc in processes:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


@pytest.mark.parametrize(
    ("command", "checks"),
    [
        (("discovery",), {"kafka": True, "mlflow": True}),
        (("catalog", "serve"), {"kafka": True, "mlflow": True}),
        (("worker",), {"docker": True, "kafka": True}),
    ],
)
def test_a_service_serves_its_endpoint_on_the_given_port(
    command: tuple[str, ...], checks: dict[str, bool], kafka_bootstrap: str,
    mlflow_tracking_uri: str, started: list[subprocess.Popen[bytes]], tmp_path: Path,
) -> None:
    port = free_tcp_port()
    err = tmp_path / "service.err"
    with err.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelbus", *command, "--metrics-port", str(port)],
            env=_env(kafka_bootstrap, mlflow_tracking_uri), stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    started.append(proc)
    wait_for(lambda: _readyz(port) == (200, {"ready": True, "checks": checks}), 90,
             interval=0.5, message=f"{command} ready on {port}")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        names = {f.name for f in text_string_to_metric_families(response.read().decode())}
    expected = {
        "discovery": {"modelbus_registry_scans", "modelbus_models_discovered"},
        "catalog": {"modelbus_catalog_entries"},
        "worker": {"modelbus_requests", "modelbus_containers", "modelbus_consumer_lag"},
    }[command[0]]
    assert expected <= names, names
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, err.read_text()[-3000:]


def test_a_taken_metrics_port_is_one_readable_line(
    kafka_bootstrap: str, mlflow_tracking_uri: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "modelbus", "catalog", "serve", "--metrics-port", str(port)],
            env=_env(kafka_bootstrap, mlflow_tracking_uri), capture_output=True, text=True,
            timeout=120,
        )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        f"Error: the metrics endpoint cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert "Traceback" not in proc.stderr
