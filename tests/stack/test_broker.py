"""The embedded Tansu broker: starts, carries messages, advertises loopback when it listens
on every interface (its refusal of a busy port: tests/unit/test_embedded_broker.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from tests.support.kafka import produce, read_topic

from modelbus.stack import EmbeddedBroker, free_tcp_port, kafka_api_versions_ok


def test_the_broker_answers_kafka_requests(embedded_broker: EmbeddedBroker) -> None:
    assert kafka_api_versions_ok(embedded_broker.advertised_host, embedded_broker.port)
    assert embedded_broker.process is not None and embedded_broker.process.is_running()


async def test_a_message_round_trips(kafka_bootstrap: str) -> None:
    topic = f"test-{uuid.uuid4().hex[:12]}.roundtrip"
    await produce(kafka_bootstrap, topic, b"hello", key="k1", headers=[("model", "m")])

    records = await read_topic(kafka_bootstrap, topic, until=lambda rs: len(rs) >= 1, timeout=20)

    assert [(r.key, r.value) for r in records] == [(b"k1", b"hello")]
    assert dict(records[0].headers) == {"model": b"m"}


async def test_read_topic_without_condition_returns_what_is_there(kafka_bootstrap: str) -> None:
    topic = f"test-{uuid.uuid4().hex[:12]}.snapshot"
    for n in range(3):
        await produce(kafka_bootstrap, topic, f"v{n}", key="one-partition")

    records = await read_topic(kafka_bootstrap, topic, timeout=20)

    assert [r.value for r in records] == [b"v0", b"v1", b"v2"]


@pytest.mark.integration  # a broker of its own, started here
async def test_listening_on_every_interface_advertises_loopback(tmp_path: Path) -> None:
    with EmbeddedBroker(free_tcp_port(), tmp_path, host="0.0.0.0") as broker:
        assert broker.bootstrap_servers.startswith("127.0.0.1:")
        topic = f"test-{uuid.uuid4().hex[:12]}.wildcard"
        await produce(broker.bootstrap_servers, topic, b"x")
        records = await read_topic(broker.bootstrap_servers, topic, until=bool, timeout=20)
        assert [r.value for r in records] == [b"x"]
