"""A ``modelbus up`` with its services' metrics on consecutive ports and one warm echo model
(the operations tests' ``stack`` fixture, tests/ops/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from tests.stack.test_recovery import _warm
from tests.stack.test_up import UpProcess

from modelbus.stack import free_tcp_port, port_in_use

SERVICES = ("discovery", "catalog", "worker")


@dataclass
class Stack:
    up: UpProcess
    bootstrap: str
    model: str
    ports: dict[str, int]


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports."""
    for _ in range(100):
        first = free_tcp_port()
        if first + count <= 65535 and not any(port_in_use(first + i) for i in range(count)):
            return first
    raise AssertionError(f"no {count} consecutive free ports")


def running_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``modelbus up`` with its metrics on consecutive ports and one warm echo model."""
    tmp_path = tmp_path_factory.mktemp("metrics-stack")
    telemetry = os.environ.get("MLFLOW_DISABLE_TELEMETRY")
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # see tests/stack/test_recovery.py
    # The services' ports, then the embedded broker's watch.
    kafka_port, mlflow_port, first = free_tcp_port(), free_tcp_port(), _free_ports(4)
    up = UpProcess(
        [
            *("--data-dir", str(tmp_path / "data")),
            *("--kafka-port", str(kafka_port), "--mlflow-port", str(mlflow_port)),
            *("--metrics-port", str(first)),
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
            "modelbus is up (Ctrl-C to stop)",
        ]
        yield Stack(up, bootstrap, model, ports)
    finally:
        up.kill_everything()
        if telemetry is None:
            os.environ.pop("MLFLOW_DISABLE_TELEMETRY", None)
        else:
            os.environ["MLFLOW_DISABLE_TELEMETRY"] = telemetry
