"""A ``modelbus up`` with its services' metrics on consecutive ports, its HTTP gateway and one
warm echo model (the operations tests' ``stack`` fixture, tests/ops/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from tests.stack.test_recovery import _warm
from tests.stack.test_up import UpProcess

from modelbus.stack import free_tcp_port, port_in_use

SERVICES = ("discovery", "catalog", "worker", "gateway")


@dataclass
class Stack:
    up: UpProcess
    bootstrap: str
    model: str
    ports: dict[str, int]
    gateway_url: str


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports."""
    for _ in range(100):
        first = free_tcp_port()
        if first + count <= 65535 and not any(port_in_use(first + i) for i in range(count)):
            return first
    raise AssertionError(f"no {count} consecutive free ports")


def running_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``modelbus up`` with its metrics on consecutive ports (the gateway's after the
    workers'), its gateway and one warm echo model."""
    tmp_path = tmp_path_factory.mktemp("metrics-stack")
    telemetry = os.environ.get("MLFLOW_DISABLE_TELEMETRY")
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # see tests/stack/test_recovery.py
    # The services' ports, then the embedded broker's watch.
    kafka_port, mlflow_port, gateway_port = free_tcp_port(), free_tcp_port(), free_tcp_port()
    first = _free_ports(len(SERVICES) + 1)
    up = UpProcess(
        [
            *("--data-dir", str(tmp_path / "data")),
            *("--kafka-port", str(kafka_port), "--mlflow-port", str(mlflow_port)),
            *("--metrics-port", str(first), "--gateway-port", str(gateway_port)),
        ],
        tmp_path / "up.err",
    )
    try:
        warmed = _warm(up, tmp_path, kafka_port, mlflow_port)
        _, bootstrap, tracking_uri, model, _ = next(warmed)
        ports = {service: first + i for i, service in enumerate(SERVICES)}
        assert up.lines == [
            f"kafka bootstrap servers: {bootstrap}",
            f"mlflow tracking uri: {tracking_uri}",
            *(f"{s} metrics: http://127.0.0.1:{ports[s]}/metrics" for s in SERVICES),
            f"kafka metrics: http://127.0.0.1:{first + len(SERVICES)}/metrics",
            f"gateway: http://127.0.0.1:{gateway_port}",
            "modelbus is up (Ctrl-C to stop)",
        ]
        yield Stack(up, bootstrap, model, ports, f"http://127.0.0.1:{gateway_port}")
    finally:
        up.kill_everything()
        if telemetry is None:
            os.environ.pop("MLFLOW_DISABLE_TELEMETRY", None)
        else:
            os.environ["MLFLOW_DISABLE_TELEMETRY"] = telemetry
