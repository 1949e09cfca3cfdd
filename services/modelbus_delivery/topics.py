"""Topic set-up and replay: the aiokafka adapters every consumer of modelbus shares."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from modelbus_contract.channels import TopicSpec

from .closing import close_quietly
from .kafka_config import KafkaOptions, as_options
from .logs import get_logger
from .retry import Backoff

log = get_logger("kafka")
T = TypeVar("T")


async def retry_until_connected(
    what: str, connect: Callable[[], Awaitable[T]], backoff: Backoff, **context: Any
) -> T:
    """Call ``connect`` until it succeeds, logging one line per failed attempt."""
    while True:
        try:
            return await connect()
        except (KafkaError, OSError) as exc:
            delay = backoff.next_delay()
            log.warning(
                f"{what}_unreachable", error=f"{type(exc).__name__}: {exc}",
                retry_in_s=round(delay, 2), **context,
            )
            await asyncio.sleep(delay)


async def ensure_topics(kafka: str | KafkaOptions, specs: list[TopicSpec]) -> None:
    """Create the topics that do not exist yet (no error when they already do)."""
    admin = AIOKafkaAdminClient(**as_options(kafka))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                s.name, s.partitions, 1,
                topic_configs={"cleanup.policy": "compact"} if s.compacted else {},
            )
            for s in specs
            if s.name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent creator won
                await admin.create_topics(missing)
    finally:
        await admin.close()


async def start_consumer(consumer: AIOKafkaConsumer) -> AIOKafkaConsumer:
    """Start ``consumer``; on failure close it before re-raising (no unclosed sockets)."""
    try:
        await consumer.start()
    except BaseException:
        await close_quietly("consumer", consumer.stop)
        raise
    return consumer


async def assign_all(
    consumer: AIOKafkaConsumer, topic: str, wait_s: float = 10.0
) -> list[TopicPartition]:
    """Assign every partition of ``topic`` to a group-less consumer (none: ``[]``).

    A topic created a moment ago may not be in the metadata yet: ask again until
    ``wait_s`` has passed.
    """
    partitions = consumer.partitions_for_topic(topic)
    deadline = time.monotonic() + wait_s
    while not partitions and time.monotonic() < deadline:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await asyncio.sleep(0.1)
    tps = [TopicPartition(topic, p) for p in sorted(partitions or ())]
    if tps:
        consumer.assign(tps)
    return tps


Batch = dict[TopicPartition, list[Any]]


async def replay(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], apply: Callable[[Batch], Any]
) -> dict[TopicPartition, int]:
    """Hand every record from the earliest offset to the current end to ``apply``.

    Batches may reach past that end (records produced meanwhile); the end offsets are
    returned for callers that must stop exactly there.
    """
    await consumer.seek_to_beginning(*tps)
    end: dict[TopicPartition, int] = await consumer.end_offsets(tps)
    while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
        result = apply(await consumer.getmany(timeout_ms=200))
        if asyncio.iscoroutine(result):
            await result
    return end


async def read_to_end(kafka: str | KafkaOptions, topic: str) -> list[Any]:
    """Every record of ``topic`` from the earliest offset up to the end seen at the call."""
    consumer = AIOKafkaConsumer(**as_options(kafka), enable_auto_commit=False, fetch_max_wait_ms=5)
    await start_consumer(consumer)
    try:
        tps = await assign_all(consumer, topic, wait_s=1.0)
        if not tps:
            return []
        batches: list[Batch] = []
        end = await replay(consumer, tps, batches.append)
        records = [
            m for batch in batches for tp, msgs in batch.items() for m in msgs if m.offset < end[tp]
        ]
        records.sort(key=lambda r: (r.partition, r.offset))
        return records
    finally:
        await close_quietly("consumer", consumer.stop)
