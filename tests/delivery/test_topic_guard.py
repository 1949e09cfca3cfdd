"""TopicGuard on the real broker: a topic that disappears is re-created and reported, or,
by a guard that may not make topics, reported until the operator makes it again."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from tests.support.waiting import async_wait_for

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


async def test_a_guard_that_may_not_make_topics_waits_for_the_operator(
    kafka_bootstrap: str,
) -> None:
    spec = TopicSpec(f"guard-{uuid.uuid4().hex[:8]}")
    await ensure_topics(kafka_bootstrap, [spec])
    repaired = asyncio.Event()

    async def on_lost() -> None:
        repaired.set()

    guard = TopicGuard(kafka_bootstrap, [spec], on_lost, interval_s=0.2, name="test",
                       create=False)
    assert await guard.check() == []
    guard.start()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await async_wait_for(lambda: guard.broker_seen_within(5), 15, message="a first check")
        await admin.delete_topics([spec.name])
        await async_wait_for(lambda: guard.missing == [spec.name], 15,
                             message="the topic seen missing")
        seen = guard.last_ok or 0.0
        # Two checks later it is still missing: nothing made it (nor asked for its
        # metadata, which a broker that makes topics on first use would answer by making it).
        await async_wait_for(lambda: (guard.last_ok or 0.0) > seen + 2 * guard.interval_s,
                             15, message="two more checks")
        assert spec.name not in await admin.list_topics()
        assert (guard.losses, repaired.is_set(), guard.broker_seen_within(5)) == (1, False, False)

        await ensure_topics(kafka_bootstrap, [spec])  # the operator's `modelbus topics apply`
        async with asyncio.timeout(15):
            await repaired.wait()
        await async_wait_for(lambda: guard.broker_seen_within(5), 15, message="ready again")
        assert guard.missing == []
    finally:
        await admin.close()
        await guard.stop()
