"""Reading any topic without a consumer group, past poison records (the Kafka adapter of
``tail`` and ``dlq``).

Nothing here makes a topic: a topic that does not exist is ``NoSuchTopic``. Records the
Kafka client cannot decode are handed out as ``Poison`` in their place.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from modelbus_contract.errors import ModelbusError
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.closing import CLOSE_TIMEOUT_S
from modelbus_delivery.kafka_config import connection_options
from modelbus_delivery.poison import (
    advance,
    close_consumer,
    expected_positions,
    getmany_skipping_poison,
)
from modelbus_delivery.records import Inbound
from modelbus_delivery.topic_admin import list_topic_names
from modelbus_delivery.topics import assign_all, start_consumer

from .record_view import Poison

FETCH_WAIT_MS = 200


class NoSuchTopic(ModelbusError):
    """The topic does not exist (or this principal cannot see it)."""

    code = "no_such_topic"


@dataclass(frozen=True)
class Reading:
    """Where to start and when to stop."""

    from_beginning: bool = True
    to_end: bool = True  # stop at the end offsets seen when reading began
    max_idle_s: float | None = None  # (following) stop after this long without a record


async def topic_exists(settings: ModelbusSettings, topic: str) -> bool:
    return topic in await list_topic_names(connection_options(settings))


async def read_records(
    settings: ModelbusSettings, topic: str, reading: Reading
) -> AsyncIterator[Inbound | Poison]:
    """The records of every partition of ``topic`` (in offset order per partition), each
    record the Kafka client cannot decode as a ``Poison`` in its place."""
    if not await topic_exists(settings, topic):
        raise NoSuchTopic(f"there is no topic {topic}")
    consumer = AIOKafkaConsumer(
        **connection_options(settings), enable_auto_commit=False,
        fetch_max_wait_ms=FETCH_WAIT_MS,
        max_partition_fetch_bytes=max(settings.max_message_bytes, 1_048_576),
    )
    await start_consumer(consumer)
    try:
        tps = await assign_all(consumer, topic, wait_s=5.0)
        if not tps:
            raise NoSuchTopic(f"there is no topic {topic}")
        if reading.from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        expected = await expected_positions(consumer, tps)
        ends: dict[TopicPartition, int] = (
            await consumer.end_offsets(tps) if reading.to_end else {}
        )
        async for item in _fetch(consumer, expected, ends, reading.max_idle_s):
            yield item
    finally:
        await close_consumer(f"{topic} reader", consumer, CLOSE_TIMEOUT_S)


async def _fetch(
    consumer: AIOKafkaConsumer, expected: dict[TopicPartition, int],
    ends: dict[TopicPartition, int], max_idle_s: float | None,
) -> AsyncIterator[Inbound | Poison]:
    last = time.monotonic()
    while True:
        if ends and all([await consumer.position(tp) >= end for tp, end in ends.items()]):
            return
        poison: list[Poison] = []

        def undecodable(tp: TopicPartition, offset: int, exc: BaseException,
                        found: list[Poison] = poison) -> None:
            reason = f"the Kafka client cannot decode this record: {type(exc).__name__}: {exc}"
            found.append(Poison(tp.topic, tp.partition, offset, reason[:500]))

        batch = await getmany_skipping_poison(consumer, expected, undecodable,
                                              timeout_ms=FETCH_WAIT_MS)
        advance(expected, batch)
        for bad in poison:  # a poison record's position moves past it too
            tp = TopicPartition(bad.topic, bad.partition)
            expected[tp] = max(expected.get(tp, 0), bad.offset + 1)
        items: list[Inbound | Poison] = [*poison, *(
            Inbound.of(r) for records in batch.values() for r in records
        )]
        if ends:  # records produced after reading began are left for the next reading
            items = [i for i in items
                     if i.offset < ends.get(TopicPartition(i.topic, i.partition), 0)]
        items.sort(key=lambda i: (i.partition, i.offset))
        if items:
            last = time.monotonic()
        for item in items:
            yield item
        if not ends and max_idle_s is not None and time.monotonic() - last >= max_idle_s:
            return
