"""``modelbus up`` watches its embedded broker: the warnings a person reads and the metric."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from tests.stack.test_up import UpProcess
from tests.support.waiting import wait_for

from modelbus.stack import free_tcp_port, port_in_use

pytestmark = pytest.mark.integration


def _two_free_ports() -> int:
    for _ in range(100):
        first = free_tcp_port()
        if first < 65535 and not port_in_use(first + 1):
            return first
    raise AssertionError("no two consecutive free ports")


def _scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


async def _produce(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"one record", partition=0)
    finally:
        await producer.stop()


def _events(up: UpProcess, name: str) -> list[dict[str, object]]:
    lines = [line for line in up.stderr().splitlines() if line.startswith("{")]
    return [e for e in map(json.loads, lines) if e.get("event") == name]


def test_up_warns_before_its_broker_slows_down_and_shows_it_in_a_metric(
    tmp_path: Path, mlflow_tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Limits any broker passes: a fetch of a partition holding records, a few MB.
    monkeypatch.setenv("MODELBUS_EMBEDDED_BROKER_WATCH_S", "0.5")
    monkeypatch.setenv("MODELBUS_EMBEDDED_BROKER_FETCH_WARN_MS", "0.001")
    monkeypatch.setenv("MODELBUS_EMBEDDED_BROKER_MEMORY_WARN_MB", "1")
    kafka_port, first = free_tcp_port(), _two_free_ports()
    up = UpProcess(
        [
            *("--data-dir", str(tmp_path / "data"), "--kafka-port", str(kafka_port)),
            *("--external-mlflow", mlflow_tracking_uri, "--services", "catalog"),
            *("--no-webhooks", "--metrics-port", str(first)),
        ],
        tmp_path / "up.err",
    )
    try:
        up.wait_ready(timeout=120)
        bootstrap = f"127.0.0.1:{kafka_port}"
        assert up.lines == [
            f"kafka bootstrap servers: {bootstrap}",
            f"mlflow tracking uri: {mlflow_tracking_uri}",
            f"catalog metrics: http://127.0.0.1:{first}/metrics",
            f"kafka metrics: http://127.0.0.1:{first + 1}/metrics",
            "modelbus is up (Ctrl-C to stop)",
        ]
        memory = wait_for(lambda: _events(up, "embedded_broker_memory_high"), timeout=30,
                          message="a memory warning")
        assert memory[0]["limit_mb"] == 1.0
        assert "modelbus up: warning: the embedded broker holds " in up.stderr()

        topic = f"watched-{uuid.uuid4().hex[:8]}"
        asyncio.run(_produce(bootstrap, topic))
        slowing = wait_for(lambda: _events(up, "embedded_broker_slowing"), timeout=30,
                           message="a warning about the fetch")
        assert slowing[0]["fetch_wait_ms"] == 20.0  # the busy wait of paced fetches
        warnings = [line for line in up.stderr().splitlines()
                    if line.startswith("modelbus up: warning: the embedded broker is slowing")]
        assert len(warnings) == 1
        assert "--external-kafka" in warnings[0]

        samples = _scrape(first + 1)
        assert samples[("modelbus_embedded_broker_warning", frozenset({("cause", "fetch")}))] == 1
        assert samples[("modelbus_embedded_broker_warning", frozenset({("cause", "memory")}))] == 1
        assert samples[("modelbus_embedded_broker_fetch_wall_seconds", frozenset())] == 0.02
        assert samples[("modelbus_embedded_broker_fetch_seconds", frozenset())] > 0
        assert samples[("modelbus_embedded_broker_resident_bytes", frozenset())] > 1_000_000

        up.proc.send_signal(signal.SIGTERM)
        assert up.proc.wait(timeout=60) == 0, up.stderr()
        assert up.uncaught_tracebacks() == []
    finally:
        up.kill_everything()
