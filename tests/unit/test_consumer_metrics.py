"""A consumer's metrics: ``modelbus_dlq_records_total`` (what the runtime published on the
DLQ topic, counted once the broker acknowledged it, by a bounded ``error_code``) and the
time of its last poll, sampled when scraped."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from modelbus_delivery.consumer_metrics import ConsumerMetrics, DeadLetterCounter
from modelbus_delivery.records import Inbound, Outgoing
from modelbus_delivery.runtime import DeliveryRuntime, RuntimeConfig
from modelbus_delivery.writer import PublishFailed

DLQ = "m.inference.dlq"


def _count(registry: CollectorRegistry, code: str) -> float | None:
    return registry.get_sample_value("modelbus_dlq_records_total", {"error_code": code})


def test_dead_letters_are_counted_by_code_and_other_topics_are_not() -> None:
    registry = CollectorRegistry()
    published = DeadLetterCounter(registry).observer(DLQ)
    assert (_count(registry, "bad_request"), _count(registry, "internal")) == (0.0, 0.0)
    published(Outgoing(DLQ, None, b"", {"dlq_error_code": "bad_request"}))
    published(Outgoing(DLQ, None, b"", {"dlq_error_code": "bad_request"}))
    published(Outgoing(DLQ, None, b"", {"dlq_error_code": "internal"}))
    published(Outgoing("m.inference.results", None, b"", {"dlq_error_code": "internal"}))
    # A code no one documented (or none at all) is one bounded label value.
    published(Outgoing(DLQ, None, b"", {"dlq_error_code": "x" * 300}))
    published(Outgoing(DLQ, None, b"", {}))
    assert _count(registry, "bad_request") == 2
    assert _count(registry, "internal") == 1
    assert _count(registry, "other") == 2


class _Writer:
    """Acknowledges every record but those to ``refuse`` (refused for good)."""

    def __init__(self, refuse: str = "") -> None:
        self.refuse = refuse
        self.sent: list[str] = []

    async def send(self, topic: str, key: object, value: object, headers: object) -> None:
        if topic == self.refuse:
            raise PublishFailed("refused", retriable=False)
        self.sent.append(topic)


class _Quarantine:
    def poisoned(self, record: Inbound, reason: str) -> list[Outgoing]:
        return []

    def unpublishable(
        self, record: Inbound, out: Outgoing, refused: PublishFailed
    ) -> list[Outgoing]:
        return [Outgoing(DLQ, None, b"", {"dlq_error_code": "internal"})]

    def undecodable(self, topic: str, partition: int, offset: int, reason: str) -> list[Outgoing]:
        return []


async def _no_output(record: Inbound) -> list[Outgoing]:
    return []


@pytest.mark.parametrize("refuse", ["", "m.inference.results"])
async def test_the_runtime_tells_of_each_record_once_the_broker_acknowledged_it(
    refuse: str,
) -> None:
    seen: list[Outgoing] = []
    writer = _Writer(refuse)
    runtime = DeliveryRuntime(
        "127.0.0.1:9", RuntimeConfig("t", ("m.inference.requests",), "g"), _no_output,
        _Quarantine(), writer, published=seen.append,  # type: ignore[arg-type]
    )
    record = Inbound("m.inference.requests", 0, 7, b"k", b"v")
    await runtime._publish(record, Outgoing("m.inference.results", b"k", b"r", {}))
    # What the broker refused is not told; the DLQ copy made instead is.
    assert [out.topic for out in seen] == writer.sent == (
        [DLQ] if refuse else ["m.inference.results"]
    )


class _SampledRuntime:
    in_flight = 2
    bulk_in_flight = 1
    last_poll: float | None = None

    def lane_of(self, topic: str) -> str:
        return "bulk" if topic.endswith(".bulk") else "interactive"

    async def partition_lag(self) -> dict[TopicPartition, int]:
        return {TopicPartition("m.inference.requests", 3): 5,
                TopicPartition("m.inference.requests.bulk", 3): 7}


async def test_the_last_poll_is_absent_until_the_first_and_then_its_time() -> None:
    registry = CollectorRegistry()
    metrics, runtime = ConsumerMetrics(registry), _SampledRuntime()
    name = "modelbus_consumer_last_poll_timestamp_seconds"
    await metrics.sample(runtime)  # type: ignore[arg-type]
    assert registry.get_sample_value(name) is None
    assert registry.get_sample_value("modelbus_in_flight_requests", {"lane": "interactive"}) == 1
    assert registry.get_sample_value("modelbus_in_flight_requests", {"lane": "bulk"}) == 1
    assert registry.get_sample_value(
        "modelbus_consumer_lag",
        {"topic": "m.inference.requests", "partition": "3", "lane": "interactive"},
    ) == 5
    assert registry.get_sample_value(
        "modelbus_consumer_lag",
        {"topic": "m.inference.requests.bulk", "partition": "3", "lane": "bulk"},
    ) == 7
    runtime.last_poll = 1_700_000_000.5
    await metrics.sample(runtime)  # type: ignore[arg-type]
    assert registry.get_sample_value(name) == 1_700_000_000.5
