"""TopicGuard on the real broker: a topic that disappears is re-created and reported."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from modelbus_contract.channels import TopicSpec
from modelbus_delivery.topics import TopicGuard, ensure_topics


async def test_a_deleted_topic_is_recreated_and_reported(kafka_bootstrap: str) -> None:
    spec = TopicSpec(f"guard-{uuid.uuid4().hex[:8]}")
    await ensure_topics(kafka_bootstrap, [spec])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(spec.name, b"one")
    finally:
        await producer.stop()
    lost = asyncio.Event()

    async def on_lost() -> None:
        lost.set()

    guard = TopicGuard(kafka_bootstrap, [spec], on_lost, interval_s=0.2, name="test")
    assert await guard.check() == []  # the end offsets are remembered from here on
    guard.start()
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([spec.name])
            async with asyncio.timeout(15):
                await lost.wait()
            assert spec.name in await admin.list_topics()  # re-created before on_lost
        finally:
            await admin.close()
        assert guard.losses == 1
    finally:
        await guard.stop()
